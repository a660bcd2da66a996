"""A run's record: summary.json (new, written atomically, read), its statuses and exit codes.

The runner writes it, the analysis and ``normbench.sweep.status`` read it; everything that spells a
status imports it from here. No torch import, so the analysis stays light.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from normbench.errors import ConfigError
from normbench.files import open_private
from normbench.run.identity import resolved_config

DONE = "done"
DIVERGED = "diverged"  # a training or test loss stopped being finite
FAILED = "failed"  # bad input, or an error mid-run
INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM; resumes from its checkpoint
RUNNING = "running"  # what summary.json says until the run ends
# outcomes a rerun would only repeat (same config and seed, same numbers): not run again
FINISHED = (DONE, DIVERGED)
EXIT_CODES = {DONE: 0, FAILED: 2, DIVERGED: 3, INTERRUPTED: 130}
# a sweep's cells that failed for a cause outside the run (a full disk, a launcher's worker
# killed): the status a cell's job returns to the sweep's process when it could not write, and
# that process's list of such failures, which make the sweep exit 2 once it has ended (run.py)
CANNOT_WRITE = "failed: cannot write"
SWEEP_FAILURES: list[str] = []
# a running summary's copy of the counts its last checkpoint holds (never written): an
# interrupted run records those, not the epoch it was stopped in
CHECKPOINTED = "_checkpointed"


def new_summary(cfg: DictConfig, identity: str, **stamp: Any) -> dict[str, Any]:
    """A running run's summary; ``stamp``: provenance (versions, git state) from the caller."""
    return {
        "status": RUNNING,
        "error": None,
        "identity": identity,
        "name": cfg.name,
        "overrides": hydra_overrides(),
        "choices": hydra_choices(),
        "config": resolved_config(cfg),
        "final": {},
        "epochs_done": 0,
        "steps": 0,
        "wall_time_s": None,
        "train_time_s": 0.0,
        "train_samples_per_s": None,
        "device": None,
        "threads": None,
        **stamp,
        "started": now(),
        "finished": None,
        "_tic": time.perf_counter(),
    }


def finish(run_dir: Path, summary: dict[str, Any], status: str, error: str | None = None) -> dict[str, Any]:
    """Stamp the outcome and write summary.json atomically (temp file, then rename), so a
    killed run never leaves a half-written one."""
    summary.update(
        status=status,
        error=error,
        finished=now(),
        wall_time_s=round(time.perf_counter() - summary.pop("_tic"), 3),
    )
    checkpointed = summary.pop(CHECKPOINTED, None)
    if status == INTERRUPTED and checkpointed is not None:  # stopped mid-epoch: what it can resume
        summary.update(checkpointed)
    tmp = run_dir / "summary.json.tmp"
    with open_private(tmp, "w") as f:
        f.write(json.dumps(summary, indent=2, default=str, allow_nan=True))
    os.replace(tmp, run_dir / "summary.json")
    return summary


def is_finished(summary: dict[str, Any], identity: str) -> bool:
    """A finished run of this config: a rerun would only repeat it."""
    return summary.get("status") in FINISHED and summary.get("identity") == identity


# The runner's summaries nest three levels (config -> group -> list); a hand-made one nested
# thousands deep overflowed the parser's stack, or the code that walks it, with a RecursionError.
MAX_DEPTH = 32


def parse_summary(text: str) -> Any:
    """summary.json's text as JSON; ValueError when it is not JSON or nests deeper than
    :data:`MAX_DEPTH` (counted without recursion, before the parser could recurse). A
    :data:`NORM_RECORD` or :data:`METRICS_RECORD` block that its check refuses is dropped: a
    damaged record costs the run that record (readers fall back as for an older tree), not its
    numbers."""
    brackets = re.sub(r'"(?:[^"\\]|\\.)*"', "", text)  # strings may hold any bracket
    steps = (1 if ch in "[{" else -1 for ch in brackets if ch in "[]{}")
    deepest = max(itertools.accumulate(steps), default=0)
    if deepest > MAX_DEPTH:
        raise ValueError(f"nested {deepest} levels deep (at most {MAX_DEPTH})")
    summary = json.loads(text)
    if isinstance(summary, dict):
        for key, valid in ((NORM_RECORD, valid_norm_record), (METRICS_RECORD, valid_metrics_record)):
            checked = valid(summary[key]) if key in summary else None
            if checked is not None:
                summary[key] = checked
            else:
                summary.pop(key, None)
    return summary


# summary.json's record of the run's norm, written by the runner (runner.norm_record) so that the
# analysis names and groups runs from the results tree alone: {"label": "group8" (the conf/norm
# file the user chose), "name": "group" (the registry's), "preset": the options that choice
# composes to, "properties": the registry's declared properties ({"batch_statistics": false, ...}),
# "style": how figures draw it ({"color": "#0072B2", "dashes": [], "marker": "o"}, or null)}
NORM_RECORD = "norm"
MAX_TEXT = 200  # a label, name, key or text value: longer is a hand edit, not the runner's
MAX_ENTRIES = 64  # preset options or properties


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT


def _plain_value(value: Any) -> bool:
    """A YAML option's value as the runner records it: a scalar, or a short list of scalars."""
    if isinstance(value, list):
        return len(value) <= MAX_ENTRIES and all(_plain_value(v) and not isinstance(v, list) for v in value)
    if isinstance(value, str):
        return len(value) <= MAX_TEXT
    return value is None or isinstance(value, (bool, int, float))


def _plain_mapping(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) <= MAX_ENTRIES
        and all(_short_text(k) and _plain_value(v) for k, v in value.items())
    )


def valid_norm_record(block: Any) -> dict[str, Any] | None:
    """The :data:`NORM_RECORD` block when every field has its type and a bounded size (the
    file may be hand-edited or hostile), else None. Strings stay plain strings: the report
    escapes them where they reach Markdown, HTML or LaTeX."""
    if not isinstance(block, dict) or not all(_short_text(block.get(k)) for k in ("label", "name")):
        return None
    preset = block.get("preset")
    if preset is not None and not _plain_mapping(preset):
        return None
    properties = block.get("properties", {})
    if not _plain_mapping(properties):
        return None
    kept = {"label": block["label"], "name": block["name"], "preset": preset, "properties": properties}
    if "style" in block:  # absent in trees from before; a damaged one costs its colours, not the label
        kept["style"] = block["style"] if valid_style(block["style"]) else None
    return kept


MARKERS = frozenset(["o", "s", "^", "v", "<", ">", "D", "d", "x", "+", "*", "P", "X", "h", "H", "p", "."])


def valid_style(style: Any) -> bool:
    """A recorded figure style matplotlib takes as it is: a "#rrggbb" colour, at most 8 finite
    positive dash lengths, a marker of :data:`MARKERS`."""
    if not isinstance(style, dict) or set(style) != {"color", "dashes", "marker"}:
        return False
    color, dashes, marker = style["color"], style["dashes"], style["marker"]
    return (
        isinstance(color, str)
        and re.fullmatch(r"#[0-9a-fA-F]{6}", color) is not None
        and isinstance(dashes, list)
        and len(dashes) <= 8
        and all(isinstance(d, (int, float)) and not isinstance(d, bool) and 0 < d < 100 for d in dashes)
        and isinstance(marker, str)
        and marker in MARKERS
    )


# summary.json's record of what the run measured, written by the runner from its probes'
# declarations (probes.Metric): {"test/accuracy": {"unit": "fraction", "higher_is_better": true,
# "note": "...", "table": true}, ...}; the report tables what the runs declared
METRICS_RECORD = "metrics"
METRIC_FIELDS = {"unit": str, "higher_is_better": bool, "note": str, "table": bool}


def valid_metrics_record(block: Any) -> dict[str, dict[str, Any]] | None:
    """The :data:`METRICS_RECORD` block when every entry has its fields, typed and bounded
    (hostile or hand-edited files as for the norm record), else None."""
    if not isinstance(block, dict) or len(block) > MAX_ENTRIES:
        return None
    for name, entry in block.items():
        if not _short_text(name) or not isinstance(entry, dict) or set(entry) != set(METRIC_FIELDS):
            return None
        for key, kind in METRIC_FIELDS.items():
            value = entry[key]
            if not isinstance(value, kind) or (kind is str and len(value) > MAX_TEXT):
                return None
    return block


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's summary; None when there is none or it is damaged (not a JSON object)."""
    try:
        summary = parse_summary((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def error_line(err: Exception) -> str:
    """A ConfigError is already one line for the user; anything else is named by its type."""
    return str(err) if isinstance(err, ConfigError) else f"{type(err).__name__}: {err}"


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"norm": {"name": "group"}} -> {"norm.name": "group"}"""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def hydra_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def hydra_choices() -> dict[str, str | None]:
    """The config-group options the run was composed from, as the user chose them
    ({"norm": "group8", "model": "resnet", "experiment": "small_batch", ...}): the one record of
    a variant's name that survives any override style (``norm=group8`` on the command line, a
    preset's defaults list, a sweep). Hydra's own groups (``hydra/...``) are left out; {}
    outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {
        str(k): None if v is None else str(v) for k, v in choices.items() if not str(k).startswith("hydra/")
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
