"""Write results trees exactly as the runner's file contract says, with made-up but realistic
numbers, so the analysis and report can be tested without training anything.

The default error model mimics the GroupNorm paper's shape on a small task: BN best at large
batch and degrading below ~8, GN flat, LN and IN a little worse, seed noise ~0.4 points.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

BASE_ERROR_PCT = {"batch": 14.0, "group": 15.0, "layer": 16.5, "instance": 19.0, "none": 22.0}
BATCH_STATS = {"batch"}  # the fake runner writes test_batchstats rows for these
LOGS_PER_EPOCH = 4
TRAIN_SIZE = 512

ErrorFn = Callable[[str, int, int], float]


def _rng(*key: Any) -> np.random.Generator:
    digest = hashlib.sha256(repr(key).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def default_error(norm: str, batch: int, seed: int) -> float:
    """Final test error in percent for a (norm, batch, seed) cell."""
    bn_penalty = 24.0 / batch**1.2 if norm in BATCH_STATS else 0.0
    return BASE_ERROR_PCT.get(norm, 18.0) + bn_penalty + _rng(norm, batch, seed).normal(0, 0.4)


def make_config(
    norm: str, batch: int, seed: int, model: str = "mlp", epochs: int = 3, name: str = "fake", **extra: Any
) -> dict[str, Any]:
    """A resolved config shaped like the runner's (nested groups, top-level scalars)."""
    config = {
        "model": {"name": model, "depth": 8 if model == "resnet" else 2, "width": 16}
        | ({"zero_init_residual": True} if model == "resnet" else {}),
        "norm": {"name": norm, **({"num_groups": 32} if norm == "group" else {})},
        "data": {"name": "synthetic", "train_size": TRAIN_SIZE, "test_size": 256},
        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4},
        "sched": {"name": "cosine", "warmup_epochs": 0},
        "name": name,
        "results_dir": "results",
        "batch": batch,
        "epochs": epochs,
        "seed": seed,
        "device": "auto",
        "log_every": 10,
        "threads": None,
        "progress": "auto",
        "force": False,
    }
    for dotted, value in extra.items():  # "norm__num_groups=8" sets norm.num_groups
        *parents, leaf = dotted.split("__")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return config


def metrics_rows(norm: str, batch: int, seed: int, error_pct: float, epochs: int) -> list[str]:
    """metrics.csv lines (no header): train loss/lr per log window, test metrics per epoch."""
    rng = _rng("curve", norm, batch, seed)
    steps_per_epoch = max(1, TRAIN_SIZE // batch)
    window = max(1, steps_per_epoch // LOGS_PER_EPOCH)
    final_loss = 0.1 + error_pct / 40
    rows, step = [], 0
    for epoch in range(1, epochs + 1):
        for _ in range(LOGS_PER_EPOCH):
            step += window
            progress = step / (steps_per_epoch * epochs)
            jitter = (0.08 if norm in BATCH_STATS else 0.03) * rng.normal() * progress
            loss = final_loss + 0.6 * math.exp(-4 * progress) + jitter
            lr = 0.1 * (1 - progress)
            rows += [f"{step},{epoch},train,loss,{loss:.6f}", f"{step},{epoch},train,lr,{lr:.6f}"]
        err = error_pct / 100 + 0.1 * (epochs - epoch) / epochs
        rows += [
            f"{step},{epoch},test,loss,{final_loss + err:.6f}",
            f"{step},{epoch},test,accuracy,{1 - err:.6f}",
        ]
        if norm in BATCH_STATS:
            gap = 8.0 / batch / 100  # batch statistics hurt more at small batch
            rows += [
                f"{step},{epoch},test_batchstats,loss,{final_loss + err + gap:.6f}",
                f"{step},{epoch},test_batchstats,accuracy,{1 - err - gap:.6f}",
            ]
    return rows


def write_run(
    run_dir: Path,
    norm: str,
    batch: int,
    seed: int,
    *,
    status: str = "done",
    error: ErrorFn = default_error,
    model: str = "mlp",
    epochs: int = 3,
    name: str = "fake",
    overrides: list[str] | None = None,
    summary: bool = True,
    record: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """One run directory: metrics.csv, summary.json (unless ``summary`` is False) and .hydra/.
    ``record``: more summary.json keys, e.g. ``{"choices": {"norm": "group8"}}`` or
    ``{"learned": False, "learned_note": "..."}``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = make_config(norm, batch, seed, model, epochs, name, **extra)
    overrides = overrides if overrides is not None else [f"batch={batch}", f"norm={norm}", f"seed={seed}"]
    err = error(norm, batch, seed)
    done_epochs = epochs if status == "done" else max(1, epochs - 2)
    lines = metrics_rows(norm, batch, seed, err, epochs)
    cut = [i for i, line in enumerate(lines) if f",{done_epochs + 1},train," in line]
    lines = lines[: cut[0]] if cut else lines
    (run_dir / "metrics.csv").write_text("step,epoch,split,metric,value\n" + "\n".join(lines) + "\n")
    hydra = run_dir / ".hydra"
    hydra.mkdir(exist_ok=True)
    (hydra / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    (hydra / "overrides.yaml").write_text(json.dumps(overrides))
    if summary:
        written = make_summary(config, overrides, status, err, done_epochs, norm, batch)
        (run_dir / "summary.json").write_text(json.dumps({**written, **(record or {})}))
    return run_dir


def make_summary(
    config: dict[str, Any],
    overrides: list[str],
    status: str,
    error_pct: float,
    epochs_done: int,
    norm: str,
    batch: int,
) -> dict[str, Any]:
    acc = 1 - error_pct / 100
    final: dict[str, float] = {
        "train/loss": 0.05 + error_pct / 50,
        "test/loss": 0.1 + error_pct / 40,
        "test/accuracy": acc,
    }
    if norm in BATCH_STATS:
        final["test_batchstats/accuracy"] = acc - 8.0 / batch / 100
        final["test_batchstats/loss"] = final["test/loss"] + 0.05
    if status == "diverged":
        final = {"train/loss": float("nan"), "test/accuracy": 0.5}
    steps = epochs_done * max(1, TRAIN_SIZE // batch)
    return {
        "status": status,
        "error": None if status == "done" else f"{status} at step {steps}",
        "identity": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16],
        "name": config["name"],
        "overrides": overrides,
        "config": config,
        "final": final,
        "epochs_done": epochs_done,
        "steps": steps,
        "wall_time_s": 1.5 + 64 / batch,
        "train_samples_per_s": 300.0 * batch**0.5,
        "device": "cpu",
        "threads": 1,
        "versions": {"python": "3.11.9", "torch": "2.13.0", "hydra": "1.3.2", "normbench": "0.1.0"},
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "git_dirty": False,
        "started": "2025-01-01T10:00:00",
        "finished": "2025-01-01T10:00:05",
    }


def write_sweep(
    root: Path,
    norms: Iterable[str] = ("batch", "layer", "group"),
    batches: Iterable[int] = (2, 8, 32),
    seeds: Iterable[int] = (1, 2, 3),
    **kwargs: Any,
) -> Path:
    """A Hydra-style sweep: multirun.yaml plus one ``batch=..,norm=..,seed=..`` dir per run."""
    root.mkdir(parents=True, exist_ok=True)
    norms, batches, seeds = list(norms), list(batches), list(seeds)
    (root / "multirun.yaml").write_text(
        json.dumps(
            {
                "hydra": {
                    "sweeper": {
                        "params": {
                            "norm": ",".join(norms),
                            "batch": ",".join(map(str, batches)),
                            "seed": ",".join(map(str, seeds)),
                        }
                    }
                }
            }
        )
    )
    for norm in norms:
        for batch in batches:
            for seed in seeds:
                write_run(root / f"batch={batch},norm={norm},seed={seed}", norm, batch, seed, **kwargs)
    return root


def add_activations(run_dir: Path, stds: Iterable[float], step: int = 0, epoch: int = 0) -> Path:
    """Append per-layer activation stds (split ``activations``, metric ``std/<layer>`` from 1)
    as the runner does with ``activations=true``, and set the summary's first non-finite layer
    (as for the last logged point)."""
    stds = list(stds)
    rows = [f"{step},{epoch},activations,std/{i},{s!r}" for i, s in enumerate(stds, 1)]
    with (run_dir / "metrics.csv").open("a") as f:
        f.write("\n".join(rows) + "\n")
    path = run_dir / "summary.json"
    if path.exists():
        summary = json.loads(path.read_text())
        bad = [i for i, s in enumerate(stds, 1) if not math.isfinite(s)]
        summary["final"]["activations/first_nonfinite_layer"] = bad[0] if bad else float("nan")
        path.write_text(json.dumps(summary))
    return run_dir


def set_curve(
    run_dir: Path, points: Iterable[tuple[int, float]], split: str = "train", metric: str = "loss"
) -> Path:
    """Replace a run's ``split``/``metric`` rows with the given (step, value) points."""
    path = run_dir / "metrics.csv"
    head, *lines = path.read_text().splitlines()
    keep = [line for line in lines if line.split(",")[2:4] != [split, metric]]
    new = [f"{step},1,{split},{metric},{value!r}" for step, value in points]
    path.write_text("\n".join([head, *new, *keep]) + "\n")
    return run_dir


def add_train_eval(run_dir: Path, losses: Iterable[float], steps_per_epoch: int = 10) -> Path:
    """Append eval-mode train losses (split ``train_eval``) for epochs 0, 1, ..., as the runner
    writes them with ``train_eval_size`` > 0, and set the summary's final ``train_eval/loss``."""
    losses = list(losses)
    rows = [f"{e * steps_per_epoch},{e},train_eval,loss,{v!r}" for e, v in enumerate(losses)]
    with (run_dir / "metrics.csv").open("a") as f:
        f.write("\n".join(rows) + "\n")
    path = run_dir / "summary.json"
    if path.exists():
        summary = json.loads(path.read_text())
        summary["final"]["train_eval/loss"] = losses[-1]
        path.write_text(json.dumps(summary))
    return run_dir


def add_bn_noise(run_dir: Path, noise: dict[str, tuple[float, float]], step: int = 10**6) -> Path:
    """Append per-layer batch-statistics noise (split ``bn_noise``, metrics ``{layer}/mean``
    and ``{layer}/var``) after the last epoch, as the runner does with ``bn_noise=true``."""
    rows = [
        f"{step},0,bn_noise,{layer}/{stat},{v!r}"
        for layer, pair in noise.items()
        for stat, v in zip(("mean", "var"), pair)
    ]
    with (run_dir / "metrics.csv").open("a") as f:
        f.write("\n".join(rows) + "\n")
    return run_dir
