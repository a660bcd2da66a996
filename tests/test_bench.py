"""scripts/bench.py's arithmetic (its timings are for a quiet machine, not for tests)."""

from __future__ import annotations

import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import bench  # noqa: E402


def rates(fixed_ms: float, per_sample_ms: float) -> dict[int, float]:
    """samples/s of an unfused run whose step takes fixed + batch x per_sample."""
    return {b: b / ((fixed_ms + b * per_sample_ms) / 1e3) for b in (2, 32)}


def test_the_fused_bound_from_the_per_step_fixed_cost():
    # half of a batch-2 step fixed (ResNet-8 measured: 4.5 ms a sample at batch 2, 2.4 at 32)
    line = bench.overhead_bound("resnet", rates(4.5, 2.25), 5)
    assert "50% fixed" in line and "at most 1.67x with 5 seeds" in line and "(2.00x with any number)" in line
    # all compute: fusing cannot gain; all fixed cost: S seeds for the price of one
    assert "at most 1.00x with 5 seeds" in bench.overhead_bound("mlp", rates(0.0, 1.0), 5)
    assert "at most 5.00x with 5 seeds (no limit" in bench.overhead_bound("mlp", rates(3.0, 0.0), 5)
