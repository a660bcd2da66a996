"""The runner's output stays the same: a small grid run matches the files it wrote before the
runner was split into probes (tests/golden/, made by ``python tests/test_golden.py`` on an Intel
Xeon).

What is exact on any CPU kind is compared exactly: the (step, epoch, split, metric) columns and
the keys of summary.json's ``final``. A value is compared at a tolerance derived from the run
itself: the run is repeated twice in this process with its initial weights moved one ulp up and
down (``conftest.nudge_one_ulp``), and each metric series may differ from the stored one by
``SPREAD`` times the most the nudges moved it, or ``REL`` relative, whichever is larger. A stable
run (the MLP, the ResNet here) thus stays checked to about 1e-6, while a chaotic one (recurrent
BN at batch 8, where another CPU kind's rounding moves the test accuracy by two of its 16 samples)
is checked against its own rounding noise, not against the last digits of another machine.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from conftest import nudge_one_ulp
from hydra import compose, initialize_config_dir

import normbench.run.runner
from normbench.run.identity import register_resolvers
from normbench.run.runner import run

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
TINY = [
    "data.train_size=48",
    "data.test_size=16",
    "epochs=2",
    "batch=8",
    "log_every=2",
    "progress=false",
    "threads=1",
    # the defaults the golden files were made with, before the defaults were piloted
    "optim=sgd",
    "optim.lr=0.1",
    "optim.linear_scaling=false",
]
# every probe at least once: eval, batch-stats eval, BN drift, weights, activations, Precise BN
CASES = {
    "mlp_batch": [
        "model=mlp",
        "norm=batch",
        "norm.precise_bn_samples=24",
        "activations=true",
        "sched=constant",
    ],
    "resnet_group": ["model=resnet", "norm=group", "sched=step"],
    "rnn_batch": [
        "model=rnn",
        "norm=batch",
        "norm.precise_bn_samples=16",
        "sched=constant",
        "model.hidden_size=64",
    ],
}
REL = 1e-6  # the floor: float32 printing and summation order on a stable run
# Measured on an AMD EPYC against the Xeon's files: the largest difference was 1.15 times the
# most a nudge moved the same row; ten times the series' largest move leaves room for a third kind.
SPREAD = 10.0

Rows = list[list[str]]


def run_case(name: str, out: Path, nudge: float = 0.0) -> tuple[Rows, dict]:
    """One golden case into ``out``; ``nudge`` (+-inf) moves the initial weights one ulp."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*TINY, *CASES[name]])
    build_model = normbench.run.runner.build_model
    with pytest.MonkeyPatch.context() as patch:
        if nudge:
            patch.setattr(
                normbench.run.runner,
                "build_model",
                lambda *a, **k: nudge_one_ulp(build_model(*a, **k), nudge),
            )
        summary = run(cfg, out)
    assert summary["status"] == "done", summary["error"]
    rows = list(csv.reader((out / "metrics.csv").open()))
    return rows, summary["final"]


def series_spread(base: Rows, nudged: list[Rows]) -> dict[tuple[str, str], float]:
    """The most a nudge moved each (split, metric) series, over its rows."""
    spread: dict[tuple[str, str], float] = defaultdict(float)
    for rows in nudged:
        assert [r[:4] for r in rows] == [r[:4] for r in base]  # a nudge changes values only
        for got, want in zip(rows[1:], base[1:]):
            key = (got[2], got[3])
            spread[key] = max(spread[key], abs(float(got[4]) - float(want[4])))
    return spread


def close(got: float, want: float, spread: float) -> bool:
    if math.isnan(got) or math.isnan(want):
        return math.isnan(got) and math.isnan(want)
    return math.isclose(got, want, rel_tol=REL, abs_tol=max(1e-12, SPREAD * spread))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_metrics_match_the_golden_files(name, tmp_path):
    torch.set_num_threads(1)
    rows, final = run_case(name, tmp_path / name)
    nudged = [run_case(name, tmp_path / f"{name}{d}", nudge=d) for d in (math.inf, -math.inf)]
    spread = series_spread(rows, [r for r, _ in nudged])
    final_spread = {k: max(abs(f[k] - final[k]) for _, f in nudged) for k in final}

    want_rows = list(csv.reader((GOLDEN / name / "metrics.csv").open()))
    want_final = json.loads((GOLDEN / name / "final.json").read_text())
    assert [r[:4] for r in rows] == [r[:4] for r in want_rows]
    pairs = zip(rows[1:], want_rows[1:], strict=True)
    bad = [(g, w) for g, w in pairs if not close(float(g[4]), float(w[4]), spread[(g[2], g[3])])]
    assert not bad, bad[:5]
    assert sorted(final) == sorted(want_final)
    assert all(close(final[k], want_final[k], final_spread[k]) for k in final), (final, want_final)


@pytest.mark.slow
def test_the_tolerance_still_catches_a_change_in_a_stable_run(tmp_path):
    """The derived tolerance is no blank cheque: on the MLP the nudges move the losses by about
    1e-7, so a one-in-a-thousand change of the learning rate, far below any change a user would
    make, already fails the comparison."""
    torch.set_num_threads(1)
    rows, _ = run_case("mlp_batch", tmp_path / "base")
    nudged = [run_case("mlp_batch", tmp_path / f"n{d}", nudge=d) for d in (math.inf, -math.inf)]
    spread = series_spread(rows, [r for r, _ in nudged])
    CASES["changed"] = [*CASES["mlp_batch"], "optim.lr=0.1001"]
    try:
        changed, _ = run_case("changed", tmp_path / "changed")
    finally:
        del CASES["changed"]
    pairs = zip(changed[1:], rows[1:], strict=True)
    assert any(not close(float(g[4]), float(w[4]), spread[(g[2], g[3])]) for g, w in pairs)


def write_fixture() -> None:
    """Regenerate tests/golden/ (only when the output is meant to change, and say why in git)."""
    import tempfile

    torch.set_num_threads(1)
    for name in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            run_case(name, Path(tmp) / name)
            (GOLDEN / name).mkdir(parents=True, exist_ok=True)
            (GOLDEN / name / "metrics.csv").write_text((Path(tmp) / name / "metrics.csv").read_text())
            final = json.loads((Path(tmp) / name / "summary.json").read_text())["final"]
            (GOLDEN / name / "final.json").write_text(json.dumps(final, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    write_fixture()
    sys.exit(0)
