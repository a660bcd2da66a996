#!/usr/bin/env python
"""Speed measurements of normbench (timings are noisy on shared CPUs: only ratios measured in
the same run mean much).

  python scripts/bench.py overhead [--quick]   runner step time vs a minimal PyTorch loop
  python scripts/bench.py throughput [--quick] samples/s and peak memory per model x norm x batch
"""

from __future__ import annotations

import argparse
import copy
import functools
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hydra import compose, initialize_config_dir

from normbench.errors import ConfigError
from normbench.identity import register_resolvers
from normbench.runner import build

CONF = Path(__file__).resolve().parents[1] / "conf"


def make_cfg(*overrides: str):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def runner_epoch(trainer) -> None:
    trainer.train_epoch().sum().item()  # .item(): the runner reads losses once per epoch


def raw_epoch(model, opt, x, y, batch: int, gen: torch.Generator) -> None:
    """The limit: the minimal hand-written loop over the same tensors."""
    n = x.shape[0] // batch * batch
    order = torch.randperm(x.shape[0], generator=gen)[:n].view(-1, batch).to(x.device)
    model.train()
    for idx in order:
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    loss.item()


def time_per_step(fn, steps: int, device: torch.device) -> float:
    sync(device)
    tic = time.perf_counter()
    fn()
    sync(device)
    return (time.perf_counter() - tic) / steps


def overhead(args: argparse.Namespace) -> None:
    repeats = 3 if args.quick else 7
    target_steps = 60 if args.quick else 200
    print(f"{'model':8} {'batch':>5} {'runner ms/step':>15} {'raw ms/step':>12} {'ratio':>6}")
    worst = 0.0
    for model in ("mlp", "resnet", "rnn"):
        for batch in (2, 32):
            cfg = make_cfg(f"model={model}", f"batch={batch}", "norm=batch", "device=auto",
                           f"data.train_size={batch * target_steps}", "data.test_size=64")
            built = build(cfg)
            trainer = built.trainer
            steps = trainer.steps_per_epoch
            data = trainer.data
            raw_model = copy.deepcopy(trainer.model)
            raw_opt = type(trainer.optimizer)(raw_model.parameters(), **trainer.optimizer.defaults)
            gen = torch.Generator().manual_seed(0)
            ours, raw = [], []
            runner_epoch(trainer)  # warm-up, excluded
            raw_epoch(raw_model, raw_opt, data.x_train, data.y_train, batch, gen)
            for _ in range(repeats):  # interleaved, so drift in machine load hits both alike
                ours.append(time_per_step(functools.partial(runner_epoch, trainer), steps,
                                          built.device))
                raw.append(time_per_step(functools.partial(
                    raw_epoch, raw_model, raw_opt, data.x_train, data.y_train, batch, gen),
                    steps, built.device))
            a, b = statistics.median(ours), statistics.median(raw)
            worst = max(worst, a / b)
            print(f"{model:8} {batch:5d} {1e3 * a:15.3f} {1e3 * b:12.3f} {a / b:6.2f}", flush=True)
    print(f"device: {built.device}, threads: {torch.get_num_threads()}, repeats: {repeats}")
    print(f"worst overhead ratio: {worst:.2f}")


def throughput(args: argparse.Namespace) -> None:
    batches = (4, 32) if args.quick else (2, 8, 32, 128)
    print(f"{'model':8} {'norm':9} {'batch':>5} {'samples/s':>10} {'peak MB':>8}")
    for model in ("mlp", "resnet", "rnn"):
        for norm in ("none", "batch", "layer", "instance", "group"):
            for batch in batches:
                try:
                    cfg = make_cfg(f"model={model}", f"norm={norm}", f"batch={batch}",
                                   f"data.train_size={max(batch * 20, 256)}", "data.test_size=64")
                    built = build(cfg)
                except ConfigError as err:  # e.g. instance norm on an MLP: skip the cell
                    print(f"{model:8} {norm:9} {batch:5d} {'-':>10} {'-':>8}  ({type(err).__name__})")
                    continue
                trainer = built.trainer
                runner_epoch(trainer)
                if built.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                per_step = statistics.median(
                    time_per_step(functools.partial(runner_epoch, trainer), trainer.steps_per_epoch,
                                  built.device)
                    for _ in range(3))
                peak = (torch.cuda.max_memory_allocated() / 2**20 if built.device.type == "cuda"
                        else float("nan"))
                print(f"{model:8} {norm:9} {batch:5d} {batch / per_step:10.0f} {peak:8.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("what", choices=["overhead", "throughput"])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    args = parser.parse_args()
    {"overhead": overhead, "throughput": throughput}[args.what](args)


if __name__ == "__main__":
    main()
