"""Glob a results tree (one run, one sweep, or many nested sweeps) into tidy DataFrames.

The results tree is the database (docs/design.md §1): every directory holding ``summary.json`` or
``metrics.csv`` is a run. Nothing here trusts a file to be complete: a run killed before its
summary, a corrupt summary or a half-written CSV line is listed with a status, never raised.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from normbench.analysis.stats import (
    LEARNED_KEY,
    N_TEST_KEY,
    NORM_KEY,
    NORM_NAME_KEY,
    NORM_OPTION_PREFIX,
    NORM_PAPER_KEY,
    NORM_PROPERTY_PREFIX,
    SEED_KEY,
)
from normbench.registry import user_label

# the one list of keys that change where or how a run writes, never what it computes
from normbench.run.identity import NON_RESULT_KEYS  # noqa: E402
from normbench.run.record import DONE, METRICS_RECORD, NORM_RECORD, flat, parse_summary

# Config keys the analysis always needs as columns, swept or not.
CORE_KEYS = (
    "norm.name",
    "batch",  # per device: the batch the norms' statistics come from
    "devices",  # simulated devices: the SGD batch is batch x devices (column sgd_batch)
    "seed",
    "model.name",
    "model.depth",  # depth, width, residual init: a calibration.json of another model measured
    "model.width",  # other layers
    "model.zero_init_residual",
    "data.name",
    "epochs",
    "norm.ghost_size",
    "optim.linear_scaling",  # whether a swept optim.lr is the rate at batch 32 (the linear-rule claim)
)
# Keys that change what a run measures, not what it trains (the same seed gives the same
# numbers with or without them): runs that differ only in these are one cell, their seeds pooled.
MEASUREMENT_KEYS = ("train_eval_size", "eval_every", "activations")
CURVE_COLUMNS = ["run_id", "step", "epoch", "split", "metric", "value"]
# Statuses for runs whose summary.json is absent or unreadable (not written by the runner).
NO_SUMMARY = "no summary"
CORRUPT = "corrupt summary"
# Statuses for finished runs the statistics leave out: a summary with an impossible value (a
# hand edit), and a second run of a cell and seed already counted (a copied directory).
DAMAGED = "damaged summary"
DUPLICATE = "duplicate"
GUARDED_LOSSES = ("train/loss", "test/loss")  # a non-finite one ends a run as diverged
GAP_SOURCE_KEY = "generalization_gap_from"  # which train loss a run's generalization gap used
# the figure style of the run's norm: (colour, dash pattern, marker), recorded by the run
NORM_STYLE_KEY = "norm_style"


@dataclass(frozen=True)
class Results:
    """``runs``: one row per run; ``curves``: tidy metrics.csv rows keyed by ``run_id``;
    ``swept``: the dotted config keys that define the cells of the grid: they vary across the
    runs (seed included), can change a run's numbers (not in ``NON_RESULT_KEYS`` or
    ``MEASUREMENT_KEYS``) and do not merely follow from other swept keys (see
    :func:`independent_keys`). ``runs`` has a column for every varying key; ``runs["sweep"]``
    is the run's parent directory.

    Unpacks as ``runs, curves = load(path)``.
    """

    runs: pd.DataFrame
    curves: pd.DataFrame
    swept: list[str] = field(default_factory=list)
    # what the runs declared they measured (summary.json ``metrics``, first declaration of each
    # name): {name: {"unit", "higher_is_better", "note", "table"}}; empty for trees from before
    declared: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return iter((self.runs, self.curves))

    @property
    def done(self) -> pd.DataFrame:
        """The runs that finished normally, the only ones statistics are computed on."""
        return self.runs[self.runs["status"] == DONE] if len(self.runs) else self.runs


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"norm": {"name": "group"}} -> {"norm.name": "group"} (record.flat); lists become tuples,
    so that values are hashable for grouping."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in flat(tree, prefix).items()}


def find_run_dirs(root: Path) -> list[Path]:
    """Every directory under ``root`` (itself included) holding a summary or a metrics file."""
    found = {p.parent for name in ("summary.json", "metrics.csv") for p in root.rglob(name)}
    return sorted(found)


def _read_summary(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """(summary, problem): problem names a missing or unreadable summary."""
    path = run_dir / "summary.json"
    if not path.exists():
        return {}, NO_SUMMARY
    try:
        summary = parse_summary(path.read_text())
    except (OSError, ValueError) as err:  # a plain ValueError is the nesting check's, with its why
        return {}, f"{CORRUPT}: {type(err).__name__}" + (f" ({err})" if type(err) is ValueError else "")
    if not isinstance(summary, dict):
        return {}, f"{CORRUPT}: not a JSON object"
    return summary, None


def _scalar(value: Any) -> Any:
    """A summary field as one value: a list or mapping where a hand edit put one (a list
    ``name``) becomes its JSON text, so that it can be shown, grouped and sorted."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _impossible_value(final: dict[str, Any]) -> str | None:
    """What makes a finished run's final metrics impossible, or None: a flag where a number
    goes (``true`` is not an accuracy of 1), an accuracy outside [0, 1] (NaN included), a
    negative loss, a training or test loss that is not finite (that run would have ended
    diverged). The runner writes none of these for a run that ended done."""
    for key, value in final.items():
        if key == LEARNED_KEY or not isinstance(key, str):
            continue
        if isinstance(value, bool):
            return f"final {key}={json.dumps(value)} is not a number"
        if not _is_number(value):
            continue  # text (a note) is not a metric
        if key.endswith("/accuracy") and not 0 <= value <= 1:
            return f"final {key}={value} is outside [0, 1]"
        if key.endswith("/loss") and value < 0:
            return f"final {key}={value} is negative"
        if key in GUARDED_LOSSES and not math.isfinite(value):
            return f"final {key}={value} is not finite"
    return None


def _fallback_config(run_dir: Path) -> dict[str, Any]:
    """The config of a run without a usable summary: Hydra's own record, written at job start."""
    path = run_dir / ".hydra" / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, yaml.YAMLError):
        config = None
    return config if isinstance(config, dict) else {}


def _fallback_overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        overrides = yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, yaml.YAMLError):
        overrides = None
    if isinstance(overrides, list):
        return [str(o) for o in overrides]
    # Hydra names sweep jobs by their overrides: "batch=4,norm=group,seed=1".
    return [part for part in run_dir.name.split(",") if "=" in part]


def _run_row(run_dir: Path, run_id: str, sweep: str) -> dict[str, Any]:
    summary, problem = _read_summary(run_dir)
    config = summary.get("config") if isinstance(summary.get("config"), dict) else None
    overrides = summary.get("overrides")
    row: dict[str, Any] = {
        "run_id": run_id,
        "path": str(run_dir),
        "sweep": sweep,
        "status": problem or str(summary.get("status", "unknown")),
        "error": summary.get("error"),
        "overrides": tuple(overrides if isinstance(overrides, list) else _fallback_overrides(run_dir)),
    }
    for key in (
        "identity",
        "name",
        "epochs_done",
        "steps",
        "wall_time_s",
        "train_samples_per_s",
        "device",
        "threads",
        "git_commit",
        "git_dirty",
        "started",
        "finished",
    ):
        row[key] = _scalar(summary.get(key))
    versions = summary.get("versions")
    for key, value in flatten(versions if isinstance(versions, dict) else {}, "versions.").items():
        row[key] = value
    final = summary.get("final") if isinstance(summary.get("final"), dict) else {}
    row["_final"] = {k: v for k, v in final.items() if _is_number(v)}
    damage = _impossible_value(final) if row["status"] == DONE else None
    if damage:
        row.update(status=DAMAGED, error=f"{damage} (status was done)")
    row["_config"] = flatten(config if config is not None else _fallback_config(run_dir))
    row["_declared"] = summary.get(METRICS_RECORD) or {}  # parse_summary kept it only if valid
    row["_final"].pop(LEARNED_KEY, None)  # a flag, not a metric, wherever the summary put it
    row.update(_run_extras(summary, row["_config"], row["overrides"]))
    return row


def _run_extras(
    summary: dict[str, Any], config: dict[str, Any], overrides: tuple[str, ...]
) -> dict[str, Any]:
    """Columns for the statistics: ``learned`` (top level of summary.json, or under
    ``final``; a missing or non-boolean value counts as learned: only an explicit false or 0
    marks a run), ``learned_note``, ``n_test`` (the test
    size from the config, ``data.test_size``; None when null, i.e. the dataset's default,
    which the summary does not record), ``choices.<group>`` (the Hydra choices) and
    ``norm_choice`` / ``norm_options`` for :func:`add_norm_label`."""
    choices = summary.get("choices") if isinstance(summary.get("choices"), dict) else {}
    final = summary.get("final") if isinstance(summary.get("final"), dict) else {}
    flag = summary.get(LEARNED_KEY, final.get(LEARNED_KEY))
    note = summary.get("learned_note", final.get("learned_note"))
    extras: dict[str, Any] = {
        LEARNED_KEY: not (isinstance(flag, (bool, int)) and not flag),
        "learned_note": note if isinstance(note, str) else None,
        N_TEST_KEY: config.get("data.test_size"),
        **{f"choices.{k}": v for k, v in choices.items()},
    }
    recorded = summary.get(NORM_RECORD)  # parse_summary kept it only if valid
    extras.update(
        _recorded_norm(recorded, config) if recorded else _looked_up_norm(choices, config, overrides)
    )
    return extras


def _recorded_norm(recorded: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """``norm_choice``, ``norm_options`` and the norm's properties (``norm_property.<key>``)
    from the run's own record: the results tree alone names the variant."""
    preset = recorded["preset"]
    properties = {
        f"{NORM_PROPERTY_PREFIX}{k}": tuple(v) if isinstance(v, list) else v
        for k, v in recorded["properties"].items()
    }
    # a tree from before styles and papers were recorded: the registry's, as for one from before the record
    older = "style" not in recorded or "paper" not in recorded["properties"]
    registered = _registered(recorded["name"]) if older else {}
    return {
        "norm_choice": recorded["label"],
        "norm_options": _changed_norm_options(None if preset is None else tuple(preset.items()), config),
        NORM_STYLE_KEY: _style_tuple(recorded["style"]) if "style" in recorded else registered.get("style"),
        NORM_PAPER_KEY: registered.get("paper", ""),
        **properties,
    }


def _style_tuple(style: dict[str, Any] | None) -> tuple[str, tuple[float, ...], str] | None:
    """A recorded style (record.valid_style checked it) as a hashable cell value."""
    return None if style is None else (style["color"], tuple(style["dashes"]), style["marker"])


def _registered(name: Any) -> dict[str, Any]:
    """What this checkout's registry declares of norm ``name`` and newer runs record themselves
    (its ``style``, its ``paper`` name), for runs from before; {} for a norm it lacks. The
    import costs torch's start-up, so only those runs pay it."""
    from normbench.norms import NORMS

    spec = NORMS[name] if isinstance(name, str) and name in NORMS else None
    return {} if spec is None else {"style": spec.style, "paper": spec.paper}


def _looked_up_norm(
    choices: dict[str, Any], config: dict[str, Any], overrides: tuple[str, ...]
) -> dict[str, Any]:
    """``norm_choice`` and ``norm_options`` of a run from before the record: the choice from
    the Hydra choices or overrides. Its preset is not looked up in a checkout's ``conf/norm``
    (the analysis reads only the results tree), so its options are unknown (None) and its
    label names only the options that vary among the runs of its choice."""
    if config.get(NORM_NAME_KEY) == "custom":  # the user's norm goes by its own name
        return {
            "norm_choice": user_label(config.get("norm._target_"), config.get("norm.label")),
            "norm_options": "",
            NORM_STYLE_KEY: None,
            NORM_PAPER_KEY: "",
        }
    registered = _registered(config.get(NORM_NAME_KEY))
    choice = choices.get("norm") or _norm_override(overrides) or config.get(NORM_NAME_KEY)
    label = str(choice) if choice is not None else None
    return {
        "norm_choice": label,
        "norm_options": None,
        NORM_STYLE_KEY: registered.get("style"),
        NORM_PAPER_KEY: registered.get("paper", ""),
    }


def _norm_override(overrides: tuple[str, ...]) -> str | None:
    """``norm=group8`` among the overrides (trees written before choices were recorded)."""
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key == "norm" and value:
            return value
    return None


def _changed_norm_options(defaults: tuple[tuple[str, Any], ...] | None, config: dict[str, Any]) -> str | None:
    """ "num_groups=8" for the norm options of ``config`` whose value differs from the
    choice's preset ``defaults`` ("" when none does); None when the preset is unknown."""
    if defaults is None:
        return None
    changed = [
        f"{key}={config[NORM_OPTION_PREFIX + key]}"
        for key, value in defaults
        if key != "name"
        and NORM_OPTION_PREFIX + key in config
        and not (isinstance(value, str) and "${" in value)  # an interpolation: no literal default
        and config[NORM_OPTION_PREFIX + key] != value
    ]
    return ", ".join(changed)


def _fill_from_overrides(config: dict[str, Any], overrides: tuple[str, ...], groups: set[str]) -> None:
    """Without any config record, the overrides still say which cell a run belongs to.
    ``norm=group`` selects a config group, whose name lives at ``norm.name``."""
    for item in overrides:
        key, _, text = item.lstrip("+~").partition("=")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        config.setdefault(f"{key}.name" if key in groups else key, value)


def _runs_frame(rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
    groups = {k.split(".")[0] for r in rows for k in r["_config"] if k.endswith(".name")}
    groups |= {k.split(".")[0] for k in CORE_KEYS if k.endswith(".name")}
    for r in rows:
        _fill_from_overrides(r["_config"], r["overrides"], groups)
    configs = pd.DataFrame([r["_config"] for r in rows])
    # Keys that only say where or how a run wrote (results_dir, name, threads, ...) differ
    # between sweeps loaded together without making their runs different cells.
    varying = [
        k
        for k in configs.columns
        if k not in NON_RESULT_KEYS
        and k not in MEASUREMENT_KEYS
        and configs[k].astype(str).where(configs[k].notna()).nunique(dropna=True) > 1
    ]
    named = {_override_key(o, groups) for r in rows for o in r["overrides"]}
    swept = independent_keys(configs.astype(str), varying, named)
    keep = list(dict.fromkeys([*swept, *varying, *(k for k in CORE_KEYS if k in configs.columns)]))
    finals = pd.DataFrame([r["_final"] for r in rows])
    base = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    # a config key named like a summary field (device: "auto" asked, "cpu" used) or a final
    # metric gets a "config." prefix: one column per name
    taken = set(base.columns) | set(finals.columns)
    column = {k: f"config.{k}" if k in taken else k for k in keep}
    swept = [column[k] for k in swept]
    runs = pd.concat([base, configs[keep].rename(columns=column), finals], axis=1)
    raw = {column[k]: [r["_config"].get(k) for r in rows] for k in keep}
    raw.update({k: [r.get(k) for r in rows] for k in ("epochs_done", "steps", "threads")})
    return add_norm_label(add_derived(_integers(_mixed_as_text(runs, raw), raw)), swept), swept


def _override_key(item: str, groups: set[str]) -> str:
    key = item.lstrip("+~").partition("=")[0]
    return f"{key}.name" if key in groups else key


def independent_keys(configs: pd.DataFrame, varying: list[str], named: set[str]) -> list[str]:
    """The varying keys that define cells, without those that follow from them.

    Choosing ``model=resnet`` also changes ``model.depth``; a linearly scaled lr follows the
    batch size. A key is dropped when, among runs that agree on the keys kept so far, it never
    differs. Keys are tried in the order: overridden on the command line, group names
    (``*.name``), other keys, seed last, so the key a user typed is the one kept, and the seed
    stays the replicate axis rather than absorbing a key that happens to vary with it.
    """

    def rank(key: str) -> tuple[int, int]:
        order = 3 if key == "seed" else 0 if key in named else 1 if key.endswith(".name") else 2
        return order, varying.index(key)

    kept: list[str] = []
    for key in sorted(varying, key=rank):
        if kept:
            spread = configs.groupby(kept, dropna=False)[key].nunique(dropna=False).max()
        else:
            spread = configs[key].nunique(dropna=False)
        if spread > 1:
            kept.append(key)
    return kept


def _mixed_as_text(frame: pd.DataFrame, raw: dict[str, list[Any]]) -> pd.DataFrame:
    """A column holding numbers and text (``-m batch=8,l6``: the l6 run failed) becomes text
    throughout, so it sorts and groups; missing values stay missing."""
    for col, values in raw.items():
        kinds = {isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None}
        if len(kinds) > 1:
            frame[col] = [None if v is None else str(v) for v in values]
    return frame


def _integers(frame: pd.DataFrame, raw: dict[str, list[Any]]) -> pd.DataFrame:
    """Columns whose values were all ints stay ints (batch 8, not 8.0) where some runs lack
    the value; pandas would otherwise turn them into floats around the NaN."""
    for col, values in raw.items():
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            frame[col] = frame[col].astype("Int64")
    return frame


def add_norm_label(runs: pd.DataFrame, swept: list[str]) -> pd.DataFrame:
    """Column ``norm``, the unit every table, figure and claim compares: the norm as the user
    chose it (``group8``: the recorded Hydra choice, else a ``norm=`` override, else
    ``norm.name``), followed by the norm options that differ from that choice's preset or
    that vary among the runs of that choice, e.g. "group(num_groups=8)" for
    ``norm=group norm.num_groups=8``. ``norm=group5,group8`` stays "group5", "group8"."""
    if runs.empty:
        return runs.assign(**{NORM_KEY: []})
    options = [k for k in swept if k.startswith(NORM_OPTION_PREFIX) and k != NORM_NAME_KEY]
    fallback = runs[NORM_NAME_KEY] if NORM_NAME_KEY in runs else pd.Series(None, index=runs.index)
    choice = runs["norm_choice"].where(runs["norm_choice"].notna(), fallback)
    varying = {
        c: [k for k in options if rows[k].astype(str).where(rows[k].notna()).nunique() > 1]
        for c, rows in runs.groupby(choice, dropna=True)
    }

    def one(i: Any) -> Any:
        name = choice[i]
        if not isinstance(name, str):
            return None
        changed = runs.at[i, "norm_options"]
        parts = changed.split(", ") if isinstance(changed, str) and changed else []
        have = {p.split("=")[0] for p in parts}
        for key in varying.get(name, []):
            short = key[len(NORM_OPTION_PREFIX) :]
            if short not in have and pd.notna(runs.at[i, key]):
                parts.append(f"{short}={runs.at[i, key]}")
        return f"{name}({', '.join(parts)})" if parts else name

    return runs.assign(**{NORM_KEY: [one(i) for i in runs.index]})


def add_derived(runs: pd.DataFrame) -> pd.DataFrame:
    """``<split>/error`` = 1 - ``<split>/accuracy`` for every split, ``batchstats_gap`` =
    accuracy with batch statistics minus accuracy with running statistics (norms that have
    batch statistics only; NaN elsewhere), and ``generalization_gap`` = final test loss minus
    final train loss: the eval-mode ``train_eval/loss`` where the run measured it (scored as
    the test loss is), else ``train/loss`` (the last epoch's train-mode mean, without any
    penalty term); ``generalization_gap_from`` names the one each run used. ``sgd_batch`` =
    ``batch`` (per device) x ``devices`` (1 for runs from before the key): the optimiser's batch."""
    runs = runs.copy()
    if "batch" in runs:
        devices = pd.to_numeric(runs["devices"], errors="coerce") if "devices" in runs else 1
        per_device = pd.to_numeric(runs["batch"], errors="coerce")
        runs["sgd_batch"] = per_device * (devices.fillna(1) if isinstance(devices, pd.Series) else devices)
    for col in [c for c in runs.columns if isinstance(c, str) and c.endswith("/accuracy")]:
        runs[col[: -len("accuracy")] + "error"] = 1.0 - pd.to_numeric(runs[col], errors="coerce")
    if {"test_batchstats/accuracy", "test/accuracy"} <= set(runs.columns):
        runs["batchstats_gap"] = runs["test_batchstats/accuracy"] - runs["test/accuracy"]
    if {"test/loss", "train/loss"} <= set(runs.columns):
        train = pd.to_numeric(runs["train/loss"], errors="coerce")
        source = pd.Series("train/loss", index=runs.index)
        if "train_eval/loss" in runs:
            eval_mode = pd.to_numeric(runs["train_eval/loss"], errors="coerce")
            train = eval_mode.where(eval_mode.notna(), train)
            source = source.where(eval_mode.isna(), "train_eval/loss")
        runs["generalization_gap"] = pd.to_numeric(runs["test/loss"], errors="coerce") - train
        runs[GAP_SOURCE_KEY] = source
    return runs


def mark_duplicates(runs: pd.DataFrame, swept: list[str]) -> pd.DataFrame:
    """A finished run of a cell and seed that an earlier run (in ``run_id`` order) already has,
    a copied directory or a seed given twice, would count as another seed: it gets status
    ``duplicate`` and names the run that is kept. The cell is every swept key, the seed too
    where it is not swept (three runs of seed 0 are one seed, not three)."""
    keys = list(dict.fromkeys([*(k for k in swept if k in runs), *([SEED_KEY] if SEED_KEY in runs else [])]))
    done = runs[runs["status"] == DONE]
    if not keys or len(done) < 2:
        return runs
    runs = runs.copy()
    cells = done[keys].astype(str).where(done[keys].notna(), None)
    for _, group in done.groupby([cells[k] for k in keys], dropna=False, sort=False):
        kept, *copies = group.sort_values("run_id")["run_id"].tolist()
        for index in group.index[group["run_id"].isin(copies)]:
            runs.loc[index, "status"] = DUPLICATE
            runs.loc[index, "error"] = f"same cell and seed as {kept}, which is counted"
    return runs


def read_curves(path: Path, run_id: str) -> pd.DataFrame:
    """metrics.csv as a tidy frame; a line cut short by a kill is dropped, not fatal."""
    try:
        frame = pd.read_csv(path, on_bad_lines="skip", dtype=str)
    except (OSError, ValueError, pd.errors.ParserError):
        return pd.DataFrame(columns=CURVE_COLUMNS)
    if not {"step", "epoch", "split", "metric", "value"} <= set(frame.columns):
        return pd.DataFrame(columns=CURVE_COLUMNS)
    # A line cut short by a kill has empty trailing fields; a NaN loss is written as "nan"
    # and kept (a diverging curve is data).
    frame = frame.dropna(subset=["step", "epoch", "split", "metric", "value"])
    for col in ("step", "epoch", "value"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame = frame.dropna(subset=["step"])
    frame.insert(0, "run_id", run_id)
    return frame[CURVE_COLUMNS]


def load(results_dir: str | Path) -> Results:
    """Load every run under ``results_dir`` (a run, a sweep, or a tree of sweeps).

    ``run_id`` is the run's path relative to ``results_dir`` (its own name when
    ``results_dir`` is the run). Statuses other than ``done`` (diverged, failed, interrupted,
    running, "no summary", "corrupt summary: ...") are kept so reports can list them.
    """
    root = Path(results_dir)
    rows, curves = [], []
    for run_dir in find_run_dirs(root):
        run_id = run_dir.relative_to(root).as_posix() if run_dir != root else root.resolve().name
        sweep = run_dir.parent.relative_to(root).as_posix() if run_dir != root else "."
        rows.append(_run_row(run_dir, run_id, sweep))
        if (run_dir / "metrics.csv").exists():
            curves.append(read_curves(run_dir / "metrics.csv", run_id))
    if not rows:
        return Results(
            pd.DataFrame(columns=["run_id", "path", "status"]), pd.DataFrame(columns=CURVE_COLUMNS), []
        )
    declared: dict[str, dict[str, Any]] = {}
    for row in rows:
        for name, entry in row.pop("_declared").items():
            declared.setdefault(name, entry)
    runs, swept = _runs_frame(rows)
    runs = mark_duplicates(runs, swept)
    curve_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    return Results(runs, curve_frame, swept, declared)
