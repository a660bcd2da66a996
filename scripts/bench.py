#!/usr/bin/env python
"""Speed measurements of normbench (timings are noisy on shared CPUs: only ratios measured in
the same run mean much).

  python scripts/bench.py overhead [--quick]   runner step time vs a minimal PyTorch loop
  python scripts/bench.py throughput [--quick] samples/s and peak memory per model x norm x batch
  python scripts/bench.py sweep [--quick] [--grid OVERRIDE ...]
                                              a sweep as one `python run.py` per cell, one after
                                              another, vs `python run.py -m ... hydra/launcher=parallel`
  python scripts/bench.py startup [--quick]    a tiny run, `run.py --help` and a bad input vs
                                              `python -c 'import torch'`, whole processes
  python scripts/bench.py fused [--quick]      5 seeds trained fused (normbench.run.fused) vs the same
                                              5 runs one after another, samples/s per seed
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from normbench.errors import ConfigError
from normbench.run.identity import register_resolvers
from normbench.run.runner import build
from normbench.run.threads import available_cores
from normbench.sweep.status import cell_name, cell_status, expand_grid

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
# the single-device small_batch grid (20 runs, the one docs/speed.md measured), each run cut to
# one short epoch (see sweep)
SWEEP_GRID = ["experiment=small_batch_single"]
# the tiny run: what every short run of a sweep pays before and around its training
STARTUP_RUN = ["model=mlp", "epochs=1", "data.train_size=64", "data.test_size=32", "threads=1"]


def make_cfg(*overrides: str, hydra: bool = False):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def runner_epoch(trainer) -> None:
    trainer.train_epoch().sum().item()  # .item(): the runner reads losses once per epoch


def raw_epoch(model, opt, sched, x, y, batch: int, gen: torch.Generator) -> None:
    """The limit: the minimal hand-written loop computing the same training: the same batch
    order draw and indexing, the same optimizer and the same per-step LR schedule (``sched``,
    torch's LambdaLR as in the run, or None where the run has none)."""
    n = x.shape[0] // batch * batch
    order = torch.randperm(x.shape[0], generator=gen)[:n].view(-1, batch).to(x.device)
    model.train()
    for idx in order:
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    loss.item()


def time_per_step(fn, steps: int, device: torch.device) -> tuple[float, float]:
    """(wall, CPU) seconds per step; CPU time is this process's, all its threads."""
    sync(device)
    tic, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return (time.perf_counter() - tic) / steps, (time.process_time() - cpu) / steps


def overhead(args: argparse.Namespace) -> None:
    """The trainer's epoch (Trainer.train_epoch: batch order, per-step losses kept on the
    device, the run's LR schedule, its optional prepare/augment/penalty/autocast, on_step)
    against raw_epoch on a copy of the same model, data and optimizer, with the same schedule.
    The ratio is the harness's per-step cost beyond what the training itself needs. Medians
    over interleaved repeats; the last line is the wall ratio (the measure, alone on the
    machine), the CPU ratio above it moves less on a shared one (on CUDA only wall means much)."""
    repeats = 3 if args.quick else 7
    target_steps = 60 if args.quick else 200
    print(
        f"{'model':8} {'batch':>5} {'runner ms/step':>15} {'raw ms/step':>12} {'ratio':>6}"
        f" {'cpu runner':>11} {'cpu raw':>8} {'ratio':>6}"
    )
    worst, worst_cpu = 0.0, 0.0
    for model in ("mlp", "resnet", "rnn"):
        for batch in (2, 32):
            cfg = make_cfg(
                f"model={model}",
                f"batch={batch}",
                "norm=batch",
                "device=auto",
                f"data.train_size={batch * target_steps}",
                "data.test_size=64",
            )
            built = build(cfg)
            trainer = built.trainer
            steps = trainer.steps_per_epoch
            data = trainer.data
            raw_model = copy.deepcopy(trainer.model)
            raw_opt = type(trainer.optimizer)(raw_model.parameters(), **trainer.optimizer.defaults)
            raw_sched = (
                torch.optim.lr_scheduler.LambdaLR(raw_opt, trainer.scheduler.lr_lambdas)
                if trainer.scheduler is not None
                else None
            )
            gen = torch.Generator().manual_seed(0)
            raw = functools.partial(
                raw_epoch, raw_model, raw_opt, raw_sched, data.x_train, data.y_train, batch, gen
            )
            ours_t, raw_t = [], []
            runner_epoch(trainer)  # warm-up, excluded
            raw()
            for _ in range(repeats):  # interleaved, so drift in machine load hits both alike
                ours_t.append(time_per_step(functools.partial(runner_epoch, trainer), steps, built.device))
                raw_t.append(time_per_step(raw, steps, built.device))
            (a, ac), (b, bc) = (tuple(map(statistics.median, zip(*t))) for t in (ours_t, raw_t))
            worst, worst_cpu = max(worst, a / b), max(worst_cpu, ac / bc)
            print(
                f"{model:8} {batch:5d} {1e3 * a:15.3f} {1e3 * b:12.3f} {a / b:6.2f}"
                f" {1e3 * ac:11.3f} {1e3 * bc:8.3f} {ac / bc:6.2f}",
                flush=True,
            )
    print(f"device: {built.device}, threads: {torch.get_num_threads()}, repeats: {repeats}")
    print(f"worst overhead ratio (cpu): {worst_cpu:.2f}")
    print(f"worst overhead ratio: {worst:.2f}")  # wall


def throughput(args: argparse.Namespace) -> None:
    batches = (4, 32) if args.quick else (2, 8, 32, 128)
    print(f"{'model':8} {'norm':9} {'batch':>5} {'samples/s':>10} {'peak MB':>8}")
    for model in ("mlp", "resnet", "rnn"):
        for norm in ("none", "batch", "layer", "instance", "group"):
            for batch in batches:
                try:
                    cfg = make_cfg(
                        f"model={model}",
                        f"norm={norm}",
                        f"batch={batch}",
                        f"data.train_size={max(batch * 20, 256)}",
                        "data.test_size=64",
                    )
                    built = build(cfg)
                except ConfigError as err:  # e.g. instance norm on an MLP: skip the cell
                    print(f"{model:8} {norm:9} {batch:5d} {'-':>10} {'-':>8}  ({type(err).__name__})")
                    continue
                trainer = built.trainer
                runner_epoch(trainer)
                if built.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                per_step = statistics.median(
                    time_per_step(
                        functools.partial(runner_epoch, trainer), trainer.steps_per_epoch, built.device
                    )[0]
                    for _ in range(3)
                )
                peak = (
                    torch.cuda.max_memory_allocated() / 2**20 if built.device.type == "cuda" else float("nan")
                )
                print(f"{model:8} {norm:9} {batch:5d} {batch / per_step:10.0f} {peak:8.1f}", flush=True)


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The sweep's cells, as `python run.py -m` would run them: an experiment's own grid
    (hydra.sweeper.params) crossed with the sweeps on the command line."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    params = make_cfg(*fixed, hydra=True).hydra.sweeper.get("params")
    return expand_grid(params, overrides)


def timed(cmd: list[str], ok: tuple[int, ...] = (0,)) -> float:
    env = {**os.environ, "CI": "1"}  # no progress bars
    tic = time.perf_counter()
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if result.returncode not in ok:
        sys.exit(f"error: {' '.join(cmd)} exited {result.returncode}:\n{result.stderr[-2000:]}")
    return time.perf_counter() - tic


def sweep(args: argparse.Namespace) -> None:
    """Wall time of the whole sweep, Python start-up included: that is what a user waits for.
    Threads are left to the harness (all cores for a single run, cores/jobs in parallel)."""
    size = ["data.train_size=256", "seed=0"] if args.quick else ["data.train_size=1024"]
    size += ["data.test_size=64", "epochs=1", "train_eval_size=0"]  # small_batch's 500 > 256 images
    overrides = [*(args.grid or SWEEP_GRID), *size]
    jobs = sweep_jobs(overrides)
    python = [sys.executable, str(REPO / "run.py")]
    print(f"grid: {' '.join(overrides)} ({len(jobs)} runs, {available_cores()} cores)", flush=True)
    with tempfile.TemporaryDirectory(prefix="nb-bench-sweep-") as tmp:
        timed([sys.executable, "-c", "import normbench.run.runner"])  # warm the file cache for both
        one_by_one = sum(timed([*python, f"results_dir={tmp}/serial", *job]) for job in jobs)
        print(f"one python run.py per run, one after another: {one_by_one:8.1f} s", flush=True)
        # the same work as one by one: no report at the end (python -m normbench.report)
        parallel = timed(
            [
                *python,
                "-m",
                f"results_dir={tmp}/parallel",
                *overrides,
                "hydra/launcher=parallel",
                "~hydra.callbacks.report",
            ]
        )
        print(f"python run.py -m ... hydra/launcher=parallel: {parallel:8.1f} s", flush=True)
        cells = sorted(cell_name(job) for job in jobs)
        for which in ("serial", "parallel"):  # the same runs, all done, in the same layout
            (sweep_dir,) = Path(tmp, which).iterdir()
            statuses = {cell: cell_status(sweep_dir / cell) for cell in cells}
            if set(statuses.values()) != {"done"}:
                sys.exit(f"error: {which}: expected {cells} done, got {statuses}")
    print(f"sweep speed-up (parallel launcher vs one by one): {one_by_one / parallel:.2f}x")


def startup(args: argparse.Namespace) -> None:
    """Median wall and CPU time of whole processes, interleaved so that load drift hits all
    alike: the tiny run (each repeat in a fresh results dir, so it trains), ``run.py --help``
    and a bad input (refused before training), against ``python -c 'import torch'``. CPU time
    is user+sys of the child (RUSAGE_CHILDREN, git included). The last line is the wall ratio,
    the measure (on a quiet machine); the CPU ratio above it moves less on a busy one.
    A floor: torch's optimizers import torch._dynamo (about 1 s of CPU, its teardown included)
    in their constructor and first step, which `import torch` alone does not pay."""
    repeats = 3 if args.quick else 5
    python = [sys.executable, str(REPO / "run.py")]
    bad = "bad input (norm=instance on mlp)"
    with tempfile.TemporaryDirectory(prefix="nb-bench-startup-") as tmp:
        commands = {
            "python -c 'import torch'": lambda i: [sys.executable, "-c", "import torch"],
            "tiny run": lambda i: [*python, *STARTUP_RUN, f"results_dir={tmp}/{i}"],
            "run.py --help": lambda i: [*python, "--help"],
            bad: lambda i: [
                *python,
                *STARTUP_RUN,
                "norm=instance",
                f"results_dir={tmp}/bad{i}",
            ],
        }
        timed(commands["tiny run"]("warm"))  # warm the file cache, and check that it works
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for i in range(repeats):
            for name, command in commands.items():
                before = _children_cpu()
                wall[name].append(timed(command(i), ok=(2,) if name == bad else (0,)))
                cpu[name].append(_children_cpu() - before)
    medians = {name: statistics.median(t) for name, t in wall.items()}
    cpu_medians = {name: statistics.median(t) for name, t in cpu.items()}
    base, cpu_base = medians["python -c 'import torch'"], cpu_medians["python -c 'import torch'"]
    # CPU seconds move less than wall time on a busy machine: shown beside it as a cross-check
    print(f"{'command':34} {'wall s':>7} {'ratio':>6} {'cpu s':>7} {'ratio':>6}  (medians of {repeats})")
    for name in commands:
        w, c = medians[name], cpu_medians[name]
        print(f"{name:34} {w:7.2f} {w / base:6.2f} {c:7.2f} {c / cpu_base:6.2f}")
    print(f"device: cpu, cores: {available_cores()}, load average: {os.getloadavg()[0]:.1f}")
    print(f"startup ratio (cpu): {cpu_medians['tiny run'] / cpu_base:.2f}")
    print(f"startup ratio: {medians['tiny run'] / base:.2f}")  # wall


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---- fused seeds ------------------------------------------------------------------------

FUSED_SEEDS = 5
FUSED_CELLS = [("resnet", 2), ("resnet", 8), ("resnet", 32), ("mlp", 2), ("mlp", 32), ("rnn", 2), ("rnn", 32)]


def fused_trainers(model: str, batch: int, steps: int, threads: int) -> list:
    overrides = [f"model={model}", "norm=batch", f"batch={batch}", f"data.train_size={batch * steps}"]
    overrides += ["data.test_size=32", f"threads={threads}"]
    return [build(make_cfg(*overrides, f"seed={seed}")) for seed in range(FUSED_SEEDS)]


def fused_cell(
    model: str, batch: int, steps: int, repeats: int, threads: int
) -> tuple[float, float, float, str]:
    """(unfused, fused) samples/s per seed for one cell (wall time), the speed-up in CPU time,
    and the device."""
    from normbench.run.fused.stack import MemberRng, Stack

    alone = [b.trainer for b in fused_trainers(model, batch, steps, threads)]
    built = fused_trainers(model, batch, steps, threads)
    stack = Stack([b.trainer for b in built], [MemberRng.capture() for _ in built], l1=0.0)
    device = built[0].device

    def one_after_another() -> None:
        for trainer in alone:
            runner_epoch(trainer)

    def fused() -> None:
        stack.train_epoch().sum().item()

    one_after_another(), fused()  # warm-up: allocator, kernels, vmap's first trace
    samples = FUSED_SEEDS * steps * batch
    alone_times = [time_per_step(one_after_another, 1, device) for _ in range(repeats)]
    fused_times = [time_per_step(fused, 1, device) for _ in range(repeats)]
    t_alone, t_fused = (statistics.median(wall for wall, _ in t) for t in (alone_times, fused_times))
    cpu_ratio = statistics.median(c for _, c in alone_times) / statistics.median(c for _, c in fused_times)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu, {torch.get_num_threads()} threads"
    )
    return samples / FUSED_SEEDS / t_alone, samples / FUSED_SEEDS / t_fused, cpu_ratio, name


def fused(args: argparse.Namespace) -> None:
    """Fused S=5 vs the same 5 runs one after another (same threads), per model x batch; the
    last line is the worst speed-up at batch 2 (the target: >= 2.0 on the CPU)."""
    from normbench.run.fused import plan

    steps, repeats = (10, 1) if args.quick else (40, 3)
    print(f"{'model':8} {'batch':>5} {'alone/s':>9} {'fused/s':>9} {'speed-up':>8} {'cpu x':>6}  plan")
    at_2, device = [], ""
    alone_rates: dict[str, dict[int, float]] = {}
    for model, batch in FUSED_CELLS:
        alone, together, cpu_ratio, device = fused_cell(model, batch, steps, repeats, args.threads)
        alone_rates.setdefault(model, {})[batch] = alone
        cfg = make_cfg(f"model={model}", f"batch={batch}")
        why = plan.why_not(cfg, FUSED_SEEDS)
        print(
            f"{model:8} {batch:5d} {alone:9.0f} {together:9.0f} {together / alone:8.2f} {cpu_ratio:6.2f}"
            f"  {why or 'fused'}",
            flush=True,
        )
        if batch == 2:
            at_2.append(together / alone)
    print(f"device: {device}; samples/s per seed, {FUSED_SEEDS} seeds, {steps} steps, median of {repeats}")
    for model, rates in alone_rates.items():
        print(overhead_bound(model, rates, FUSED_SEEDS))
    print(f"worst fused speed-up at batch 2: {min(at_2):.2f}")


def overhead_bound(model: str, rates: dict[int, float], seeds: int) -> str:
    """What fusing can gain at batch 2 if it removed all of the per-step fixed cost but S-1
    copies and made nothing else faster: an unfused step is t(b) = fixed + b x per_sample
    (fitted to the unfused runs at batch 2 and the largest batch measured), so S fused members
    take fixed + S x 2 x per_sample against S x t(2). The fit credits the larger batch's
    cheaper per-sample compute to the fixed cost, so the bound is on the generous side."""
    small, large = 2, max(rates)
    step = {b: b / rates[b] for b in (small, large)}  # s per unfused step
    per_sample = (step[large] - step[small]) / (large - small)
    fixed = max(step[small] - small * per_sample, 0.0)
    bound = seeds * step[small] / (fixed + seeds * small * per_sample)
    share = fixed / step[small]
    unlimited = f"{1 / (1 - share):.2f}x" if share < 1 else "no limit"
    return (
        f"{model}: unfused step at batch 2 = {1e3 * fixed:.2f} ms fixed + {1e3 * small * per_sample:.2f} ms "
        f"compute ({100 * share:.0f}% fixed); removing all but one fixed cost gives at most "
        f"{bound:.2f}x with {seeds} seeds ({unlimited} with any number)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("what", choices=["overhead", "throughput", "sweep", "startup", "fused"])
    parser.add_argument("--threads", type=int, default=1, help="fused: torch threads of every run")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    parser.add_argument(
        "--grid",
        nargs="+",
        metavar="OVERRIDE",
        help=f"sweep: the grid, as for run.py -m (default: {' '.join(SWEEP_GRID)})",
    )
    args = parser.parse_args()
    commands = {"overhead": overhead, "throughput": throughput, "sweep": sweep, "startup": startup}
    commands["fused"] = fused
    commands[args.what](args)


if __name__ == "__main__":
    main()
