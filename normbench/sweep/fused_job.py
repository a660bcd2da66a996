"""The Hydra job of a fused cell: each member's overrides and run directory exactly as its own
job would have them, then normbench.run.fused.stepper. Called by normbench.task."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from normbench.errors import ConfigError
from normbench.run import record
from normbench.run.fused import FUSED_KEY
from normbench.run.fused.stepper import member_config, run_group
from normbench.run.rundir import override_dirname
from normbench.sweep.fused_sweeper import SEED, override_key, seed_of

log = logging.getLogger("normbench")

# the status the job reports for its members (the sweep stops on interrupted, as for one run)
_WORST_FIRST = (record.INTERRUPTED, record.FAILED, record.DIVERGED, record.DONE)


def run_job(cfg: DictConfig, hydra_cfg: Any) -> str:
    """Train the members of ``cfg[fused_seeds]``; returns the worst of their statuses."""
    task = list(hydra_cfg.overrides.task)
    seeds = fused_seeds(cfg[FUSED_KEY], task)
    overrides = [member_overrides(task, s) for s in seeds]
    dirs = [member_dir(member_config(cfg, s), hydra_cfg, o) for s, o in zip(seeds, overrides, strict=True)]
    summaries = run_group(cfg, seeds, dirs, overrides)
    for run_dir, summary in zip(dirs, summaries, strict=True):
        if summary["status"] in (record.DIVERGED, record.INTERRUPTED):  # as task.main says of one run
            log.warning("run %s: %s", summary["status"], run_dir)
    statuses = {s["status"] for s in summaries}
    return next(s for s in _WORST_FIRST if s in statuses)


def fused_seeds(value: Any, task: list[str]) -> list[int]:
    """The members' seeds, as the fused sweeper writes them: distinct integers, the first one
    the job's own ``seed=`` (each member's directory is named by its seed). ConfigError for a
    value set by hand that is not: it would ignore seed=, or give members one directory."""
    seeds = list(value) if isinstance(value, ListConfig) else None
    if (
        not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        or len(set(seeds)) < len(seeds)
        or seed_of(task) != seeds[0]
    ):
        raise ConfigError(
            FUSED_KEY,
            value,
            "is the fused sweeper's own key (distinct integer seeds, the first one the job's seed=); "
            "to train seeds fused use python run.py -m hydra/sweeper=fused seed=0,1,2",
        )
    return seeds


def member_overrides(task: list[str], seed: int) -> list[str]:
    """The job's overrides as seed ``seed``'s own job has them: its seed in place (the prefix
    kept: Hydra names ``++seed=1``'s directory with it), no fused key."""
    return [
        f"{o.split('=', 1)[0]}={seed}" if override_key(o) == SEED else o
        for o in task
        if override_key(o) != FUSED_KEY
    ]


def member_dir(cfg: DictConfig, hydra_cfg: Any, overrides: list[str]) -> Path:
    """Where Hydra puts the job of ``overrides``: hydra.sweep.dir/hydra.sweep.subdir resolved
    with that job's override_dirname, computed as Hydra computes it."""
    dirname = override_dirname(overrides, hydra_cfg.job.config.override_dirname)
    root = copy.deepcopy(cfg)
    with open_dict(root):
        root.hydra = OmegaConf.to_container(hydra_cfg, resolve=False)
        root.hydra.job.override_dirname = dirname
    return Path(root.hydra.sweep.dir) / str(root.hydra.sweep.subdir)
