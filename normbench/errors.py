"""The one error type for bad user input, and the wording of the errors it wraps."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A configuration that cannot work.

    ``str(err)`` is a single line naming the key, the value and what would work; the runner
    prints exactly that line (no traceback) and exits non-zero before any training.
    """

    def __init__(self, key: str, value: Any, why: str) -> None:
        self.key, self.value, self.why = key, value, why
        super().__init__(f"{key}={value}: {why}")


def one_line(err: BaseException) -> str:
    """An exception's message on one line (white space folded), or its type's name when empty:
    for a ConfigError that quotes the error behind it."""
    return " ".join(str(err).split()) or type(err).__name__


def write_error(err: OSError) -> str:
    """A failed write (a full disk, a results tree made read-only) as one line."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or one_line(err)}; the results directory must be writable while runs write"
