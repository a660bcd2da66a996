"""The runner's output stays the same: a small grid run now matches the files it wrote before
the runner was split into probes (tests/golden/, made by ``python tests/test_golden.py``).

Values match to 1e-6 relative (bit for bit holds only on the same CPU kind and thread count);
the (step, epoch, split, metric) columns, and the keys of summary.json's ``final``, exactly.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from normbench.identity import register_resolvers
from normbench.runner import run

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
    # the defaults before issue 17, which the golden files were made with
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
REL = 1e-6


def run_case(name: str, out: Path) -> tuple[list[list[str]], dict]:
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*TINY, *CASES[name]])
    summary = run(cfg, out)
    assert summary["status"] == "done", summary["error"]
    rows = list(csv.reader((out / "metrics.csv").open()))
    return rows, summary["final"]


def close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_metrics_match_the_golden_files(name, tmp_path):
    torch.set_num_threads(1)
    rows, final = run_case(name, tmp_path / name)
    want_rows = list(csv.reader((GOLDEN / name / "metrics.csv").open()))
    want_final = json.loads((GOLDEN / name / "final.json").read_text())
    assert [r[:4] for r in rows] == [r[:4] for r in want_rows]
    pairs = zip(rows[1:], want_rows[1:], strict=True)
    bad = [(g, w) for g, w in pairs if not close(float(g[4]), float(w[4]))]
    assert not bad, bad[:5]
    assert sorted(final) == sorted(want_final)
    assert all(close(final[k], want_final[k]) for k in final), (final, want_final)


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
