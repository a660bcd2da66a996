"""One run, top to bottom: resolve the config -> build -> train and evaluate -> write.

The config is turned into objects here and nowhere else; models, data and sinks never see it.
Every bad input raises :class:`ConfigError` in :func:`build`, before any training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from normbench import provenance
from normbench.checkpoint import load_checkpoint, restore, save_checkpoint, truncate_metrics
from normbench.data import Dataset, build_dataset
from normbench.errors import ConfigError
from normbench.identity import config_identity, resolved_config
from normbench.keys import check_keys
from normbench.models import build_model, get_model_spec
from normbench.norms import (
    batch_statistics_modules,
    check_batch,
    check_forward,
    check_layout,
    check_model_norms,
    make_options,
    norm_builder,
    precise_bn_,
    running_stats_drift,
    standardize_conv_weights,
)
from normbench.optim import base_lr, build_optimizer, build_scheduler, lr_factor_fn
from normbench.sinks import Row, Sinks, open_sinks
from normbench.train import Trainer, activation_stds, evaluate, evaluate_batch_statistics

log = logging.getLogger("normbench")

EXIT_CODES = {"done": 0, "failed": 2, "diverged": 3, "interrupted": 130}
# outcomes a rerun would only repeat (same config and seed, same numbers): not run again
FINISHED = ("done", "diverged")


@dataclass
class Built:
    """What the config resolves to."""

    trainer: Trainer
    device: torch.device
    lr: float  # peak learning rate after linear scaling
    lr_factor: Callable[[int], float]
    batch_statistics: bool  # the model has norms with running statistics


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run one configuration into ``run_dir``; returns its summary (also in summary.json).

    A finished run of the same identity in ``run_dir`` is not run again, and an unfinished one
    resumes from its last epoch checkpoint (``force=true`` starts over). Raises ConfigError
    (after recording ``status: failed``) on bad input.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    identity = config_identity(cfg)
    previous = read_summary(run_dir)
    if (
        previous
        and previous.get("status") in FINISHED
        and previous.get("identity") == identity
        and not cfg.force
    ):
        log.info("already %s, skipping (force=true reruns): %s", previous["status"], run_dir)
        return previous

    summary = new_summary(cfg, identity)
    try:
        built = build(cfg)
    except Exception as err:
        finish(run_dir, summary, "failed", error=error_line(err))
        raise
    first_epoch = resume_or_start_fresh(run_dir, built, summary, cfg.force)
    summary.update(device=provenance.device_name(built.device), threads=torch.get_num_threads())
    sinks = open_sinks(run_dir, first_step=summary["steps"] + 1)
    try:
        with interrupt_on_sigterm():
            status = train(cfg, built, sinks, summary, run_dir, first_epoch)
    except KeyboardInterrupt:
        status = "interrupted"
    except Exception as err:  # a bug or a resource error mid-run: record it, then raise
        finish(run_dir, summary, "failed", error=error_line(err))
        raise
    finally:
        sinks.close(hparams=flat(summary["config"]), final=summary["final"])
    if status in FINISHED:
        (run_dir / "checkpoint.pt").unlink(missing_ok=True)  # only unfinished runs need one
    return finish(run_dir, summary, status)


def resume_or_start_fresh(run_dir: Path, built: Built, summary: dict[str, Any], force: bool) -> int:
    """Restore the run's last epoch checkpoint if it has one for this config (unless
    ``force``), else clear what an earlier run left; returns the first epoch to train."""
    resumed = None if force else load_checkpoint(run_dir, summary["identity"])
    if resumed is None:
        start_fresh(run_dir)
        return 1
    restore(built.trainer, resumed)
    truncate_metrics(run_dir / "metrics.csv", resumed["epoch"])
    summary.update(resumed["progress"])
    log.info("resuming after epoch %d from %s", resumed["epoch"], run_dir / "checkpoint.pt")
    return resumed["epoch"] + 1


def build(cfg: DictConfig) -> Built:
    """Resolve the config into objects; every bad input stops here with one ConfigError."""
    check_keys(resolved_config(cfg))
    check_run_keys(cfg)
    device = resolve_device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)

    spec = get_model_spec(cfg.model.name)
    norm_options = make_options(resolved_config(cfg.norm))
    check_layout(cfg.norm.name, spec.layout, cfg.model.name)
    check_batch(cfg.norm.name, norm_options, cfg.batch)

    data = build_dataset(cfg.data.name, model_modality=spec.native, **options(cfg.data))
    check_data_fits(data, cfg.data.name, cfg.model.name, spec.modalities, cfg.batch)
    steps = spec.cls.time_steps(data.input_shape) if spec.layout == "recurrent" else None
    norm_layer = norm_builder(cfg.norm.name, spec.layout, norm_options, impl=cfg.norm.impl, steps=steps)

    def make_model(layer: Callable[[int], torch.nn.Module]) -> torch.nn.Module:
        return build_model(
            cfg.model.name,
            input_shape=data.input_shape,
            num_classes=data.num_classes,
            norm_layer=layer,
            **options(cfg.model),
        )

    torch.manual_seed(cfg.seed)  # the init does not depend on what the data generator drew
    model = make_model(norm_layer)
    check_model_norms(model)
    x = data.x_train[: cfg.batch]
    check_forward(
        model,
        data.prepare(x) if data.prepare is not None else x,
        cfg.norm.name,
        cfg.model.name,
        lambda norm: make_model(norm_builder(norm, spec.layout, steps=steps)),
    )
    if cfg.norm.get("weight_std"):
        standardize_conv_weights(model)  # before the optimizer sees the parameters
    model.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
    if cfg.compile:
        # in place: state_dict keys (checkpoints) stay those of the plain model; dynamic shapes,
        # since eval chunks and the last precise-BN batch differ from the training batch
        model.compile(dynamic=True)

    lr = base_lr(cfg.optim.lr, cfg.batch, cfg.optim.linear_scaling)
    optimizer = build_optimizer(
        cfg.optim.name, model.parameters(), lr, **options(cfg.optim, "lr", "linear_scaling", "l1")
    )
    steps_per_epoch = data.x_train.shape[0] // cfg.batch
    factor = lr_factor_fn(cfg.sched.name, cfg.epochs * steps_per_epoch, steps_per_epoch, **options(cfg.sched))
    constant = cfg.sched.name == "constant" and not cfg.sched.warmup_epochs
    trainer = Trainer(
        model,
        data.to(device),
        optimizer,
        build_scheduler(optimizer, factor, constant),
        cfg.batch,
        torch.Generator().manual_seed(cfg.seed),
        l1_penalty(model, cfg.optim.l1),
        amp=cfg.amp,
        channels_last=cfg.channels_last,
    )
    return Built(trainer, device, lr, factor, bool(batch_statistics_modules(model)))


def train(
    cfg: DictConfig, built: Built, sinks: Sinks, summary: dict[str, Any], run_dir: Path, first_epoch: int = 1
) -> str:
    """Train up to cfg.epochs, evaluating, writing and checkpointing after every epoch;
    returns the status."""
    trainer = built.trainer
    steps_per_epoch = trainer.steps_per_epoch
    remaining = (cfg.epochs - first_epoch + 1) * steps_per_epoch
    if cfg.activations and first_epoch == 1:
        sinks.write(activation_rows(built, cfg.batch, 0, 0, summary["final"]))
    with progress_bar(cfg, remaining) as bar:
        for epoch in range(first_epoch, cfg.epochs + 1):
            tic = time.perf_counter()
            losses = trainer.train_epoch(on_step=bar.update).cpu()  # the epoch's one sync
            summary["train_time_s"] += time.perf_counter() - tic
            step = epoch * steps_per_epoch
            rows = train_rows(
                losses, epoch, step - steps_per_epoch, cfg.log_every, lambda s: built.lr * built.lr_factor(s)
            )
            summary.update(
                epochs_done=epoch,
                steps=step,
                train_samples_per_s=step * cfg.batch / max(summary["train_time_s"], 1e-9),
            )
            summary["final"]["train/loss"] = losses.mean().item()
            if torch.isfinite(losses).all():
                rows += eval_rows(built, cfg.batch, epoch, step, summary["final"])
            # the outputs can overflow (inf test loss) while the training loss stays finite
            for loss in ("train/loss", "test/loss"):
                if not math.isfinite(summary["final"].get(loss, 0.0)):
                    sinks.write(rows)
                    log.warning("epoch %d: the %s is not finite: diverged", epoch, loss)
                    return "diverged"
            if cfg.activations:
                rows += activation_rows(built, cfg.batch, epoch, step, summary["final"])
            if built.batch_statistics:
                rows += drift_rows(built, cfg.batch, epoch, step)
            rows += weight_rows(built, epoch, step, summary["final"])
            sinks.write(rows)
            sinks.flush()
            save_checkpoint(run_dir, summary["identity"], trainer, epoch, progress(summary))
            bar.set_postfix_str(f"loss {summary['final']['train/loss']:.3f}")
            log.info(epoch_line(epoch, cfg.epochs, summary))
    if built.batch_statistics and cfg.norm.get("precise_bn_samples"):
        sinks.write(
            precise_bn_rows(
                built, cfg.norm.precise_bn_samples, cfg.batch, cfg.epochs, summary["steps"], summary["final"]
            )
        )
        sinks.flush()
    return "done"


def progress(summary: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run carries over from the epochs before its checkpoint."""
    keys = ("epochs_done", "steps", "train_time_s", "train_samples_per_s", "final")
    return {k: summary[k] for k in keys}


def train_rows(
    losses: torch.Tensor, epoch: int, step0: int, every: int, lr_at: Callable[[int], float]
) -> list[Row]:
    """Mean training loss over windows of ``every`` steps (the last one may be shorter),
    stamped with the global step count at the window's end, plus the lr in use there."""
    rows: list[Row] = []
    for start in range(0, len(losses), every):
        end = min(start + every, len(losses))
        step = step0 + end
        rows.append((step, epoch, "train", "loss", losses[start:end].mean().item()))
        rows.append((step, epoch, "train", "lr", lr_at(step - 1)))
    return rows


def eval_rows(built: Built, batch: int, epoch: int, step: int, final: dict[str, float]) -> list[Row]:
    """Test metrics in eval mode, and with batch statistics when the model has them."""
    model, data = built.trainer.model, built.trainer.data
    results = {"test": evaluate(model, data)}
    if built.batch_statistics:
        results["test_batchstats"] = evaluate_batch_statistics(model, data, batch)
    rows: list[Row] = []
    for split, (loss, accuracy) in results.items():
        for metric, value in (("loss", loss), ("accuracy", accuracy)):
            rows.append((step, epoch, split, metric, value))
            final[f"{split}/{metric}"] = value
    return rows


def activation_rows(built: Built, batch: int, epoch: int, step: int, final: dict[str, float]) -> list[Row]:
    """Per-layer activation std on the first training batch (split ``activations``, metric
    ``std/<layer>`` counting from 1), and the first layer where it is NaN or inf."""
    data = built.trainer.data
    x = data.x_train[:batch]
    if data.prepare is not None:
        x = data.prepare(x)
    stds = activation_stds(built.trainer.model, x)
    bad = [i for i, s in enumerate(stds, 1) if not math.isfinite(s)]
    final["activations/first_nonfinite_layer"] = bad[0] if bad else float("nan")
    return [(step, epoch, "activations", f"std/{i}", s) for i, s in enumerate(stds, 1)]


def first_batches(data: Dataset, batch: int, samples: int) -> list[torch.Tensor]:
    """The first ``samples`` training inputs (at least one batch) in batches of ``batch``."""
    n = max(min(samples, data.x_train.shape[0]) // batch, 1) * batch
    chunks = data.x_train[:n].split(batch)
    return [data.prepare(x) for x in chunks] if data.prepare is not None else list(chunks)


def drift_rows(built: Built, batch: int, epoch: int, step: int) -> list[Row]:
    """How far BN's running statistics are from a training batch's (split ``bn_drift``,
    averaged over layers: ``mean`` shift in running stds, ``var`` as |log ratio|)."""
    drift = running_stats_drift(built.trainer.model, first_batches(built.trainer.data, batch, batch)[0])
    rows: list[Row] = []
    for kind in ("mean", "var"):
        values = [v for k, v in drift.items() if k.endswith(f"/{kind}")]
        if values:
            rows.append((step, epoch, "bn_drift", kind, sum(values) / len(values)))
    return rows


def precise_bn_rows(
    built: Built, samples: int, batch: int, epoch: int, step: int, final: dict[str, float]
) -> list[Row]:
    """Precise BN (Wu & Johnson 2021): with the weights frozen, recompute the running
    statistics over ``samples`` training samples in batches of the training size, then score
    the test set with them (split ``test_precise``)."""
    model, data = built.trainer.model, built.trainer.data
    precise_bn_(model, first_batches(data, batch, samples))
    loss, accuracy = evaluate(model, data)
    final.update({"test_precise/loss": loss, "test_precise/accuracy": accuracy})
    log.info(f"precise BN over {samples} samples: test loss {loss:.4f}  test acc {100 * accuracy:.2f}%")
    return [(step, epoch, "test_precise", "loss", loss), (step, epoch, "test_precise", "accuracy", accuracy)]


def epoch_line(epoch: int, epochs: int, summary: dict[str, Any]) -> str:
    f = summary["final"]
    line = (
        f"epoch {epoch}/{epochs}  train loss {f['train/loss']:.4f}  "
        f"test loss {f['test/loss']:.4f}  test acc {100 * f['test/accuracy']:.2f}%"
    )
    if "test_batchstats/accuracy" in f:
        line += f" (batch stats {100 * f['test_batchstats/accuracy']:.2f}%)"
    return line + f"  {summary['train_samples_per_s']:.0f} samples/s"


# ---- checks ---------------------------------------------------------------------------------


def weight_matrices(model: torch.nn.Module) -> list[torch.Tensor]:
    """The weight matrices and conv kernels, not biases or norm scales: what L1 and L2 act on."""
    return [p for p in model.parameters() if p.dim() > 1]


def l1_penalty(model: torch.nn.Module, l1: float) -> Callable[[], torch.Tensor] | None:
    """l1 x sum |w| over the weight matrices (not biases or norm scales), or None when off."""
    if l1 < 0:
        raise ConfigError("optim.l1", l1, "must be >= 0")
    if not l1:
        return None
    weights = weight_matrices(model)
    return lambda: l1 * sum(w.abs().sum() for w in weights)


# |w| below this counts as pruned: L1 with (sub)gradient steps makes weights hover around 0
# rather than hit it exactly, so an exact-zero count would read 0 under any L1 strength.
NEAR_ZERO = 1e-3


@torch.no_grad()
def weight_rows(built: Built, epoch: int, step: int, final: dict[str, float]) -> list[Row]:
    """The share of weight-matrix entries with |w| < NEAR_ZERO (L1's sparsity, source article
    2) and their mean |w| (what L2 shrinks), split ``weights``; once per epoch, one sync."""
    flat = torch.cat([w.abs().flatten() for w in weight_matrices(built.trainer.model)])
    near_zero, abs_mean = torch.stack([(flat < NEAR_ZERO).float().mean(), flat.mean()]).tolist()
    final.update({"weights/near_zero": near_zero, "weights/abs_mean": abs_mean})
    return [(step, epoch, "weights", "near_zero", near_zero), (step, epoch, "weights", "abs_mean", abs_mean)]


def check_run_keys(cfg: DictConfig) -> None:
    for key in ("batch", "epochs", "log_every"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(key, value, "must be a positive integer")
    if cfg.threads is not None and (not isinstance(cfg.threads, int) or cfg.threads < 1):
        raise ConfigError("threads", cfg.threads, "must be a positive integer or null (all cores)")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ConfigError("seed", cfg.seed, "must be an integer")
    if cfg.progress not in ("auto", True, False):
        raise ConfigError("progress", cfg.progress, "use auto, true or false")
    if cfg.amp and resolve_device(cfg.device).type != "cuda":
        raise ConfigError(
            "amp",
            cfg.amp,
            f"bf16 autocast is for CUDA devices; with device={cfg.device} on this machine leave amp=false",
        )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device",
            name,
            f"CUDA is not available here (torch {torch.__version__}); use device=auto or device=cpu",
        )
    if name not in ("cpu", "cuda"):
        raise ConfigError("device", name, "use auto, cpu or cuda")
    return torch.device(name)


def check_data_fits(data: Dataset, name: str, model: str, modalities: tuple[str, ...], batch: int) -> None:
    if data.modality not in modalities:
        raise ConfigError(
            "data",
            name,
            f"gives {data.modality} inputs of shape "
            f"{tuple(data.x_train.shape)} ({data.name}); model={model} reads "
            f"{', '.join(modalities)}",
        )
    n = data.x_train.shape[0]
    if batch > n:
        raise ConfigError(
            "batch",
            batch,
            f"is larger than the training set ({n} samples); use batch<={n} or a larger data.train_size",
        )


# ---- helpers --------------------------------------------------------------------------------


def options(node: DictConfig, *drop: str) -> dict[str, Any]:
    """A config group's keys as keyword arguments: everything but ``name`` and ``drop``."""
    plain = resolved_config(node)
    return {k: v for k, v in plain.items() if k != "name" and k not in drop}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"norm": {"name": "group"}} -> {"norm.name": "group"}"""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str) -> None: ...


@contextlib.contextmanager
def progress_bar(cfg: DictConfig, total: int) -> Iterator[Any]:
    """A tqdm bar on an interactive terminal; nothing in CI, in logs or with progress=false."""
    show = cfg.progress is True or (
        cfg.progress == "auto" and sys.stderr.isatty() and not os.environ.get("CI")
    )
    if not show:
        yield _NoBar()
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="step", dynamic_ncols=True, leave=False) as bar:
        yield bar


# ---- the run's record -----------------------------------------------------------------------


def new_summary(cfg: DictConfig, identity: str) -> dict[str, Any]:
    return {
        "status": "running",
        "error": None,
        "identity": identity,
        "name": cfg.name,
        "overrides": hydra_overrides(),
        "config": resolved_config(cfg),
        "final": {},
        "epochs_done": 0,
        "steps": 0,
        "wall_time_s": None,
        "train_time_s": 0.0,
        "train_samples_per_s": None,
        "device": None,
        "threads": None,
        "versions": provenance.versions(),
        **provenance.git_state(),
        "started": now(),
        "finished": None,
        "_tic": time.perf_counter(),
    }


def finish(run_dir: Path, summary: dict[str, Any], status: str, error: str | None = None) -> dict[str, Any]:
    """Stamp the outcome and write summary.json atomically (temp file, then rename), so a
    killed run never leaves a half-written one."""
    summary.update(
        status=status,
        error=error,
        finished=now(),
        wall_time_s=round(time.perf_counter() - summary.pop("_tic"), 3),
    )
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str, allow_nan=True))
    os.replace(tmp, run_dir / "summary.json")
    return summary


def error_line(err: Exception) -> str:
    """A ConfigError is already one line for the user; anything else is named by its type."""
    return str(err) if isinstance(err, ConfigError) else f"{type(err).__name__}: {err}"


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def start_fresh(run_dir: Path) -> None:
    """A run starts from scratch: drop what an earlier, different or unfinished run wrote."""
    for name in ("metrics.csv", "summary.json", "checkpoint.pt"):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "tb", ignore_errors=True)


def hydra_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM (a scheduler stopping the job) ends the run like Ctrl-C: status interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- the Hydra task -------------------------------------------------------------------------


def main(cfg: DictConfig) -> str:
    """What run.py calls: run, report bad input as one line, map the status to an exit code.

    In a sweep (multirun) nothing is raised or exited: the status is recorded in the run's
    summary.json, and the other runs go on.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    if cfg.threads is None and sweeping:
        torch.set_num_threads(threads_per_job(hydra_cfg.launcher))
    try:
        status = run(cfg, Path(hydra_cfg.runtime.output_dir))["status"]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        status = "failed"
    except Exception:
        if not sweeping:
            raise  # a single run shows the traceback
        # In a sweep one broken cell must not abort the others (Hydra would stop the sweep
        # and skip its report): the traceback goes to the log, summary.json says failed.
        log.exception("run failed: %s", hydra_cfg.runtime.output_dir)
        status = "failed"
    if status in ("diverged", "interrupted"):
        log.warning("run %s: %s", status, hydra_cfg.runtime.output_dir)
    if not sweeping and EXIT_CODES[status]:
        sys.exit(EXIT_CODES[status])
    return status


def threads_per_job(launcher: Any) -> int:
    """cores / parallel jobs for a launcher that runs jobs side by side on this machine
    (joblib's n_jobs, submitit's cpus_per_task), so parallel runs never oversubscribe the
    cores: with tiny models, two threads fighting for one core run several times slower."""
    cores = available_cores()
    if "cpus_per_task" in launcher and launcher.cpus_per_task:
        return max(1, int(launcher.cpus_per_task))
    jobs = launcher.get("n_jobs") or 1
    jobs = cores if jobs < 0 else jobs
    return max(1, cores // jobs)


def available_cores() -> int:
    """The cores this process may run on (taskset, a cgroup cpuset, a SLURM allocation), which
    may be far fewer than the machine's os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
