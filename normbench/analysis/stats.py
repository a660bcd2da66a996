"""Statistics over seeds: mean, standard deviation and a bootstrap confidence interval.

Seeds are the unit of evidence: every number a report shows is a mean over the seeds of one
cell of the grid, with the 95% percentile-bootstrap interval of that mean. The percentile
method is used rather than scipy's default BCa because with 2-5 seeds BCa's acceleration
estimate is unstable (and undefined when values tie); percentile intervals are also what a
reader can recompute by hand. The resampling is seeded, so a report is reproducible.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
# The norm of a run as tables and figures name it: ``norm.name``, plus the norm options that
# vary (e.g. "group(num_groups=8)") so that variants are compared, never averaged together.
NORM_KEY = "norm"
NORM_OPTION_PREFIX = "norm."
SEED_KEY = "seed"
BATCH_KEY = "batch"
STAT_COLUMNS = ["n", "mean", "std", "ci_low", "ci_high", "seeds"]


def base_norm(norm_label: object) -> str:
    """ "group(num_groups=8)" -> "group": the norm a variant label belongs to."""
    return str(norm_label).split("(")[0]


def variants(labels: Sequence[object], name: str) -> list[str]:
    """The norm labels among ``labels`` that are ``name`` or a variant of it, sorted: a
    claim about "group" applies to "group(num_groups=5)" and "group(num_groups=8)" when a
    sweep compares group counts (norm presets such as ``norm=group8`` keep the name "group")."""
    return sorted({str(x) for x in labels if isinstance(x, str) and base_norm(x) == name})


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Percentile-bootstrap CI of the mean of ``values`` along axis 0.

    NaN with fewer than two values: one seed says nothing about the spread. ``values`` may be
    2-D (seeds x steps); the interval is then computed per column in one vectorised call.
    """
    data = np.asarray(values, dtype=float)
    if data.shape[0] < 2:
        nan = np.full(data.shape[1:], np.nan) if data.ndim > 1 else np.nan
        return nan, nan
    # Columns where every seed gave the same value: the interval is that value (scipy would
    # warn and return NaN, though there is no doubt about the mean).
    same = np.all(data == data[0], axis=0)
    if np.all(same):
        return _point(data[0]), _point(data[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the degenerate columns of 2-D data, replaced below
        res = stats.bootstrap(
            (data,),
            np.mean,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            axis=0,
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    low, high = res.confidence_interval
    return _point(np.where(same, data[0], low)), _point(np.where(same, data[0], high))


def _point(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else np.asarray(x, float)


def describe(values: Sequence[float] | np.ndarray, seeds: Sequence[int] = ()) -> dict[str, object]:
    """n, mean, std (ddof=1, NaN for one value), CI bounds and the seeds behind them."""
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    low, high = bootstrap_ci(data) if len(data) else (np.nan, np.nan)
    return {
        "n": int(len(data)),
        "mean": float(data.mean()) if len(data) else np.nan,
        "std": float(data.std(ddof=1)) if len(data) > 1 else np.nan,
        "ci_low": low,
        "ci_high": high,
        "seeds": tuple(sorted(seeds)),
    }


def groups(frame: pd.DataFrame, keys: Sequence[str]) -> list[tuple[tuple, pd.DataFrame]]:
    """(values, rows) per cell of ``keys``, values always a tuple; one cell when no keys."""
    if not keys:
        return [((), frame)]
    grouped = frame.groupby(list(keys), dropna=False, sort=True)
    return [(v if isinstance(v, tuple) else (v,), g) for v, g in grouped]


def label(keys: Sequence[str], values: Sequence[object]) -> str:
    """ "model.name=mlp, norm.name=group"; "" for the single cell of no keys."""
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))


def contexts(done: pd.DataFrame, swept: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """The runs split by the swept keys other than norm, batch size and seed: the settings
    (model, dataset, ...) within which norms and batch sizes are compared."""
    keys = cell_keys(done, swept, exclude=(SEED_KEY, NORM_KEY, BATCH_KEY)) if len(done) else []
    return [(label(keys, values), rows) for values, rows in groups(done, keys)]


def cell_keys(runs: pd.DataFrame, swept: Sequence[str], exclude: Sequence[str] = (SEED_KEY,)) -> list[str]:
    """The keys that define a cell of the grid: swept keys minus seed (and ``exclude``),
    plus norm and batch, which every table is organised by even when not swept. The swept
    ``norm.*`` keys are part of the norm label (``NORM_KEY``), not cells of their own."""
    keys = [
        k
        for k in (NORM_KEY, BATCH_KEY, *swept)
        if k in runs.columns and k not in exclude and not k.startswith(NORM_OPTION_PREFIX)
    ]
    return list(dict.fromkeys(keys))


def aggregate(runs: pd.DataFrame, metric: str, by: Sequence[str]) -> pd.DataFrame:
    """One row per cell of ``by``: the statistics of ``metric`` over that cell's runs (seeds).

    Pass only finished runs (``Results.done``); NaN metric values are ignored.
    """
    if metric not in runs.columns or runs.empty:
        return pd.DataFrame(columns=[*by, *STAT_COLUMNS])
    rows = []
    for cell, group in groups(runs, by):
        good = group[group[metric].notna()]
        seeds = good[SEED_KEY].tolist() if SEED_KEY in good else []
        rows.append({**dict(zip(by, cell, strict=True)), **describe(good[metric].to_numpy(float), seeds)})
    return pd.DataFrame(rows, columns=[*by, *STAT_COLUMNS])


def paired_differences(
    runs: pd.DataFrame,
    metric: str,
    by: Sequence[str],
    baseline: str = "batch",
    key: str = NORM_KEY,
) -> pd.DataFrame:
    """``metric`` of each norm minus the baseline norm's, paired by seed within each cell of
    ``by`` (which must not contain ``key`` or seed). Pairing removes the seed-to-seed variation
    the two runs share (same data order and initial weights), so the CI is of the difference
    itself, not of two overlapping intervals.
    """
    columns = [*by, key, "baseline", *STAT_COLUMNS]
    if metric not in runs.columns or runs.empty or key not in runs.columns:
        return pd.DataFrame(columns=columns)
    rows = []
    for cell, group in groups(runs, by):
        base = group[group[key] == baseline].groupby(SEED_KEY)[metric].mean()
        for name, other in group[group[key] != baseline].groupby(key, sort=True):
            values = other.groupby(SEED_KEY)[metric].mean()
            both = values.index.intersection(base.index)
            diff = (values[both] - base[both]).dropna()
            rows.append(
                {
                    **dict(zip(by, cell, strict=True)),
                    key: name,
                    "baseline": baseline,
                    **describe(diff.to_numpy(float), diff.index.tolist()),
                }
            )
    return pd.DataFrame(rows, columns=columns)


def difference_of_means(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """mean(a) - mean(b) with an unpaired percentile-bootstrap CI (each sample resampled
    on its own); NaN bounds unless both have two values or more."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    out = {
        "diff": float(x.mean() - y.mean()) if len(x) and len(y) else np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "n_a": len(x),
        "n_b": len(y),
    }
    if len(x) < 2 or len(y) < 2:
        return out
    if np.all(x == x[0]) and np.all(y == y[0]):
        out["ci_low"] = out["ci_high"] = out["diff"]
        return out
    res = stats.bootstrap(
        (x, y),
        lambda u, v, axis: u.mean(axis) - v.mean(axis),
        n_resamples=N_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    out["ci_low"], out["ci_high"] = map(float, res.confidence_interval)
    return out


def curve_band(
    curves: pd.DataFrame,
    run_ids: Sequence[str],
    split: str = "train",
    metric: str = "loss",
    smooth: int = 0,
) -> pd.DataFrame:
    """Mean and CI over runs (seeds) of one curve, per step: columns step, mean, ci_low,
    ci_high, n. Only steps that every run logged are kept, so the band never mixes a
    different number of seeds along the line. ``smooth`` > 1: trailing moving average over
    that many log points, per run, before averaging (why: per-iteration loss is noisy)."""
    sel = curves[curves["run_id"].isin(run_ids) & (curves["split"] == split) & (curves["metric"] == metric)]
    wide = sel.pivot_table(index="step", columns="run_id", values="value", aggfunc="last").dropna()
    if wide.empty:
        return pd.DataFrame(columns=["step", "mean", "ci_low", "ci_high", "n"])
    if smooth > 1:
        wide = wide.rolling(smooth, min_periods=1).mean()
    low, high = bootstrap_ci(wide.to_numpy().T, n_resamples=999)  # a band, not a table number
    return pd.DataFrame(
        {
            "step": wide.index.to_numpy(),
            "mean": wide.mean(axis=1).to_numpy(),
            "ci_low": low,
            "ci_high": high,
            "n": wide.shape[1],
        }
    )
