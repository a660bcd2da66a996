"""The one table type behind the registries of norms, models and datasets.

Each concept keeps one :class:`Registry` (``NORMS``, ``MODELS``, ``DATASETS``), filled at import
by its decorators (``@register_norm``, ...) and read by the name the config gives. It is a plain
``dict`` for reading (``name in NORMS``, ``NORMS.items()``); writing and looking up go through
:meth:`Registry.add` and :meth:`Registry.lookup`, which word the two errors the same way for
every concept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from normbench.errors import ConfigError, one_line

Entry = TypeVar("Entry")


class Registry(dict, Generic[Entry]):  # dict[str, Entry]
    """``kind`` names the concept in messages ("norm"); ``key`` is its config key ("norm")."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__()
        self.kind, self.key = kind, key

    def add(self, name: str, entry: Entry) -> Entry:
        """Register ``entry`` under ``name``; a name registered twice is a programming error."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self[name] = entry
        return entry

    def lookup(self, name: str) -> Entry:
        """The entry for a name from the config, or a ConfigError listing the registered names."""
        if name not in self:
            raise ConfigError(self.key, name, f"unknown {self.kind}; choose one of {', '.join(sorted(self))}")
        return self[name]

    def register(self, name: str, entry: Callable[[Any], Entry] = lambda obj: obj) -> Callable[[Any], Any]:
        """Decorator: register ``entry(obj)`` under ``name`` and return ``obj`` unchanged."""

        def decorate(obj: Any) -> Any:
            self.add(name, entry(obj))
            return obj

        return decorate


def locate(key: str, target: Any, wanted: str) -> Callable[..., Any]:
    """The object at the dotted path ``target`` (``data._target_``, ``norm._target_``, ...): a
    user's own component. Raises one ConfigError on ``key`` when it is unset or cannot be
    imported; ``wanted`` says what it should name ("a function that returns ...")."""
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(key, target, f"set it to the dotted path of {wanted}")
    from hydra.utils import get_method  # here: importing a registry stays light

    hydra_log = logging.getLogger("hydra.utils")
    level = hydra_log.level
    hydra_log.setLevel(logging.CRITICAL)  # get_method logs a multi-line error; we raise one line
    try:
        return get_method(target)
    except Exception as err:
        raise ConfigError(
            key, target, f"cannot import it ({one_line(err)}); is its package on PYTHONPATH (or installed)?"
        ) from err
    finally:
        hydra_log.setLevel(level)


def user_label(target: Any, label: Any) -> str:
    """A user's component's name in reports: its ``label`` key when set, else the last dotted
    name of its ``_target_`` (the class or factory name)."""
    return label if isinstance(label, str) and label else str(target).rsplit(".", 1)[-1]
