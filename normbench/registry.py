"""The one table type behind the registries of norms, models and datasets.

Each concept keeps one :class:`Registry` (``NORMS``, ``MODELS``, ``DATASETS``), filled at import
by its decorators (``@register_norm``, ...) and read by the name the config gives. It is a plain
``dict`` for reading (``name in NORMS``, ``NORMS.items()``); writing and looking up go through
:meth:`Registry.add` and :meth:`Registry.lookup`, which word the two errors the same way for
every concept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from normbench.errors import ConfigError

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
