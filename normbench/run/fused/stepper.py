"""Runs that differ only in ``seed``, trained together: each member in its own run directory,
with its own lock, files, checkpoint and status, exactly as :func:`normbench.run.runner.run` would
leave them; only ``summary.json`` gains ``fused_with`` (the seeds trained together, in any of
the sessions a resumed run took).

There is one run lifecycle, the runner's (docs/design.md §2): each member is prepared and
finished by it, and :func:`normbench.run.runner.train_members` drives the group's epochs. What this
module adds is a stepper: one step of the stacked model (:mod:`.stack`) for all members, written
back into each member's plain model before the runner measures, writes and checkpoints it. Each
member's own work happens in its scope: its run.log and its share of the global RNGs. Where the
members cannot be stacked they step one after another, with one log line saying why.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from normbench.errors import ConfigError
from normbench.run import record, rundir
from normbench.run.fused import FUSED_KEY, plan
from normbench.run.fused.logs import member_log, routed
from normbench.run.fused.stack import MemberRng, Stack, check_stackable, same_data
from normbench.run.runner import (
    Member,
    Stepper,
    end_unfinished,
    finish,
    prepare,
    run_locked,
    step_each,
    train_members,
)

log = logging.getLogger("normbench")


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
    members: dict[int, Member] = {}  # by index in the group
    rngs: dict[Path, MemberRng] = {}  # by run directory
    errors: list[Exception] = []
    for i, (cfg, run_dir) in enumerate(zip(configs, run_dirs, strict=True)):
        try:
            with member_log(run_dir):
                prepared = prepare(cfg, run_dir, overrides[i] if overrides else None)
        except Exception as err:  # noqa: BLE001  recorded by prepare as its run would; raised below
            errors.append(err)
            continue
        if isinstance(prepared, dict):
            summaries[i] = prepared  # finished before: not run again
            continue
        rngs[run_dir] = MemberRng.capture()  # the global RNGs as its unfused run holds them now
        _in_group(prepared, rngs[run_dir])
        _share_data(prepared, list(members.values()))
        members[i] = prepared
    if errors and not members:  # a bad input: the members differ only in seed, so every one's
        raise errors[0]
    _train_all(list(members.values()), rngs)
    for i, m in members.items():
        summaries[i] = finish(m)
    finished = [s for s in summaries if s is not None]
    _raise_unless_interrupted(errors, finished)  # one that could not start (another config's run there)
    return finished


def _in_group(member: Member, rng: MemberRng) -> None:
    """Whatever is done for ``member`` alone happens in its own run.log and with its own share
    of the global RNGs; its log lines say its seed."""

    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        with member_log(member.run_dir), rng.active(everything=True):
            yield

    member.scope, member.label = scope, f"seed {member.cfg.seed}: "


def _share_data(member: Member, others: list[Member]) -> None:
    """One copy of the data where the members' draws are the same (resample=false): S copies of
    CIFAR-10 would cost S x 150 MB (on the GPU too)."""
    for other in others:
        if same_data(member.trainer, other.trainer):
            member.trainer.data = other.trainer.data
            return


def _train_all(members: list[Member], rngs: dict[Path, MemberRng]) -> None:
    """Members resumed from the same epoch train as one stack; a stack of one, or one that
    cannot be stacked, steps on its own, one member after another. After a Ctrl-C or SIGTERM no
    other member starts; after a bug the members not started record it too."""
    try:
        for batch, step in _steppers(sorted(members, key=lambda m: m.first_epoch), rngs):
            train_members(batch, step)
            if any(m.status == record.INTERRUPTED for m in batch):
                _end_unstarted(members, record.INTERRUPTED)
                return
    except KeyboardInterrupt:  # between two batches
        _end_unstarted(members, record.INTERRUPTED)
    except Exception as err:
        _end_unstarted(members, record.FAILED, record.error_line(err))
        raise


def _steppers(members: list[Member], rngs: dict[Path, MemberRng]) -> Iterator[tuple[list[Member], Stepper]]:
    """The batches of members that train together, and how they step, one after another."""
    for _, same_start in itertools.groupby(members, key=lambda m: m.first_epoch):
        group = list(same_start)
        why = check_stackable([m.trainer for m in group]) if len(group) > 1 else "a single member"
        if not why:
            for m in group:  # with the seeds it trained with before it resumed, if it did
                earlier = m.summary.get("fused_with", [])
                m.summary["fused_with"] = [
                    *earlier,
                    *(int(n.cfg.seed) for n in group if n.cfg.seed not in earlier),
                ]
            yield group, StackedStepper(group, rngs)
            continue
        if len(group) > 1:
            with member_log(*[m.run_dir for m in group]):
                log.info("seeds %s run one after another: %s", [m.cfg.seed for m in group], why)
        for m in group:
            yield [m], step_each


def _end_unstarted(members: list[Member], status: str, error: str | None = None) -> None:
    """The members that never trained end ``status``, their files closed."""
    for m in members:
        if m.status is None:
            end_unfinished([m], status, error)
            m.sinks.close(hparams=record.flat(m.summary["config"]), final=m.summary["final"])


class StackedStepper:
    """One step of the stacked model for every member; a member that diverged leaves the
    stack, the others go on."""

    def __init__(self, members: list[Member], rngs: dict[Path, MemberRng]) -> None:
        self.rngs = rngs
        self.members, self.stack = members, self._stack(members)
        seeds = [int(m.cfg.seed) for m in members]
        log.info("seeds %s train as one stacked model, %s", seeds, self.stack.describe())

    def _stack(self, members: list[Member]) -> Stack:
        rngs = [self.rngs[m.run_dir] for m in members]
        return Stack([m.trainer for m in members], rngs, l1=members[0].cfg.optim.l1)

    def __call__(self, members: list[Member], on_step: Callable[[], None]) -> list[torch.Tensor]:
        if members != self.members:  # some diverged
            self.members, self.stack = members, self._stack(members)
        losses = self.stack.train_epoch(on_step=on_step).cpu()  # (steps, S): the epoch's one sync
        self.stack.unstack()
        # each member's column made contiguous: a strided one is averaged in another order,
        # and the logged train loss would differ from the unfused run's in the last bit
        return list(losses.t().contiguous())
