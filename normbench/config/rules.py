"""What values a config key takes: a :class:`Rule` per key. ``normbench.config.checks`` holds the
table of the run's own keys; a probe declares the rules of the keys it reads beside itself
(``CONFIG`` in its module), so that a new measurement is one module plus its config key."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """The values a key takes: ``kind`` int, float (finite), bool, str (text; numbers count as
    their text) or list (of finite numbers, ``size`` of them when set); numbers and list items
    lie between ``lo`` and ``hi`` (excluded when ``open_lo``/``open_hi``); ``null`` allows None."""

    kind: type
    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False
    null: bool = False
    size: int | None = None
    note: str = ""  # what the key means, after what works

    def works(self) -> str:
        what = {
            int: "an integer",
            float: "a finite number",
            bool: "true or false",
            str: "text",
            list: f"a list of {self.size or 'finite'} numbers",
        }[self.kind]
        text = f"{what}{self._range()}{' or null' if self.null else ''}"
        return f"{text} ({self.note})" if self.note else text

    def _range(self) -> str:
        if self.lo is not None and self.hi is not None:
            left, right = "(["[not self.open_lo], ")]"[not self.open_hi]
            return f" in {left}{_show(self.lo)}, {_show(self.hi)}{right}"
        if self.lo is not None:
            return f" {'>' if self.open_lo else '>='} {_show(self.lo)}"
        if self.hi is not None:
            return f" {'<' if self.open_hi else '<='} {_show(self.hi)}"
        return ""

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value``, or None when it works."""
        if value is None:
            return None if self.null else "is null"
        if self.kind is bool:
            return None if isinstance(value, bool) else "is not true or false"
        if self.kind is str:
            return None if _is_number(value) or isinstance(value, str) else "is not text"
        if self.kind is list:
            if not isinstance(value, (list, tuple)) or (self.size is not None and len(value) != self.size):
                return f"is not a list of {self.size or 'finite'} numbers"
            bad = [v for v in value if self._number_problem(float, v)]
            return f"holds {bad[0]}, which {self._number_problem(float, bad[0])}" if bad else None
        return self._number_problem(self.kind, value)

    def _number_problem(self, kind: type, value: Any) -> str | None:
        if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
            return "is not an integer"
        if not _is_number(value):
            return "is not a number"
        if not math.isfinite(value):
            return "is not finite"
        if self.lo is not None and (value <= self.lo if self.open_lo else value < self.lo):
            return f"is {'not above' if self.open_lo else 'below'} {_show(self.lo)}"
        if self.hi is not None and (value >= self.hi if self.open_hi else value > self.hi):
            return f"is {'not below' if self.open_hi else 'above'} {_show(self.hi)}"
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(x: float) -> str:
    return "2**63" if x == 2**63 else "2**32" if x == 2**32 else f"{x:g}"


INT, FLAG, TEXT, OPTIONAL_TEXT = Rule(int, lo=1), Rule(bool), Rule(str), Rule(str, null=True)
SIZE = Rule(int, lo=1, null=True, note="null: all, or the task's default")
FRACTION = Rule(float, lo=0, hi=1)
