"""Per-epoch checkpoints, so a killed run resumes from its last finished epoch.

A checkpoint holds the model, optimizer and scheduler states, every RNG the run draws from,
the run's progress, and the size of every file the run had written (metrics.csv and the
TensorBoard events): what was appended after it is cut when the run resumes, whatever it was
(a killed epoch's rows, the Precise BN rows, half a line). It holds only tensors and plain
containers, so it is read with ``torch.load(weights_only=True)``: a checkpoint found in a
results tree someone shared cannot run code. It is written atomically (temporary file, then
rename).
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import os
import pickle
import random
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from normbench.errors import one_line
from normbench.files import open_private
from normbench.run.sinks import CSV_HEADER
from normbench.run.train import Trainer

FILENAME = "checkpoint.pt"
METRICS = "metrics.csv"
EVENTS = "tb"  # TensorBoard's log dir in the run directory (sinks.open_sinks)
# what a resumable checkpoint must hold; an older or foreign one lacks some
KEYS = ("identity", "epoch", "progress", "model", "optimizer", "scheduler", "rng", "files")
# what a run carries over from the epochs before its checkpoint (the summary's keys)
PROGRESS = ("epochs_done", "steps", "train_time_s", "train_samples_per_s", "final")
RNG = ("batch_order", "torch", "cuda", "numpy", "python")
# what a run carries over too where it has it: the seeds a fused member trained with in the
# sessions before (normbench.run.fused)
CARRIED = ("fused_with",)

log = logging.getLogger("normbench")


def save_checkpoint(
    run_dir: Path, identity: str, trainer: Trainer, epoch: int, progress: dict[str, Any]
) -> None:
    """Call with the sinks flushed: the sizes recorded here are where a resume cuts."""
    state = {
        "identity": identity,
        "epoch": epoch,
        "progress": progress,
        **trainer_state(trainer),
        "files": written_sizes(run_dir),
    }
    tmp = run_dir / (FILENAME + ".tmp")
    try:
        with open_private(tmp, "wb") as f:
            torch.save(state, f)
    except RuntimeError as err:
        # torch.save wraps what a write of the file object raised in a RuntimeError: Ctrl-C or
        # SIGTERM (normbench.run.interrupt) must still end the run as interrupted, a full disk as
        # a failed write
        if isinstance(err.__context__, (KeyboardInterrupt, OSError)):
            raise err.__context__ from None
        raise
    os.replace(tmp, run_dir / FILENAME)


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """What :func:`restore` sets: the model, optimizer and scheduler states and every RNG."""
    return {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler else None,
        "rng": {
            "batch_order": trainer.generator.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": _numpy_state(),
            "python": random.getstate(),
        },
    }


def load_checkpoint(run_dir: Path, identity: str) -> dict[str, Any] | None:
    """The checkpoint to resume from, with metrics.csv and the events cut back to it; None
    (with a log line saying why) when there is none this run can resume from."""
    path = run_dir / FILENAME
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  a truncated or foreign file can raise almost anything
        log.warning("discarding %s: cannot be read as a checkpoint (%s); starting over", path, _why(err))
        return None
    if not isinstance(state, dict) or any(key not in state for key in KEYS):
        log.warning("discarding %s: not a checkpoint of this normbench version; starting over", path)
        return None
    if state["identity"] != identity:
        log.warning("discarding %s: an unfinished run of another config; starting over", path)
        return None
    damage = state_damage(run_dir, state) or check_written(run_dir, state["files"], state["epoch"])
    if damage:
        log.warning("cannot resume from %s: %s; starting over", path, damage)
        return None
    cut_to(run_dir, state["files"])
    return state


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
    _set_numpy_state(rng["numpy"])
    random.setstate(rng["python"])


def resume_or_start_fresh(run_dir: Path, trainer: Trainer, summary: dict[str, Any], force: bool) -> int:
    """Restore the run's last epoch checkpoint if it has one for this config (unless
    ``force``), else clear what an earlier run left; returns the first epoch to train."""
    resumed = None if force else load_checkpoint(run_dir, summary["identity"])
    if resumed is not None and not restored(trainer, resumed, run_dir / FILENAME):
        resumed = None
    if resumed is None:
        start_fresh(run_dir)
        return 1
    summary.update({key: resumed["progress"][key] for key in PROGRESS})
    summary.update({key: resumed["progress"][key] for key in CARRIED if key in resumed["progress"]})
    log.info("resuming after epoch %d from %s", resumed["epoch"], run_dir / FILENAME)
    return resumed["epoch"] + 1


def restored(trainer: Trainer, state: dict[str, Any], path: Path) -> bool:
    """:func:`restore`, or False (with a log line) when the state does not fit the trainer (a
    module renamed since, other parameter groups, a bad RNG state): the trainer is then as it
    was, so that the run starts over exactly as a fresh one."""
    fresh = copy.deepcopy(trainer_state(trainer))  # load_state_dict copies into the live tensors
    try:
        restore(trainer, state)
    except Exception as err:  # noqa: BLE001  a crafted or foreign state can raise almost anything
        restore(trainer, fresh)
        log.warning(
            "cannot resume from %s: its state does not fit this run (%s); starting over", path, _why(err)
        )
        return False
    return True


def start_fresh(run_dir: Path) -> None:
    """A run starts from scratch: drop what an earlier, different or unfinished run wrote."""
    for name in (METRICS, "summary.json", FILENAME):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / EVENTS, ignore_errors=True)


# ---- what the run had written at the checkpoint -----------------------------------------


def state_damage(run_dir: Path, state: dict[str, Any]) -> str | None:
    """What makes a checkpoint of this run's identity unusable (a field of the wrong type or
    range, a file map naming anything but this run directory's own files), or None. Its file
    map is applied with truncate: a crafted one must never reach a file elsewhere."""
    epoch, files, progress = state["epoch"], state["files"], state["progress"]
    if not _is_int(epoch) or epoch < 1:
        return f"its epoch {epoch!r} is not a positive integer"
    if not isinstance(files, dict) or not all(_is_int(size) and size >= 0 for size in files.values()):
        return "its file map is not file names with byte sizes"
    foreign = next((name for name in files if not own_file(run_dir, name)), None)
    if foreign is not None:
        return f"its file map names {foreign!r}, not one of this run directory's files"
    if not isinstance(progress, dict) or any(key not in progress for key in PROGRESS):
        return "its progress is not this normbench version's"
    fused_with = progress.get("fused_with", [])
    if not isinstance(fused_with, list) or not all(_is_int(seed) for seed in fused_with):
        return f"its fused_with {fused_with!r} is not a list of seeds"
    if progress["epochs_done"] != epoch or not _is_int(progress["steps"]) or progress["steps"] < 0:
        return f"its progress (epochs_done {progress['epochs_done']!r}) is not that of epoch {epoch}"
    final, rate = progress["final"], progress["train_samples_per_s"]
    numbers = [progress["train_time_s"], *(() if rate is None else (rate,))]
    if not isinstance(final, dict) or not all(_is_number(v) for v in [*numbers, *final.values()]):
        return "its progress holds a value that is not a number"
    if not isinstance(state["rng"], dict) or any(key not in state["rng"] for key in RNG):
        return "its RNG states are not this normbench version's"
    return None


def own_file(run_dir: Path, name: Any) -> bool:
    """Whether ``name`` is one of the files a checkpoint records (:func:`written_sizes`):
    metrics.csv or a file below tb/, as a plain relative path that stays in ``run_dir``."""
    if not isinstance(name, str) or "\0" in name:
        return False
    path = PurePosixPath(name)
    if str(path) != name or path.is_absolute() or any(part in (".", "..") for part in path.parts):
        return False
    if name != METRICS and (len(path.parts) < 2 or path.parts[0] != EVENTS):
        return False
    root = os.path.realpath(run_dir)
    return os.path.realpath(run_dir / name).startswith(root + os.sep)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def written_sizes(run_dir: Path) -> dict[str, int]:
    """Size of metrics.csv and of every TensorBoard file, by path relative to ``run_dir``."""
    paths = [run_dir / METRICS, *sorted((run_dir / EVENTS).rglob("*"))]
    return {str(p.relative_to(run_dir)): p.stat().st_size for p in paths if p.is_file()}


def check_written(run_dir: Path, sizes: dict[str, int], epoch: int) -> str | None:
    """Why the files cannot be cut back to ``sizes`` (one missing or shorter than it was, or
    metrics.csv not a clean table of epochs 1..epoch up to there), or None when they can."""
    for name, size in sizes.items():
        path = run_dir / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size < size:
            return f"{name} is shorter than at the checkpoint"
    if METRICS not in sizes:
        return f"{METRICS} is missing"
    with (run_dir / METRICS).open("rb") as f:
        return metrics_damage(f.read(sizes[METRICS]), epoch)


def metrics_damage(data: bytes, epoch: int) -> str | None:
    """What is wrong with metrics.csv's bytes as the rows of epochs up to ``epoch``, or None."""
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as err:
        return f"{METRICS} is damaged ({_why(err)})"
    if not rows or tuple(rows[0]) != CSV_HEADER:
        return f"{METRICS} does not start with its header"
    epochs = set()
    for line, row in enumerate(rows[1:], 2):
        try:
            int(row[0]), float(row[4])
            row_epoch = int(row[1])
        except (ValueError, IndexError):
            return f"{METRICS} is damaged at line {line}"
        if len(row) != len(CSV_HEADER) or not 0 <= row_epoch <= epoch:
            return f"{METRICS} is damaged at line {line}"
        epochs.add(row_epoch)
    if not set(range(1, epoch + 1)) <= epochs:
        return f"{METRICS} lacks the rows of epochs it had at the checkpoint"
    return None


def cut_to(run_dir: Path, sizes: dict[str, int]) -> None:
    """Drop what was written after the checkpoint: bytes past each recorded size, and files
    it did not know (TensorBoard files a later, killed attempt opened)."""
    for path in written_sizes(run_dir):
        if path not in sizes:
            (run_dir / path).unlink()
    for name, size in sizes.items():
        os.truncate(run_dir / name, size)


# ---- numpy's RNG state as tensors (weights_only loads no numpy arrays) ----------------------


def _numpy_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    keys = torch.from_numpy(keys.astype(np.int64))
    return {"kind": kind, "keys": keys, "pos": pos, "gauss": [has_gauss, gauss]}


def _set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["kind"], keys, state["pos"], *state["gauss"]))


def _why(err: Exception) -> str:
    if isinstance(err, pickle.UnpicklingError):  # torch's message suggests weights_only=False: not here
        return "it holds more than tensors and plain containers: an older normbench's, or crafted"
    return f"{type(err).__name__}: {one_line(err)}" if str(err) else type(err).__name__
