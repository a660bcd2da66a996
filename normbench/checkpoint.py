"""Per-epoch checkpoints, so a killed run resumes from its last finished epoch.

A checkpoint holds the model, optimizer and scheduler states, every RNG the run draws from,
and the run's progress; it is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import csv
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from normbench.train import Trainer

log = logging.getLogger("normbench")

FILENAME = "checkpoint.pt"


def save_checkpoint(
    run_dir: Path, identity: str, trainer: Trainer, epoch: int, progress: dict[str, Any]
) -> None:
    state = {
        "identity": identity,
        "epoch": epoch,
        "progress": progress,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler else None,
        "rng": {
            "batch_order": trainer.generator.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        },
    }
    tmp = run_dir / (FILENAME + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, run_dir / FILENAME)


def load_checkpoint(run_dir: Path, identity: str) -> dict[str, Any] | None:
    """The checkpoint in ``run_dir`` if it belongs to this config, else None."""
    path = run_dir / FILENAME
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001  damaged: a truncated file can raise almost anything
        return None  # start over
    return state if isinstance(state, dict) and state.get("identity") == identity else None


def restore(trainer: Trainer, state: dict[str, Any]) -> None:
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    if trainer.scheduler is not None and state["scheduler"] is not None:
        trainer.scheduler.load_state_dict(state["scheduler"])
    rng = state["rng"]
    trainer.generator.set_state(rng["batch_order"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])


def truncate_metrics(path: Path, last_epoch: int) -> None:
    """Keep the rows of epochs up to ``last_epoch``: a run killed after writing an epoch's rows
    but before its checkpoint must not log that epoch twice."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[:1], [r for r in rows[1:] if len(r) == 5 and int(r[1]) <= last_epoch]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        csv.writer(f).writerows(header + body)
    os.replace(tmp, path)


def resume_or_start_fresh(run_dir: Path, trainer: Trainer, summary: dict[str, Any], force: bool) -> int:
    """Restore the run's last epoch checkpoint if it has one for this config (unless
    ``force``), else clear what an earlier run left; returns the first epoch to train."""
    resumed = None if force else load_checkpoint(run_dir, summary["identity"])
    if resumed is None:
        start_fresh(run_dir)
        return 1
    restore(trainer, resumed)
    truncate_metrics(run_dir / "metrics.csv", resumed["epoch"])
    summary.update(resumed["progress"])
    log.info("resuming after epoch %d from %s", resumed["epoch"], run_dir / "checkpoint.pt")
    return resumed["epoch"] + 1


def start_fresh(run_dir: Path) -> None:
    """A run starts from scratch: drop what an earlier, different or unfinished run wrote."""
    for name in ("metrics.csv", "summary.json", "checkpoint.pt"):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "tb", ignore_errors=True)
