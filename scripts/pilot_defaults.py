"""Pilot for the default optimizer settings: sweep candidate settings over every
model x every norm it accepts x batch sizes, print test accuracy per cell.

    python scripts/pilot_defaults.py --models mlp                       # ~2 min on one thread
    python scripts/pilot_defaults.py --models rnn --norms none --batches 32,128
    python scripts/pilot_defaults.py --models resnet --candidates current   # the committed defaults

The whole grid (no arguments) takes well over an hour on one busy core, mostly the ResNet and
the LSTM at batch 2; the numbers in conf/optim/*.yaml come from the parts shown above.

Each cell is one run through the real runner (``normbench.run.runner.run``) with the composed
config plus the candidate's overrides, single-threaded, on a pilot seed (``--seed``; the
committed defaults are judged on fresh seeds by tests/test_defaults.py). ``current`` is the
committed defaults with no override. At batch <= 4 the ResNet and the RNN train on 1,000
samples instead of their task's 4,000 (pilot_sizes): that keeps the pilot within its budget and
still gives them 2,500-5,000 steps; fewer samples mean fewer steps, so a cell that learns there
learns with the full set too. At batch 32 and 128 they get the full set, since there the
number of steps is what is short.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from normbench.run.identity import register_resolvers  # noqa: E402
from normbench.run.runner import run  # noqa: E402

NORMS = {
    "mlp": ["none", "batch", "layer", "group"],
    "rnn": ["none", "batch", "layer", "group"],
    "resnet": ["none", "batch", "layer", "instance", "group"],
}
BATCHES = [2, 4, 32, 128]

# What every candidate shares, chosen by a first round (this script with 5 epochs, a constant
# rate and the SGD and Adam rates below, seed 100): 10 epochs, since with 5
# the MLP at batch 128 has 35 steps and ended at 57-85% (constant rate, 5 epochs, seed 100:
# sgd 0.1 scaled 56.7-80.4, sgd 0.05 scaled 72.8-85.3, adam 1e-3 78.1-80.8); a cosine decay,
# since with a constant rate the last steps' noise decided the final accuracy (the LSTM without
# a norm: 36.9% at batch 4, 89.7% at batch 2, 57.2% at batch 32); one epoch of linear warm-up
# for the scaled rates at large batch.
SHARED = ["epochs=10", "sched=cosine", "sched.warmup_epochs=1"]
SGD = ["optim=sgd", "optim.linear_scaling=true"]  # lr x batch / 32, the GroupNorm paper's rule
ADAM = ["optim=adam", "optim.linear_scaling=false"]

# name -> overrides, per model
CANDIDATES: dict[str, dict[str, list[str]]] = {
    "mlp": {
        "sgd0.1": [*SHARED, *SGD, "optim.lr=0.1"],
        "sgd0.05": [*SHARED, *SGD, "optim.lr=0.05"],
    },
    "rnn": {
        # hidden 128: with 64, GN's default 32 groups make pairs of cell-state features, which
        # normalise to +-1 and the LSTM stays at chance (experiments/rnn_norms.yaml)
        "adam3e-3": [*SHARED, *ADAM, "optim.lr=3e-3", "model.hidden_size=128"],
        "adam1e-3": [*SHARED, *ADAM, "optim.lr=1e-3", "model.hidden_size=128"],
    },
    "resnet": {  # not run for lack of CPU: the ResNet's numbers come from tests/test_defaults.py
        "sgd0.05": [*SHARED, *SGD, "optim.lr=0.05"],
        "sgd0.1": [*SHARED, *SGD, "optim.lr=0.1"],
    },
}


def pilot_sizes(model: str, batch: int) -> list[str]:
    """Overrides that keep a cell within the pilot's budget (see the module docstring)."""
    return ["data.train_size=1000"] if model in ("resnet", "rnn") and batch <= 4 else []


def run_cell(overrides: list[str], tmp: Path) -> tuple[float, float, str]:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    tic = time.perf_counter()
    summary = run(cfg, tmp)
    acc = summary["final"].get("test/accuracy", float("nan"))
    return 100 * acc, time.perf_counter() - tic, summary["status"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mlp,rnn,resnet")
    parser.add_argument("--norms", default=None, help="comma list; default: every norm the model accepts")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--candidates", default=None, help="comma list of names; default: all of the model's")
    parser.add_argument("--seed", type=int, default=100, help="a pilot seed, not one the tests use")
    parser.add_argument("overrides", nargs="*", help="extra config overrides for every cell")
    args = parser.parse_args()
    register_resolvers()
    logging.getLogger("normbench").setLevel(logging.WARNING)
    batches = [int(b) for b in args.batches.split(",")]
    common = ["threads=1", "progress=false", f"seed={args.seed}", *args.overrides]
    print("| model | norm | batch | candidate | test acc % | status | seconds |")
    print("|---|---|---|---|---|---|---|", flush=True)
    total = time.perf_counter()
    for model in args.models.split(","):
        table = {"current": [], **CANDIDATES[model]}
        names = args.candidates.split(",") if args.candidates else list(CANDIDATES[model])
        norms = args.norms.split(",") if args.norms else NORMS[model]
        for norm in norms:
            for batch in batches:
                for name in names:
                    sizes = pilot_sizes(model, batch)
                    cell = [f"model={model}", f"norm={norm}", f"batch={batch}", *sizes]
                    with tempfile.TemporaryDirectory() as tmp:
                        acc, secs, status = run_cell([*cell, *table[name], *common], Path(tmp))
                    row = f"| {model} | {norm} | {batch} | {name} | {acc:.1f} | {status} | {secs:.0f} |"
                    print(row, flush=True)
                    if status == "interrupted":
                        sys.exit(130)  # the runner turns SIGTERM into an interrupted run
    print(f"total {time.perf_counter() - total:.0f} s; common overrides: {' '.join(common)}")


if __name__ == "__main__":
    main()
