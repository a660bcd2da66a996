"""The Hydra task: one run from run.py, its bad input as one line and its status as the exit
code; in a sweep, nothing is raised or exited and a Ctrl-C stops the sweep."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from normbench.errors import ConfigError, write_error
from normbench.files import disk_error
from normbench.run import record, rundir
from normbench.run.fused import FUSED_KEY
from normbench.run.interrupt import end_sweep, end_with_the_sweep
from normbench.run.runner import run
from normbench.run.threads import threads_per_job

log = logging.getLogger("normbench")


def main(cfg: DictConfig) -> str:
    """What run.py calls: run, report bad input as one line, map the status to an exit code.

    In a sweep (multirun) nothing is raised or exited: the status is recorded in the run's
    summary.json, and the other runs go on.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    end_with_the_sweep()  # a pool worker whose sweep process was killed stops its cell
    if cfg.threads is None and sweeping:
        torch.set_num_threads(threads_per_job(hydra_cfg.launcher))
    try:
        rundir.check_name(cfg.name)  # also when a sweep varies it (the callback saw one value)
        if FUSED_KEY in cfg:  # the seeds of one cell, trained together (hydra/sweeper=fused)
            from normbench.sweep.fused_job import run_job

            status = run_job(cfg, hydra_cfg)
        else:
            status = run(cfg, Path(hydra_cfg.runtime.output_dir))["status"]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        status = record.FAILED
    except Exception as err:
        if not sweeping:
            raise  # a single run shows the traceback
        # In a sweep one broken cell must not abort the others (Hydra would stop the sweep
        # and skip its report): the traceback goes to the log, summary.json says failed.
        status = cannot_write(err, hydra_cfg.runtime.output_dir)
        if status is None:
            log.exception("run failed: %s", hydra_cfg.runtime.output_dir)
            status = record.FAILED
    if status == record.CANNOT_WRITE:
        return status
    if status in (record.DIVERGED, record.INTERRUPTED) and FUSED_KEY not in cfg:  # members say their own
        log.warning("run %s: %s", status, hydra_cfg.runtime.output_dir)
    if sweeping and status == record.INTERRUPTED:
        end_sweep()  # Ctrl-C or SIGTERM stops the sweep, not only this cell
    if not sweeping and record.EXIT_CODES[status]:
        sys.exit(record.EXIT_CODES[status])
    return status


def cannot_write(err: Exception, run_dir: str) -> str | None:
    """A cell that failed because it could not write (a full disk: every cell after it fails
    alike): one line, not a traceback, and the status that makes the sweep exit 2; None for
    any other error."""
    disk = disk_error(err)
    if disk is None:
        return None
    line = f"run failed: {run_dir}: {write_error(disk)}"
    log.error("%s", line)
    record.SWEEP_FAILURES.append(line)
    return record.CANNOT_WRITE
