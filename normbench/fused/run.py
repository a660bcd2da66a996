"""Runs that differ only in ``seed``, trained together: each member in its own run directory,
with its own lock, files, checkpoint and status, exactly as :func:`normbench.runner.run` would
leave them; only ``summary.json`` gains ``fused_with`` (the seeds trained together, in any of
the sessions a resumed run took).

A member is built by the runner's own :func:`~normbench.runner.build` (same seeding, init, data
and batch-order generator), resumed from its own checkpoint, then stacked (:mod:`.stack`).
After every epoch the stack is written back into each member's plain model, and its probes,
rows and checkpoint are the runner's. Where the members cannot be stacked they run one after
another through the runner's own loop, with one log line saying why.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from normbench import learned, provenance, record, rundir
from normbench.checkpoint import resume_or_start_fresh
from normbench.errors import ConfigError
from normbench.fused import FUSED_KEY, plan
from normbench.fused.logs import member_log, routed
from normbench.fused.stack import MemberRng, Stack, check_stackable, same_data
from normbench.identity import config_identity
from normbench.interrupt import interrupt_on_sigterm
from normbench.probes import Diverged, Point, measure
from normbench.progress import epoch_line, progress_bar
from normbench.runner import (
    Built,
    build_or_record_failure,
    checkpoint,
    count_epoch,
    finished_here,
    progress,
    run_locked,
    train,
)
from normbench.sinks import Sinks, open_sinks

log = logging.getLogger("normbench")


@dataclass
class Member:
    """One seed's run: what runner.run_locked holds for it while it trains."""

    index: int  # its place in the group
    cfg: DictConfig
    run_dir: Path
    summary: dict[str, Any]
    built: Built
    first_epoch: int
    rng: MemberRng
    sinks: Sinks
    status: str | None = None  # set once its training ends

    @property
    def trainer(self) -> Any:
        return self.built.trainer


def member_config(cfg: DictConfig, seed: int) -> DictConfig:
    """The config of seed ``seed``'s run as if run alone."""
    member = copy.deepcopy(cfg)
    with open_dict(member):
        member.pop(FUSED_KEY, None)
        member.seed = seed
    return member


def run_group(
    cfg: DictConfig, seeds: list[int], run_dirs: list[Path], overrides: list[list[str]] | None = None
) -> list[dict[str, Any]]:
    """Run seed ``seeds[i]`` of ``cfg`` into ``run_dirs[i]``, fused where it can be; returns
    their summaries. ``overrides``: each member's Hydra overrides as if run alone (for its
    summary and .hydra/). Raises ConfigError (after recording ``failed``) on bad input."""
    why = plan.why_not(member_config(cfg, seeds[0]), len(seeds))
    with contextlib.ExitStack() as locks:
        free, refused = _lock(locks, [Path(d) for d in run_dirs], cfg.name)
        configs = [member_config(cfg, seeds[i]) for i in free]
        dirs = [Path(run_dirs[i]) for i in free]
        locks.enter_context(routed())
        if why:
            summaries = _run_unfused(configs, dirs, why)
        else:
            summaries = _run_locked_group(configs, dirs, [overrides[i] for i in free] if overrides else None)
    _raise_unless_interrupted(refused, summaries)  # after the others have run, as unfused
    return summaries


def _raise_unless_interrupted(errors: list[Exception], summaries: list[dict[str, Any]]) -> None:
    """The first error of a member that could not start, unless Ctrl-C or SIGTERM stopped the
    others: then the job reports interrupted, so that the sweep stops."""
    if errors and not any(s["status"] == record.INTERRUPTED for s in summaries):
        raise errors[0]


def _lock(
    locks: contextlib.ExitStack, run_dirs: list[Path], name: str
) -> tuple[list[int], list[ConfigError]]:
    """Hold each member's directory for the block of ``locks``; returns the indices of those
    held and the errors of those another process holds (each fails alone, as unfused)."""
    free, refused = [], []
    for i, run_dir in enumerate(run_dirs):
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            locks.enter_context(rundir.held(run_dir, name))
            free.append(i)
        except ConfigError as err:
            refused.append(err)
    return free, refused


def _run_unfused(configs: list[DictConfig], run_dirs: list[Path], why: str) -> list[dict[str, Any]]:
    if run_dirs:
        with member_log(*run_dirs):
            log.info("seeds %s run one after another: %s", [c.seed for c in configs], why)
    summaries, errors = [], []
    for cfg, run_dir in zip(configs, run_dirs, strict=True):
        try:
            with member_log(run_dir):
                summaries.append(run_locked(cfg, run_dir))
        except ConfigError as err:  # one that cannot start (another config's run there): alone
            errors.append(err)
            continue
        if summaries[-1]["status"] == record.INTERRUPTED:  # Ctrl-C or SIGTERM: start no other
            break
    _raise_unless_interrupted(errors, summaries)
    return summaries


def _run_locked_group(
    configs: list[DictConfig], run_dirs: list[Path], overrides: list[list[str]] | None
) -> list[dict[str, Any]]:
    summaries: list[dict[str, Any] | None] = [None] * len(configs)
    members: list[Member] = []
    errors: list[Exception] = []
    for i, (cfg, run_dir) in enumerate(zip(configs, run_dirs, strict=True)):
        try:
            with member_log(run_dir):
                prepared = _prepare(i, cfg, run_dir, overrides[i] if overrides else None)
        except Exception as err:  # noqa: BLE001  recorded by _prepare as its run would; raised below
            errors.append(err)
            continue
        if isinstance(prepared, dict):
            summaries[i] = prepared  # finished before: not run again
        else:
            _share_data(prepared, members)
            members.append(prepared)
    if errors and not members:  # a bad input: the members differ only in seed, so every one's
        raise errors[0]
    try:
        with interrupt_on_sigterm():
            _train_all(members)
    except KeyboardInterrupt:
        _end_unfinished(members, record.INTERRUPTED)
    except Exception as err:  # a bug or a resource error mid-run: record it, then raise
        _end_unfinished(members, record.FAILED, record.error_line(err))
        raise
    finally:
        for m in members:
            m.sinks.close(hparams=record.flat(m.summary["config"]), final=m.summary["final"])
    for m in members:
        summaries[m.index] = _finish(m)
    finished = [s for s in summaries if s is not None]
    _raise_unless_interrupted(errors, finished)  # one that could not start (another config's run there)
    return finished


def _prepare(
    index: int, cfg: DictConfig, run_dir: Path, overrides: list[str] | None
) -> Member | dict[str, Any]:
    """What runner.run_locked does before training, for one member; a finished run's summary
    when it need not run again."""
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
    # the global RNGs as this member's unfused run would hold them now
    return Member(index, cfg, run_dir, summary, built, first_epoch, MemberRng.capture(), open_sinks(run_dir))


def _share_data(member: Member, others: list[Member]) -> None:
    """One copy of the data where the members' draws are the same (resample=false): S copies of
    CIFAR-10 would cost S x 150 MB (on the GPU too)."""
    for other in others:
        if same_data(member.trainer, other.trainer):
            member.trainer.data = other.trainer.data
            return


def _train_all(members: list[Member]) -> None:
    """Members resumed from the same epoch train as one stack; a stack of one, or one that
    cannot be stacked, trains through the runner's own loop."""
    members = sorted(members, key=lambda m: m.first_epoch)
    for _, same_start in itertools.groupby(members, key=lambda m: m.first_epoch):
        group = list(same_start)
        why = check_stackable([m.trainer for m in group]) if len(group) > 1 else "a single member"
        if why:
            if len(group) > 1:
                with member_log(*[m.run_dir for m in group]):
                    log.info("seeds %s run one after another: %s", [m.cfg.seed for m in group], why)
            for m in group:
                with member_log(m.run_dir), m.rng.active(everything=True):
                    m.status = train(m.cfg, m.built, m.sinks, m.summary, m.run_dir, m.first_epoch)
        else:
            _train_stacked(group)


def _train_stacked(members: list[Member]) -> None:
    """runner.train for every member at once: one stacked step, then each member's probes,
    rows and checkpoint. A member that diverges leaves the stack; the others go on."""
    cfg, first = members[0].cfg, members[0].first_epoch
    for m in members:  # with the seeds it trained with before it resumed, if it did
        earlier = m.summary.get("fused_with", [])
        m.summary["fused_with"] = [*earlier, *(int(n.cfg.seed) for n in members if n.cfg.seed not in earlier)]
    stack = Stack([m.trainer for m in members], [m.rng for m in members], l1=cfg.optim.l1)
    log.info("seeds %s train as one stacked model, %s", [int(m.cfg.seed) for m in members], stack.describe())
    if first == 1:
        for m in members:
            with member_log(m.run_dir), m.rng.active(everything=True):
                m.sinks.write(measure(m.built.probes, "at_start", Point(m.trainer, 0, 0, m.summary["final"])))
    active = members
    per_epoch = members[0].trainer.steps_per_epoch
    with progress_bar(cfg, (cfg.epochs - first + 1) * per_epoch) as bar:
        for epoch in range(first, cfg.epochs + 1):
            tic = time.perf_counter()
            losses = stack.train_epoch(on_step=bar.update).cpu()  # (steps, S): the epoch's one sync
            share = (time.perf_counter() - tic) / len(active)  # each member's part of the wall time
            stack.unstack()
            # each member's column made contiguous: a strided one is averaged in another order,
            # and the logged train loss would differ from the unfused run's in the last bit
            own_losses = zip(active, losses.t().contiguous(), strict=True)
            going_on = [m for m, own in own_losses if _after_epoch(m, epoch, own, share)]
            if not going_on:
                return
            if len(going_on) < len(active):
                stack = Stack([m.trainer for m in going_on], [m.rng for m in going_on], l1=cfg.optim.l1)
            active = going_on
    for m in active:
        at = Point(m.trainer, cfg.epochs, m.summary["steps"], m.summary["final"])
        with member_log(m.run_dir), m.rng.active(everything=True):
            if rows := measure(m.built.probes, "at_end", at):
                m.sinks.write(rows)
                m.sinks.flush()
        m.status = record.DONE


def _after_epoch(m: Member, epoch: int, losses: torch.Tensor, seconds: float) -> bool:
    """What runner.train does after an epoch, for one member; False once it has diverged."""
    cfg, summary = m.cfg, m.summary
    step = count_epoch(summary, epoch, m.trainer.steps_per_epoch, cfg.batch, seconds)
    with member_log(m.run_dir), m.rng.active(everything=True):
        try:
            at = Point(m.trainer, epoch, step, summary["final"], losses)
            rows = measure(m.built.probes, "at_epoch", at)
        except Diverged as stop:
            m.sinks.write(stop.rows)
            log.warning("seed %s epoch %d: %s: diverged", cfg.seed, epoch, stop)
            m.status = record.DIVERGED
            return False
        m.sinks.write(rows)
        m.sinks.flush()
        checkpoint(m.run_dir, m.trainer, epoch, summary)
        log.info("seed %s: %s", cfg.seed, epoch_line(epoch, cfg.epochs, summary, cfg.eval_every))
    return True


def _end_unfinished(members: list[Member], status: str, error: str | None = None) -> None:
    for m in members:
        if m.status is None:
            m.status = status
            if error is not None:
                record.finish(m.run_dir, m.summary, status, error=error)


def _finish(m: Member) -> dict[str, Any]:
    """What runner.run_locked does after training, for one member."""
    assert m.status is not None
    if m.status in record.FINISHED:
        with member_log(m.run_dir):
            learned.judge_run(m.cfg, m.trainer.data.y_test, m.summary, m.status, m.run_dir / "metrics.csv")
    record.finish(m.run_dir, m.summary, m.status)
    if m.status in record.FINISHED:
        (m.run_dir / "checkpoint.pt").unlink(missing_ok=True)
    return m.summary
