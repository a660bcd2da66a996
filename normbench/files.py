"""Writes inside a run directory never follow a symbolic link.

A results tree can be shared, copied or prepared by someone else: a link planted where the
harness writes (``.lock``, ``summary.json.tmp``, ``run.log``, ``tb``...) would have it overwrite
or append to the link's target. A run refuses a directory holding such a link before it writes
anything (:func:`check_no_links`), and the files it opens itself are opened with
``O_NOFOLLOW`` (:func:`open_private`), so that a link made after that check fails the write
instead of redirecting it.
"""

from __future__ import annotations

import os
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
