"""One run, top to bottom: resolve the config -> build -> train and evaluate -> write.

The config is turned into objects here and nowhere else; models, data and sinks never see it.
Every bad input raises :class:`ConfigError` in :func:`build`, before any training.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from normbench.config.checks import (
    check_data_fits,
    check_devices,
    check_keys,
    check_model_fits,
    check_run_keys,
    resolve_device,
)
from normbench.config.presets import norm_defaults
from normbench.data import build_dataset
from normbench.models import build_model, get_model_spec
from normbench.norms import (
    NORMS,
    NormBuilder,
    check_batch,
    check_forward,
    check_layout,
    check_model_norms,
    get_norm_spec,
    make_options,
    norm_builder,
    norm_properties,
    norm_style,
    standardize_conv_weights,
)
from normbench.optim import base_lr, build_lr_schedule, build_optimizer, l1_penalty, sgd_batch
from normbench.probes import Diverged, Metric, Point, Probe, measure, probe_metrics, select_probes
from normbench.registry import user_label
from normbench.run import learned, provenance, record, rundir
from normbench.run.checkpoint import CARRIED, PROGRESS, resume_or_start_fresh, save_checkpoint
from normbench.run.identity import config_identity, resolved_config
from normbench.run.interrupt import interrupt_on_sigterm
from normbench.run.progress import epoch_line, progress_bar
from normbench.run.sinks import Sinks, open_sinks
from normbench.run.train import Trainer

log = logging.getLogger("normbench")

# the runner's own measurement beside the probes' (summary.json's train_samples_per_s)
THROUGHPUT = Metric(
    "train_samples_per_s", "samples/s", True, "training samples per second of training time", table=True
)


@dataclass
class Built:
    """What the config resolves to."""

    trainer: Trainer
    device: torch.device
    probes: list[Probe]  # the measurements this run takes


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run one configuration into ``run_dir``; returns its summary (also in summary.json).

    A finished run of the same identity in ``run_dir`` is not run again, and an unfinished one
    resumes from its last epoch checkpoint (``force=true`` starts over). Raises ConfigError
    (after recording ``status: failed``) on bad input. The directory is locked for the run,
    and a finished run in it stays untouched until this run's build has succeeded.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with rundir.held(run_dir, cfg.name):
        return run_locked(cfg, run_dir)


def run_locked(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """:func:`run` in a directory already held: one member, stepped on its own."""
    member = prepare(cfg, run_dir)
    if isinstance(member, dict):
        return member  # finished before: not run again
    train_members([member], step_each)
    return finish(member)


@dataclass
class Member:
    """One run while it trains: what the lifecycle holds for it between prepare and finish.

    ``scope`` surrounds everything done for this run alone (its probes, rows, checkpoint, log
    lines); a fused group sets it to the member's own log file and share of the global RNGs.
    ``label`` starts its log lines where several runs share a log (``seed 3: ``)."""

    cfg: DictConfig
    run_dir: Path
    summary: dict[str, Any]
    built: Built
    first_epoch: int
    sinks: Sinks
    scope: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext
    label: str = ""
    status: str | None = None  # set once its training ends

    @property
    def trainer(self) -> Trainer:
        return self.built.trainer


# a stepper trains the given members one epoch and returns each one's per-step losses (on the
# host: the epoch's one sync); train_members drives it. One member: step_each; a fused group:
# normbench.run.fused.stepper's stacked stepper.
Stepper = Callable[[list[Member], Callable[[], None]], list[torch.Tensor]]


def step_each(members: list[Member], on_step: Callable[[], None]) -> list[torch.Tensor]:
    """Each member's epoch on its own model, one after another."""
    losses = []
    for m in members:
        with m.scope():
            losses.append(m.trainer.train_epoch(on_step=on_step).cpu())
    return losses


def prepare(cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None) -> Member | dict[str, Any]:
    """Everything before training: identity, build, resume, the directory's records and sinks.
    Returns the finished run's summary when this config need not run again. ``overrides``: the
    run's Hydra overrides where its job had others (a fused member)."""
    identity = config_identity(cfg)
    finished, done_already = finished_here(cfg, run_dir, identity)
    if done_already:
        return finished
    summary = record.new_summary(cfg, identity, versions=provenance.versions(), **provenance.git_state())
    if overrides is not None:
        summary["overrides"] = overrides
    built = build_or_record_failure(cfg, run_dir, summary, finished)
    first_epoch = resume_or_start_fresh(run_dir, built.trainer, summary, cfg.force)
    summary[record.CHECKPOINTED] = progress(summary)
    rundir.record_hydra_config(run_dir, cfg, overrides)
    summary.update(device=provenance.device_name(built.device), threads=torch.get_num_threads())
    # which batch is which: BN's statistics come from the per-device batch, SGD steps on the total
    summary.update(per_device_batch=cfg.batch, sgd_batch=built.trainer.batch)
    summary[record.NORM_RECORD] = norm_record(cfg, summary["choices"])
    summary[record.METRICS_RECORD] = {m.name: m.record() for m in (*probe_metrics(built.probes), THROUGHPUT)}
    return Member(cfg, run_dir, summary, built, first_epoch, open_sinks(run_dir))


def norm_record(cfg: DictConfig, choices: dict[str, str | None]) -> dict[str, Any]:
    """The run's norm as the analysis names and groups it (record.NORM_RECORD), written here
    where the config tree and the registry are at hand, so that a results tree reports the same
    without them: the label is the ``conf/norm`` file the user chose (``group8``), and the preset
    is what that file composes to, which the analysis compares the run's options with. A user's
    norm (one the registry resolves from its options) goes by its own name and has no preset."""
    options = make_options(resolved_config(cfg.norm))
    name = str(cfg.norm.name)
    label = choices.get("norm") or name
    preset = dict(norm_defaults(label) or ()) or None
    if NORMS.lookup(name).resolve is not None:
        label, preset = user_label(cfg.norm.get("_target_"), cfg.norm.get("label")), {}
    spec = get_norm_spec(name, options)
    return {
        "label": label,
        "name": name,
        "preset": preset,
        "properties": norm_properties(spec),
        "style": norm_style(spec),
    }


def train_members(members: list[Member], step: Stepper) -> None:
    """Train ``members`` (all resumed from the same epoch) with ``step``, recording how each
    ends: Ctrl-C or SIGTERM ``interrupted``; a bug or a resource error ``failed``, then raised."""
    try:
        with interrupt_on_sigterm():
            train(members, step)
    except KeyboardInterrupt:
        end_unfinished(members, record.INTERRUPTED)
    except Exception as err:  # a bug or a resource error mid-run: record it, then raise
        end_unfinished(members, record.FAILED, record.error_line(err))
        raise
    finally:
        for m in members:
            m.sinks.close(hparams=record.flat(m.summary["config"]), final=m.summary["final"])


def end_unfinished(members: list[Member], status: str, error: str | None = None) -> None:
    """The members still training end ``status``; with ``error`` (a failure) it is recorded now."""
    for m in members:
        if m.status is None:
            m.status = status
            if error is not None:
                record.finish(m.run_dir, m.summary, status, error=error)


def finish(m: Member) -> dict[str, Any]:
    """Everything after training: did it learn, summary.json, and the checkpoint removed."""
    assert m.status is not None
    if m.status in record.FINISHED:
        with m.scope():
            learned.judge_run(m.cfg, m.trainer.data.y_test, m.summary, m.status, m.run_dir / "metrics.csv")
    record.finish(m.run_dir, m.summary, m.status)
    if m.status in record.FINISHED:  # after the summary: a kill in between leaves a resumable run
        (m.run_dir / "checkpoint.pt").unlink(missing_ok=True)  # only unfinished runs need one
    return m.summary


def finished_here(cfg: DictConfig, run_dir: Path, identity: str) -> tuple[dict[str, Any] | None, bool]:
    """The finished run in ``run_dir`` (or None) and whether it is this config's, so nothing need
    run (``force=true`` reruns it). Raises ConfigError if it is another config's (check_owner)."""
    previous = record.read_summary(run_dir)
    finished = previous if previous and previous.get("status") in record.FINISHED else None
    if finished and record.is_finished(finished, identity) and not cfg.force:
        log.info("already %s, skipping (force=true reruns): %s", finished["status"], run_dir)
        return finished, True
    rundir.check_owner(run_dir, finished, identity, cfg.force, cfg.name)
    return finished, False


def build_or_record_failure(
    cfg: DictConfig, run_dir: Path, summary: dict[str, Any], finished: dict[str, Any] | None
) -> Built:
    """:func:`build`; a failure is recorded unless a finished run is there (kept until one can start)."""
    try:
        return build(cfg)
    except Exception as err:
        if finished is None:
            record.finish(run_dir, summary, record.FAILED, error=record.error_line(err))
        raise


def build(cfg: DictConfig) -> Built:
    """Resolve the config into objects; every bad input stops here with one ConfigError."""
    check_keys(resolved_config(cfg))
    check_run_keys(cfg)
    device = resolve_device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)

    spec = get_model_spec(cfg.model.name, options(cfg.model))
    norm_options = make_options(resolved_config(cfg.norm))
    check_layout(cfg.norm.name, spec.layout, cfg.model.name, norm_options)
    for note in (spec.note, get_norm_spec(cfg.norm.name, norm_options).note):  # a user's model or norm
        if note:
            log.info(note)
    check_batch(cfg.norm.name, norm_options, cfg.batch)  # per device: what the norms see
    batch = sgd_batch(cfg)

    data = build_dataset(cfg.data.name, model_modality=spec.native, run_seed=cfg.seed, **options(cfg.data))
    check_devices(cfg.batch, cfg.devices, data.x_train.shape[0])
    check_data_fits(data, cfg.data.name, cfg.model.name, spec.modalities, cfg.batch, cfg.train_eval_size)
    steps = spec.norm_steps(data.input_shape)
    device_batch = cfg.batch if cfg.devices > 1 else None
    norm_layer = norm_builder(
        cfg.norm.name,
        spec.layout,
        norm_options,
        impl=cfg.norm.get("impl"),
        steps=steps,
        device_batch=device_batch,
    )

    def make_model(layer: NormBuilder) -> torch.nn.Module:
        return build_model(
            cfg.model.name,
            input_shape=data.input_shape,
            num_classes=data.num_classes,
            norm_layer=layer,
            **options(cfg.model),
        )

    check_model_fits(spec, cfg.model.name, data, batch, device, options(cfg.model))  # the SGD batch
    torch.manual_seed(cfg.seed)  # the init does not depend on what the data generator drew
    model = make_model(norm_layer)
    check_model_norms(model)
    x = data.x_train[:batch]
    check_forward(
        model,
        data.prepare(x) if data.prepare is not None else x,
        cfg.norm.name,
        cfg.model.name,
        lambda norm: make_model(norm_builder(norm, spec.layout, steps=steps, device_batch=device_batch)),
        num_classes=data.num_classes,
    )
    if cfg.norm.get("weight_std"):
        standardize_conv_weights(model)  # before the optimizer sees the parameters
    model.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
    if cfg.compile:
        # in place: state_dict keys (checkpoints) stay those of the plain model; dynamic shapes,
        # since eval chunks and the last precise-BN batch differ from the training batch
        model.compile(dynamic=True)

    lr = base_lr(cfg.optim.lr, batch, cfg.optim.linear_scaling)
    optimizer = build_optimizer(
        cfg.optim.name, model.parameters(), lr, **options(cfg.optim, "lr", "linear_scaling", "l1")
    )
    steps_per_epoch = data.x_train.shape[0] // batch
    factor, scheduler = build_lr_schedule(
        optimizer, cfg.sched.name, cfg.epochs * steps_per_epoch, steps_per_epoch, **options(cfg.sched)
    )
    trainer = Trainer(
        model,
        data.to(device),
        optimizer,
        scheduler,
        batch,
        torch.Generator().manual_seed(cfg.seed),
        l1_penalty(model, cfg.optim.l1),
        amp=cfg.amp,
        channels_last=cfg.channels_last,
    )
    return Built(trainer, device, select_probes(cfg, model, lambda s: lr * factor(s)))


def train(members: list[Member], step: Stepper) -> None:
    """Train up to cfg.epochs, measuring (the probes), writing and checkpointing each member
    after every epoch; a member that diverges stops there, the others go on."""
    cfg, first = members[0].cfg, members[0].first_epoch
    if first == 1:
        for m in members:
            with m.scope():
                m.sinks.write(measure(m.built.probes, "at_start", Point(m.trainer, 0, 0, m.summary["final"])))
    active = members
    per_epoch = members[0].trainer.steps_per_epoch
    with progress_bar(cfg, (cfg.epochs - first + 1) * per_epoch) as bar:
        for epoch in range(first, cfg.epochs + 1):
            tic = time.perf_counter()
            losses = step(active, bar.update)
            share = (time.perf_counter() - tic) / len(active)  # each member's part of the wall time
            active = [m for m, own in zip(active, losses, strict=True) if after_epoch(m, epoch, own, share)]
            if not active:
                return
            if len(members) == 1:
                bar.set_postfix_str(f"loss {members[0].summary['final']['train/loss']:.3f}")
    for m in active:
        at = Point(m.trainer, cfg.epochs, m.summary["steps"], m.summary["final"])
        with m.scope():
            if rows := measure(m.built.probes, "at_end", at):
                m.sinks.write(rows)
                m.sinks.flush()
        m.status = record.DONE


def after_epoch(m: Member, epoch: int, losses: torch.Tensor, seconds: float) -> bool:
    """One member's epoch measured, written and checkpointed; False once it has diverged."""
    cfg, summary = m.cfg, m.summary
    step = count_epoch(summary, epoch, m.trainer.steps_per_epoch, m.trainer.batch, seconds)
    with m.scope():
        try:
            rows = measure(
                m.built.probes, "at_epoch", Point(m.trainer, epoch, step, summary["final"], losses)
            )
        except Diverged as stop:
            m.sinks.write(stop.rows)
            log.warning("%sepoch %d: %s: diverged", m.label, epoch, stop)
            m.status = record.DIVERGED
            return False
        m.sinks.write(rows)
        m.sinks.flush()
        checkpoint(m.run_dir, m.trainer, epoch, summary)
        log.info("%s%s", m.label, epoch_line(epoch, cfg.epochs, summary, cfg.eval_every))
    return True


def count_epoch(summary: dict[str, Any], epoch: int, per_epoch: int, batch: int, seconds: float) -> int:
    """Add a trained epoch to the summary's counts; returns the global step count."""
    summary["train_time_s"] += seconds
    step = epoch * per_epoch
    summary.update(
        epochs_done=epoch, steps=step, train_samples_per_s=step * batch / max(summary["train_time_s"], 1e-9)
    )
    return step


def progress(summary: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run carries over from the epochs before its checkpoint (a copy: the
    summary's ``final`` changes in the next epoch)."""
    return copy.deepcopy({k: summary[k] for k in (*PROGRESS, *CARRIED) if k in summary})


def checkpoint(run_dir: Path, trainer: Trainer, epoch: int, summary: dict[str, Any]) -> None:
    """Save the epoch's checkpoint, and keep its counts for the summary of an interruption
    before the next one (record.finish)."""
    saved = progress(summary)
    save_checkpoint(run_dir, summary["identity"], trainer, epoch, saved)
    summary[record.CHECKPOINTED] = saved


# ---- helpers --------------------------------------------------------------------------------


def options(node: DictConfig, *drop: str) -> dict[str, Any]:
    """A config group's keys as keyword arguments: everything but ``name`` and ``drop``."""
    plain = resolved_config(node)
    return {k: v for k, v in plain.items() if k != "name" and k not in drop}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
