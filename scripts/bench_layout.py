#!/usr/bin/env python
"""The Stack's stacked forward (normbench.run.fused.layout: channels or members layout)
against its vmap forward and against the same 5 runs one after another, per model x norm x batch.

  python scripts/bench_layout.py [--steps 20] [--repeats 5] [--cells resnet:batch:2 ...]

One thread, one process; the three are timed in turn within each repeat (a shared machine's
load drifts), and each ratio is of medians of CPU time (this process's). Wall-time ratios
are printed beside them.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import torch
from torch.func import vmap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import FUSED_SEEDS, make_cfg, runner_epoch, time_per_step

from normbench.run.fused.stack import MemberRng, Stack, _member_forward
from normbench.run.runner import build

CELLS = ["resnet:batch:2", "resnet:batch:8", "resnet:group8:2", "mlp:batch:2", "mlp:batch:8", "mlp:layer:2"]
CELLS += ["rnn:batch:2", "rnn:layer:2"]


def trainers(model: str, norm: str, batch: int, steps: int) -> list:
    overrides = [f"model={model}", f"norm={norm}", f"batch={batch}", f"data.train_size={batch * steps}"]
    overrides += ["data.test_size=32", "threads=1"]
    return [build(make_cfg(*overrides, f"seed={seed}")).trainer for seed in range(FUSED_SEEDS)]


def stack(members: list, forward: str) -> Stack:
    built = Stack(members, [MemberRng.capture() for _ in members], l1=0.0)
    if forward == "vmap":  # the forward the Stack used before the stacked ones
        meta = copy.deepcopy(members[0].model).to("meta")
        built._forward = vmap(_member_forward(meta), randomness="error")
    elif built.layout == "vmap":
        raise SystemExit("this cell is not stacked without vmap")
    return built


def cell(model: str, norm: str, batch: int, steps: int, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds per epoch of each way, ``repeats`` times, in turn."""
    alone = trainers(model, norm, batch, steps)
    stacks = {way: stack(trainers(model, norm, batch, steps), way) for way in ("vmap", "stacked")}
    ways = {
        "alone": lambda: [runner_epoch(t) for t in alone],
        "vmap": lambda: stacks["vmap"].train_epoch().sum().item(),
        "stacked": lambda: stacks["stacked"].train_epoch().sum().item(),
    }
    for run in ways.values():  # warm-up: allocator, kernels, vmap's first trace
        run()
    times: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    for _ in range(repeats):
        for way, run in ways.items():
            times[way].append(time_per_step(run, 1, torch.device("cpu")))
    return times


def row(times: dict[str, list[tuple[float, float]]]) -> str:
    """stacked/vmap, vmap/alone, stacked/alone speed-ups: CPU time (wall time)."""
    cpu = {w: statistics.median(c for _, c in t) for w, t in times.items()}
    wall = {w: statistics.median(s for s, _ in t) for w, t in times.items()}
    pairs = [("vmap", "stacked", 15), ("alone", "vmap", 14), ("alone", "stacked", 16)]
    return " ".join(
        f"{f'{cpu[slow] / cpu[fast]:.2f} ({wall[slow] / wall[fast]:.2f})':>{width}}"
        for slow, fast, width in pairs
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cells", nargs="*", default=CELLS, help="model:norm:batch")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{FUSED_SEEDS} seeds, {args.steps} steps an epoch, median of {args.repeats}")
    print("speed-ups in CPU time (wall time)")
    print(f"{'cell':18} {'stacked/vmap':>15} {'vmap/alone':>14} {'stacked/alone':>16}")
    for spec in args.cells:
        model, norm, batch = spec.split(":")
        print(f"{spec:18} {row(cell(model, norm, int(batch), args.steps, args.repeats))}", flush=True)


if __name__ == "__main__":
    main()
