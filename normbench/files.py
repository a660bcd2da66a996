"""Writes inside a run directory never follow a symbolic link.

A results tree can be shared, copied or prepared by someone else: a link planted where the
harness writes (``.lock``, ``summary.json.tmp``, ``run.log``, ``tb``...) would have it overwrite
or append to the link's target. A run refuses a directory holding such a link before it writes
anything (:func:`check_no_links`), and the files it opens itself are opened with
``O_NOFOLLOW`` (:func:`open_private`), so that a link made after that check fails the write
instead of redirecting it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import IO, Any

from normbench.errors import ConfigError

# every name the harness writes in a run directory (its own files, and those Hydra's logging
# and TensorBoard write there); .hydra and tb are directories, checked with what they hold
WRITTEN = (
    ".lock",
    "checkpoint.pt",
    "checkpoint.pt.tmp",
    "summary.json",
    "summary.json.tmp",
    "metrics.csv",
    "run.log",
    ".hydra",
    "tb",
)
_FLAGS = {"w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND}


def open_private(path: Path, mode: str, **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing (``w``, ``a``, with ``b`` or not) that fails with
    ELOOP instead of following a symbolic link at ``path``."""

    def opener(file: str, _flags: int) -> int:
        return os.open(file, _FLAGS[mode[0]] | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)

    return open(path, mode, opener=opener, **kwargs)  # noqa: SIM115  the caller closes it


def planted_link(run_dir: Path) -> Path | None:
    """The first symbolic link where the harness writes in ``run_dir`` (one of its names, or
    anything inside .hydra/ or tb/), or None."""
    for name in WRITTEN:
        path = run_dir / name
        if path.is_symlink():
            return path
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                for entry in (*dirs, *files):
                    if (Path(root) / entry).is_symlink():
                        return Path(root) / entry
    return None


def check_no_links(run_dir: Path, key: str, value: Any) -> None:
    """ConfigError (one line, before anything is written) when ``run_dir`` holds a link where
    the harness writes."""
    link = planted_link(run_dir)
    if link is not None:
        raise ConfigError(
            key,
            value,
            f"{link} is a symbolic link (to {os.readlink(link)}); a run never writes through links: "
            "remove it, or give this run another name=",
        )


def disk_error(err: BaseException) -> OSError | None:
    """The OSError behind ``err`` (itself, or what it was raised from or while handling: torch
    wraps a failed write in a RuntimeError), or None: a full or read-only disk, not a bug."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


class RunLog(logging.FileHandler):
    """The run's ``run.log`` (conf/hydra/job_logging): opened without following a link, and a
    line it cannot write (a full disk) is one warning on stderr, once per process, instead of
    logging's traceback for every line."""

    _warned = False

    def _open(self) -> IO[Any]:
        return open_private(Path(self.baseFilename), self.mode, encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)  # opens the file at the first line, outside logging's own try
        except OSError:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802  logging's name
        err = sys.exc_info()[1]
        if RunLog._warned or err is None:
            return
        RunLog._warned = True
        why = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        print(
            f"warning: cannot write {self.baseFilename} ({why}); its lines go to stderr only", file=sys.stderr
        )
