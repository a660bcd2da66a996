"""The norm presets of ``conf/norm/``: what ``norm=<choice>`` composes to.

The runner reads them once per run and records the preset in summary.json, so that the
analysis can name a run's variant from the results tree alone (docs/design.md §1); the analysis
reads them here only for trees written before that record. No torch import: both sides use it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

# The norm presets (conf/norm/*.yaml) a run's norm options are compared with to name its variant.
NORM_CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "norm"


@functools.cache
def norm_defaults(choice: str) -> tuple[tuple[str, Any], ...] | None:
    """The options ``norm=<choice>`` composes to: its YAML over the presets its defaults list
    names (``group8`` = ``group`` with num_groups 8); None without such a file."""
    try:
        tree = yaml.safe_load((NORM_CONF_DIR / f"{choice}.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(tree, dict):
        return None
    merged: dict[str, Any] = {}
    for item in tree.pop("defaults", None) or []:
        if isinstance(item, str) and item != "_self_" and item != choice:
            merged.update(dict(norm_defaults(item) or ()))
    merged.update(tree)
    return tuple(merged.items())
