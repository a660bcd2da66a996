"""Per-layer activation statistics at initialisation (runs with ``activations=true``).

The runner logs split ``activations``, metric ``std/<layer>`` (layers counted from 1 in depth
order) at step 0, before any training, and after every epoch; summary ``final`` holds
``activations/first_nonfinite_layer`` for the last logged point. Source article 2's
signal-propagation study is about the step-0 profile, so runs that diverged later are kept
here (only here): their step-0 rows were written before training could go wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from normbench.analysis.load import Results
from normbench.analysis.stats import NORM_KEY, SEED_KEY, cell_keys, groups
from normbench.run.record import DONE, FINISHED

SPLIT = "activations"
STD_PREFIX = "std/"
FINAL_KEY = "activations/first_nonfinite_layer"
# Runs whose step-0 rows count: finished, and diverged (training broke, initialisation did not).
STATUSES = FINISHED
CHECK_LAYERS = (1, 10, 50, 100)  # the table's columns, plus the last layer when it is not one


@dataclass(frozen=True)
class Profile:
    """One cell of the grid: the mean over its runs (seeds) of the std at each layer."""

    label: str  # "init=normal, norm=none"; "all runs" for a single cell
    values: dict[str, object]  # the cell's value of each (short) key
    run_ids: tuple[str, ...]
    statuses: tuple[str, ...]
    layers: np.ndarray  # 1..L
    std: np.ndarray  # mean over runs; NaN or inf wherever any run is NaN or inf
    first_nonfinite: tuple[int | None, ...]  # per run, at initialisation
    last_nonfinite: tuple[float, ...]  # per run, summary final (last logged point); NaN: none;
    # empty when no summary has the key

    @property
    def first_bad(self) -> int | None:
        """The first layer where the mean is NaN or inf (the earliest over the runs)."""
        bad = [x for x in self.first_nonfinite if x is not None]
        return min(bad) if bad else None

    @property
    def first_zero(self) -> int | None:
        """The first layer where the std underflowed to exactly 0 (log scale cannot show it)."""
        zero = np.flatnonzero(self.std == 0)
        return int(self.layers[zero[0]]) if len(zero) else None


def has_activations(res: Results) -> bool:
    return not res.curves.empty and bool((res.curves["split"] == SPLIT).any())


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Readable names for line labels: "model.init" -> "init", "model.name" -> "model";
    the full key where two would read the same."""

    def short(k: str) -> str:
        if k == NORM_KEY or "." not in k:
            return k
        group, leaf = k.rsplit(".", 1)
        return group if leaf == "name" else leaf

    names = [short(k) for k in keys]
    return {k: n if names.count(n) == 1 else k for k, n in zip(keys, names, strict=True)}


def _init_std(curves: pd.DataFrame) -> pd.DataFrame:
    """run_id x layer table of the step-0 stds. NaN and inf stay: they are the finding."""
    rows = curves[
        (curves["split"] == SPLIT) & (curves["step"] == 0) & curves["metric"].str.startswith(STD_PREFIX)
    ]
    rows = rows.assign(layer=pd.to_numeric(rows["metric"].str[len(STD_PREFIX) :], errors="coerce"))
    rows = rows.dropna(subset=["layer"]).drop_duplicates(["run_id", "layer"], keep="last")
    # pivot, not pivot_table: pivot_table's aggregation would drop the NaN stds
    return rows.pivot(index="run_id", columns="layer", values="value").sort_index(axis=1)


def _first_nonfinite(stds: np.ndarray, layers: np.ndarray) -> int | None:
    bad = np.flatnonzero(~np.isfinite(stds))
    return int(layers[bad[0]]) if len(bad) else None


def init_profiles(res: Results) -> list[Profile]:
    """One :class:`Profile` per cell (swept keys minus seed, only those that differ between
    the runs shown), from the runs with status done or diverged that logged step-0 stds."""
    if not has_activations(res) or res.runs.empty:
        return []
    table = _init_std(res.curves)
    runs = res.runs[res.runs["status"].isin(STATUSES) & res.runs["run_id"].isin(table.index)]
    if runs.empty:
        return []
    keys = [k for k in cell_keys(runs, res.swept, exclude=(SEED_KEY,)) if runs[k].astype(str).nunique() > 1]
    keys.sort(key=lambda k: k == NORM_KEY)  # "init=normal, norm=none": the norm last, as in the article
    names = short_keys(keys)
    profiles = []
    for values, rows in groups(runs, keys):
        cell = rows.sort_values(SEED_KEY) if SEED_KEY in rows else rows
        per_run = table.loc[cell["run_id"]]
        layers = per_run.columns.to_numpy(int)
        data = per_run.to_numpy(float)  # (runs, layers)
        with np.errstate(invalid="ignore"):
            std = data.mean(axis=0)  # NaN or inf at a layer where any run is: the mean is not finite
        last = cell[FINAL_KEY] if FINAL_KEY in cell else pd.Series(dtype=float)
        shown = {names[k]: v for k, v in zip(keys, values, strict=True)}
        profiles.append(
            Profile(
                label=", ".join(f"{k}={v}" for k, v in shown.items()) or "all runs",
                values=shown,
                run_ids=tuple(cell["run_id"]),
                statuses=tuple(cell["status"]),
                layers=layers,
                std=std,
                first_nonfinite=tuple(_first_nonfinite(row, layers) for row in data),
                last_nonfinite=tuple(float(x) for x in pd.to_numeric(last, errors="coerce")),
            )
        )
    return profiles


def check_layers(n_layers: int) -> list[int]:
    """Layers 1, 10, 50, 100 that exist, plus the last layer."""
    return list(dict.fromkeys([*(x for x in CHECK_LAYERS if x <= n_layers), n_layers]))


def fmt_std(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"


def _fmt_layers(values: Sequence[float | int | None]) -> str:
    """ "33"; "33 (per seed: 33, 35)" when the runs differ; "none" when finite throughout."""
    shown = ["none" if v is None or (isinstance(v, float) and math.isnan(v)) else str(int(v)) for v in values]
    if len(set(shown)) == 1:
        return shown[0]
    numbers = [int(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return f"{min(numbers)} (per seed: {', '.join(shown)})"


def _runs_note(statuses: Sequence[str]) -> str:
    """ "2", "1 (diverged)", "2 (1 diverged)"."""
    other = [s for s in statuses if s != DONE]
    if not other:
        return str(len(statuses))
    counts = pd.Series(other).value_counts()
    return f"{len(statuses)} ({', '.join(f'{n} {s}' if len(statuses) > 1 else s for s, n in counts.items())})"


def init_table(profiles: Sequence[Profile]) -> pd.DataFrame:
    """Per cell: runs, std at layers 1, 10, 50, 100 (or those that exist, and the last) at
    initialisation, the first NaN/inf layer at initialisation and at the last logged point."""
    if not profiles:
        return pd.DataFrame()
    n_layers = max(int(p.layers.max()) for p in profiles)
    rows = []
    for p in profiles:
        at = dict(zip(p.layers.tolist(), p.std.tolist(), strict=True))
        row: dict[str, object] = {**p.values, "runs": _runs_note(p.statuses)}
        for layer in check_layers(n_layers):
            row[f"std layer {layer}"] = fmt_std(at[layer]) if layer in at else "-"
        row["first NaN/inf layer, init"] = _fmt_layers(p.first_nonfinite)
        if any(q.last_nonfinite for q in profiles):
            last = _fmt_layers(p.last_nonfinite) if p.last_nonfinite else "-"
            row["first NaN/inf layer, last logged"] = last
        rows.append(row)
    return pd.DataFrame(rows)
