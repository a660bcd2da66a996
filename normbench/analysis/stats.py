"""Statistics over seeds: Student-t intervals, paired and Welch t-tests, Holm, power.

Seeds are the unit of evidence (docs/design.md §6): every number a report shows is a mean over the
seeds of one cell of the grid with its Student-t 95% interval (``scipy.stats.t``), an error's
interval clipped to [0, 100]%. A percentile bootstrap over 2-5 seeds is just the range of the
seeds (it covered the true mean 48% of the time with 2 seeds) and is not used. A difference
between two cells is a paired t-test (``ttest_rel``) on the seeds both ran (same initial
weights and data order, so the shared seed-to-seed variation cancels; the seeds only one side
ran are left out and named), Welch's t-test (``ttest_ind(equal_var=False)``) where fewer than
two seeds are shared. A difference with no spread over seeds is not tested (p and interval
undefined): identical differences happen on a logging grid or in steps of 1/n_test, and a
t-test would call them exact. A non-finite value (inf) is a failed run, not a measurement.
Power: scipy's noncentral t (``scipy.stats.nct``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from normbench.run.record import DIVERGED, DONE, FAILED

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8  # the power the "seeds needed" line aims at
INTERVAL_METHOD = "Student-t"
# The norm of a run as tables and figures name it: the user's choice (``norm=group8``), plus
# the norm options that differ from that choice's defaults (see load.add_norm_label).
NORM_KEY = "norm"
NORM_NAME_KEY = "norm.name"
NORM_OPTION_PREFIX = "norm."
SEED_KEY = "seed"
# the per-device batch size, named as on the command line (batch=8); never BatchNorm, which
# the analysis knows only by its recorded properties
BATCH_SIZE_KEY = "batch"
# The norm's properties as its run recorded them ("norm_property.batch_statistics"): not
# "norm." keys, which are the norm's options. Among them the papers' name of the norm ("BN",
# "GN"; "" for none), what published numbers and the claims' default norms go by, so that no
# analysis code names a norm (norms.NormSpec.paper).
NORM_PROPERTY_PREFIX = "norm_property."
NORM_PAPER_KEY = NORM_PROPERTY_PREFIX + "paper"
LEARNED_KEY = "learned"
N_TEST_KEY = "n_test"
STAT_COLUMNS = ["n", "mean", "std", "ci_low", "ci_high", "seeds"]


def norm_names(runs: pd.DataFrame) -> dict[str, str]:
    """{label: norm.name}: "group8" -> "group", the norm a variant label belongs to."""
    if NORM_KEY not in runs or runs.empty:
        return {}
    names = runs[NORM_NAME_KEY] if NORM_NAME_KEY in runs else runs[NORM_KEY]
    pairs = zip(runs[NORM_KEY], names.where(names.notna(), runs[NORM_KEY]), strict=True)
    return {str(label): str(name) for label, name in pairs if isinstance(label, str)}


def paper_names(runs: pd.DataFrame) -> dict[str, str]:
    """{label: the papers' name of its norm}: "group8" -> "GN"; labels of a norm no paper
    names are left out."""
    if NORM_KEY not in runs or NORM_PAPER_KEY not in runs or runs.empty:
        return {}
    pairs = zip(runs[NORM_KEY], runs[NORM_PAPER_KEY], strict=True)
    return {label: p for label, p in pairs if isinstance(label, str) and p and isinstance(p, str)}


def norm_called(runs: pd.DataFrame, paper: str) -> str | None:
    """The norm (``norm.name``) the runs record as the one the papers call ``paper``: "BN" ->
    "batch"; None where no run has it."""
    names = norm_names(runs)
    found = sorted({names[label] for label, p in paper_names(runs).items() if p == paper})
    return found[0] if found else None


def variants(runs: pd.DataFrame, name: str) -> list[str]:
    """The labels a claim or option ``name`` refers to, sorted: the label itself if a run has
    it (``--baseline group8``), else every label whose norm is ``name`` (``group`` means
    "group8" and "group(num_groups=2)" alike, each judged on its own)."""
    names = norm_names(runs)
    if name in names:
        return [name]
    return sorted(label for label, norm in names.items() if norm == name)


def natural_key(value: object) -> list[tuple[int, object]]:
    """Sort key with the numbers inside a label taken as numbers: group(num_groups=2) before
    group(num_groups=16), batch "8" before "32" (a batch column kept as text because a failed
    run's value was not a number, ``-m batch=8,32,l6``)."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", str(value))]


def is_proportion(metric: str) -> bool:
    """An error or accuracy: a share of images, so its mean and interval lie in [0, 1]."""
    return metric.rsplit("/", 1)[-1] in ("error", "accuracy")


def is_percent(metric: str) -> bool:
    """Error and accuracy (and the batch-statistics accuracy gap) are fractions in the data
    and shown in percent; losses, and the generalization gap between two losses, are not."""
    return metric.endswith(("error", "accuracy", "batchstats_gap"))


def difference_unit(metric: str) -> str:
    """What a difference of ``metric`` is counted in: points for a percentage, else the
    metric's own units (a loss is not in points)."""
    return "points" if is_percent(metric) else f"units of {metric}"


def scale(metric: str) -> float:
    """The factor from the data to the report: 100 for percentages (points), else 1."""
    return 100.0 if is_percent(metric) else 1.0


# ---------------------------------------------------------------- one cell


def t_interval(
    values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Student-t interval of the mean of ``values`` along axis 0 (seeds x ... allowed).

    NaN with fewer than two values: one seed says nothing about the spread. Equal values give
    a zero-width interval (the t quantile times a zero standard error).
    """
    data = np.asarray(values, dtype=float)
    n = data.shape[0]
    if n < 2:
        nan = np.full(data.shape[1:], np.nan) if data.ndim > 1 else np.nan
        return nan, nan
    sem = data.std(axis=0, ddof=1) / math.sqrt(n)
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * sem
    mean = data.mean(axis=0)
    return _point(mean - half), _point(mean + half)


def _point(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else np.asarray(x, float)


def describe(values: Sequence[float] | np.ndarray, seeds: Sequence[int] = ()) -> dict[str, object]:
    """n, mean, std (ddof=1, NaN for one value), t-interval bounds and the seeds behind them."""
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]  # inf: a failed run (counted in the failure rate), not a value
    low, high = t_interval(data) if len(data) else (np.nan, np.nan)
    return {
        "n": int(len(data)),
        "mean": float(data.mean()) if len(data) else np.nan,
        "std": float(data.std(ddof=1)) if len(data) > 1 else np.nan,
        "ci_low": low,
        "ci_high": high,
        "seeds": tuple(sorted(seeds)),
    }


def binomial_metric(metric: str) -> bool:
    """Error or accuracy measured on the test set (test, test_batchstats, test_precise): a
    proportion of n_test images, with its own binomial standard error per run."""
    split, _, name = metric.partition("/")
    return split.startswith("test") and name in ("error", "accuracy")


def binomial_se(p: float | np.ndarray, n_test: float | np.ndarray) -> float | np.ndarray:
    """sqrt(p (1 - p) / n_test): one run's standard error of a test proportion, from the
    finite test set alone (the noise a rerun on a fresh test draw would show)."""
    p, n = np.asarray(p, float), np.asarray(n_test, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _point(np.sqrt(p * (1 - p) / np.where(n > 0, n, np.nan)))


def seed_values(rows: pd.DataFrame, metric: str) -> pd.Series:
    """A metric of ``rows`` indexed by seed, as :func:`difference` takes it."""
    return pd.Series(pd.to_numeric(rows[metric], errors="coerce").to_numpy(), index=rows[SEED_KEY].to_numpy())


def groups(frame: pd.DataFrame, keys: Sequence[str]) -> list[tuple[tuple, pd.DataFrame]]:
    """(values, rows) per cell of ``keys``, values always a tuple; one cell when no keys."""
    if not keys:
        return [((), frame)]
    grouped = frame.groupby(list(keys), dropna=False, sort=True)
    return [(v if isinstance(v, tuple) else (v,), g) for v, g in grouped]


def label(keys: Sequence[str], values: Sequence[object]) -> str:
    """ "model.name=mlp, norm=group8"; "" for the single cell of no keys."""
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))


def contexts(done: pd.DataFrame, swept: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """The runs split by the swept keys other than norm, batch size and seed: the settings
    (model, dataset, ...) within which norms and batch sizes are compared."""
    keys = cell_keys(done, swept, exclude=(SEED_KEY, NORM_KEY, BATCH_SIZE_KEY)) if len(done) else []
    return [(label(keys, values), rows) for values, rows in groups(done, keys)]


def cell_keys(runs: pd.DataFrame, swept: Sequence[str], exclude: Sequence[str] = (SEED_KEY,)) -> list[str]:
    """The keys that define a cell of the grid: swept keys minus seed (and ``exclude``),
    plus norm and batch, which every table is organised by even when not swept. The swept
    ``norm.*`` keys are part of the norm label (``NORM_KEY``), not cells of their own."""
    keys = [
        k
        for k in (NORM_KEY, BATCH_SIZE_KEY, *swept)
        if k in runs.columns and k not in exclude and not k.startswith(NORM_OPTION_PREFIX)
    ]
    return list(dict.fromkeys(keys))


def aggregate(runs: pd.DataFrame, metric: str, by: Sequence[str]) -> pd.DataFrame:
    """One row per cell of ``by``: the statistics of ``metric`` over that cell's runs (seeds),
    one value per seed (runs of one seed averaged), plus ``binom_se`` (the mean over runs of
    each run's binomial standard error, for test
    errors and accuracies of runs with a known test size, else NaN) and ``not_learned`` (how
    many of the runs did not learn, see load). An error's or accuracy's interval is clipped
    to [0, 1]: the t interval of a few seeds near 0% would reach below it.

    Pass only finished runs (``Results.done``); NaN and infinite metric values are ignored
    (an infinite one is a failed run: :func:`failure_rates`).
    """
    columns = [*by, *STAT_COLUMNS, "binom_se", "not_learned"]
    if metric not in runs.columns or runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for cell, group in groups(runs, by):
        good = group[np.isfinite(pd.to_numeric(group[metric], errors="coerce").to_numpy(float))]
        values = pd.to_numeric(good[metric], errors="coerce")
        seeds: list = []
        if SEED_KEY in good:
            # one value per seed: two runs of one seed (the same sweep kept under two names)
            # are one replicate, not two; counting both would narrow the interval falsely
            values = values.groupby(good[SEED_KEY].to_numpy(), dropna=False).mean()
            seeds = values.index.tolist()
        values = values.to_numpy(float)
        se = np.nan
        if binomial_metric(metric) and N_TEST_KEY in good and len(good):
            each = pd.to_numeric(good[metric], errors="coerce").to_numpy(float)
            se = float(np.nanmean(binomial_se(each, pd.to_numeric(good[N_TEST_KEY], errors="coerce"))))
        unlearned = int((~good[LEARNED_KEY].astype(bool)).sum()) if LEARNED_KEY in good else 0
        described = describe(values, seeds)
        if is_proportion(metric) and described["n"] > 1:
            described["ci_low"] = max(0.0, described["ci_low"])
            described["ci_high"] = min(1.0, described["ci_high"])
        rows.append(
            {
                **dict(zip(by, cell, strict=True)),
                **described,
                "binom_se": se,
                "not_learned": unlearned,
            }
        )
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------- two cells


# A spread this small relative to the values is float rounding of equal differences (0.36 - 0.35
# and 0.26 - 0.25 differ in the last bit), not a measured spread.
NO_SPREAD = 1e-9
NO_SPREAD_RULE = (
    "a difference with no spread over seeds (every seed's difference the same, as steps on a "
    "logging grid or errors in steps of 1/n_test can be) is not tested: it decides nothing"
)


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) over seeds: paired when ``paired`` (a[i] and b[i] share a seed),
    else two independent samples (Welch). Tests and intervals are scipy's. ``unpaired``: the
    seeds only one side ran, left out of a paired comparison; ``failed``: runs whose value was
    not finite (inf), left out as failed runs."""

    a: np.ndarray
    b: np.ndarray
    paired: bool
    unpaired: tuple = ()
    failed: int = 0

    @property
    def diff(self) -> float:
        if not len(self.a) or not len(self.b):
            return np.nan
        return float(self.a.mean() - self.b.mean())

    @property
    def n(self) -> int:
        """Pairs (paired), else the smaller sample: the seeds the comparison rests on."""
        return len(self.a) if self.paired else min(len(self.a), len(self.b))

    @property
    def testable(self) -> bool:
        return self.n >= 2

    @property
    def sd(self) -> float:
        """The spread of one seed's difference: the SD of the paired differences, or
        sqrt(sd_a^2 + sd_b^2) for independent samples; NaN below two seeds."""
        if not self.testable:
            return np.nan
        if self.paired:
            return float(np.std(self.a - self.b, ddof=1))
        return float(math.hypot(np.std(self.a, ddof=1), np.std(self.b, ddof=1)))

    @property
    def method(self) -> str:
        return "paired t" if self.paired else "Welch t"

    @property
    def n_text(self) -> str:
        """ "5 pairs", "3 vs 2 seeds", then what was left out: "4 pairs (unpaired seed 5 left
        out)", "(1 run with an infinite value counted as failed)"."""
        text = f"{len(self.a)} pairs" if self.paired else f"{len(self.a)} vs {len(self.b)} seeds"
        notes = []
        if self.unpaired:
            many = "s" if len(self.unpaired) > 1 else ""
            notes.append(f"unpaired seed{many} {', '.join(map(str, self.unpaired))} left out")
        if self.failed:
            notes.append(f"{self.failed} run(s) with a non-finite value counted as failed, left out")
        return text + (f" ({'; '.join(notes)})" if notes else "")

    def _degenerate(self) -> bool:
        """No spread at all (every difference equal, up to float rounding)."""
        if not self.testable:
            return False
        size = max(1.0, float(np.max(np.abs(np.concatenate([self.a, self.b])))))
        return bool(self.sd <= NO_SPREAD * size)

    def p_value(self, alternative: str = "two-sided", shift: float = 0.0) -> float:
        """p of H0 "mean(a) - mean(b) = shift" against ``alternative`` ("greater": the
        difference is larger than ``shift``); NaN when not testable or without any spread
        (a t-test would call a difference without spread exact: p = 0)."""
        if not self.testable or self._degenerate():
            return np.nan
        if self.paired:
            return float(stats.ttest_rel(self.a - shift, self.b, alternative=alternative).pvalue)
        return float(stats.ttest_ind(self.a - shift, self.b, equal_var=False, alternative=alternative).pvalue)

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """Two-sided interval of the difference at ``confidence``; NaN when not testable or
        without any spread (a zero-width interval would claim an exact difference)."""
        if not self.testable or self._degenerate():
            return np.nan, np.nan
        if self.paired:
            res = stats.ttest_rel(self.a, self.b)
        else:
            res = stats.ttest_ind(self.a, self.b, equal_var=False)
        ci = res.confidence_interval(confidence_level=confidence)
        return float(ci.low), float(ci.high)

    def seeds_needed(
        self, margin: float, alpha: float = ALPHA, power: float = POWER, **kw: bool
    ) -> int | None:
        return seeds_needed(self.sd, margin, paired=self.paired, alpha=alpha, power=power, **kw)


def _finite(values: pd.Series) -> tuple[pd.Series, int]:
    """(the finite values, one per seed; how many runs had an infinite value: failed runs)."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    finite = np.isfinite(values.to_numpy(float))
    return values[finite].groupby(level=0).mean(), int((~finite).sum())


def difference(a: pd.Series, b: pd.Series) -> Difference:
    """a - b with values indexed by seed: paired on the seeds both ran when they share two or
    more (the others left out and named in ``unpaired``), else Welch over all. NaN values (a
    run without the metric) are dropped; infinite ones are failed runs (``failed``)."""
    (a, failed_a), (b, failed_b) = _finite(a), _finite(b)
    common = sorted(set(a.index) & set(b.index), key=natural_key)
    if len(common) >= 2:
        left_out = sorted(set(a.index) ^ set(b.index), key=natural_key)
        return Difference(
            a[common].to_numpy(float),
            b[common].to_numpy(float),
            paired=True,
            unpaired=tuple(left_out),
            failed=failed_a + failed_b,
        )
    return Difference(a.to_numpy(float), b.to_numpy(float), paired=False, failed=failed_a + failed_b)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment: sort ascending, multiply the i-th smallest (from 0) by
    m - i, take the running maximum, cap at 1. A NaN p (not testable) counts as 1."""
    p = np.nan_to_num(np.asarray(pvalues, float), nan=1.0)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def seeds_needed(
    sd: float,
    margin: float,
    *,
    paired: bool = True,
    alpha: float = ALPHA,
    power: float = POWER,
    equivalence: bool = False,
    limit: int = 1000,
) -> int | None:
    """Seeds per cell for a one-sided t-test at ``alpha`` to detect a true difference of
    ``margin`` with probability ``power``, given ``sd`` (the spread of one seed's difference,
    see :attr:`Difference.sd`), by scipy's noncentral t. ``equivalence``: TOST at a true
    difference of 0 with bounds +-``margin``; its power is taken as the usual lower bound
    2 P(one side rejects) - 1. Welch: df 2(n - 1). None when sd or margin is not positive or
    more than ``limit`` seeds would be needed."""
    if not (sd > 0 and margin > 0):
        return None
    n = np.arange(2, limit + 1)
    df = n - 1 if paired else 2 * (n - 1)
    one_side = stats.nct.sf(stats.t.ppf(1 - alpha, df), df, margin / (sd / np.sqrt(n)))
    achieved = 2 * one_side - 1 if equivalence else one_side
    hit = np.flatnonzero(achieved >= power)
    return int(n[hit[0]]) if len(hit) else None


def paired_differences(
    runs: pd.DataFrame,
    metric: str,
    by: Sequence[str],
    baseline: str,
    key: str = NORM_KEY,
) -> pd.DataFrame:
    """``metric`` of each norm minus the baseline norm's, paired by seed within each cell of
    ``by`` (which must not contain ``key`` or seed), with the t interval of the mean paired
    difference. Pairing removes the seed-to-seed variation the two runs share (same data order
    and initial weights), so the CI is of the difference itself, not of two overlapping
    intervals. Seeds that only one of the two ran are left out."""
    columns = [*by, key, "baseline", *STAT_COLUMNS]
    if metric not in runs.columns or runs.empty or key not in runs.columns:
        return pd.DataFrame(columns=columns)
    rows = []
    for cell, group in groups(runs, by):
        base = group[group[key] == baseline].groupby(SEED_KEY)[metric].mean()
        for name, other in group[group[key] != baseline].groupby(key, sort=True):
            values = other.groupby(SEED_KEY)[metric].mean()
            both = values.index.intersection(base.index)
            diff = values[both] - base[both]
            diff = diff[np.isfinite(diff.to_numpy(float))]  # inf: a failed run, not a difference
            rows.append(
                {
                    **dict(zip(by, cell, strict=True)),
                    key: name,
                    "baseline": baseline,
                    **describe(diff.to_numpy(float), diff.index.tolist()),
                }
            )
    return pd.DataFrame(rows, columns=columns)


STATUS_KEY = "status"
ENDED = (DONE, DIVERGED, FAILED)  # interrupted or still running: not an outcome yet
FAILURE_COLUMNS = ["runs", "failed", "rate", "ci_low", "ci_high"]


def failed_runs(runs: pd.DataFrame, metric: str) -> pd.Series:
    """True for each run that ended without a usable outcome: status diverged or failed, a
    non-finite ``metric``, or a run that did not learn (at chance: a failure of training)."""
    status = runs[STATUS_KEY] if STATUS_KEY in runs else pd.Series(DONE, index=runs.index)
    bad = status.isin([DIVERGED, FAILED])
    if metric in runs:
        values = pd.to_numeric(runs[metric], errors="coerce").to_numpy(float)
        bad |= np.isinf(values)
    if LEARNED_KEY in runs:
        bad |= ~runs[LEARNED_KEY].fillna(True).astype(bool)
    return bad


def failure_rates(runs: pd.DataFrame, metric: str, by: Sequence[str]) -> pd.DataFrame:
    """Per cell of ``by``: runs that ended (done, diverged or failed), how many of them failed
    (:func:`failed_runs`), the rate and its exact binomial (Clopper-Pearson) interval. A t
    interval over seeds assumes one mode; a cell whose runs sometimes fail is bimodal, so its
    failures are counted here as a rate of their own."""
    status = runs[STATUS_KEY] if STATUS_KEY in runs else pd.Series(DONE, index=runs.index)
    ended = runs[status.isin(ENDED)]
    rows = []
    for cell, group in groups(ended, by) if len(ended) else []:
        k, n = int(failed_runs(group, metric).sum()), len(group)
        ci = stats.binomtest(k, n).proportion_ci(CONFIDENCE, method="exact")
        rows.append(
            {
                **dict(zip(by, cell, strict=True)),
                "runs": n,
                "failed": k,
                "rate": k / n,
                "ci_low": ci.low,
                "ci_high": ci.high,
            }
        )
    return pd.DataFrame(rows, columns=[*by, *FAILURE_COLUMNS])


def curve_band(
    curves: pd.DataFrame,
    run_ids: Sequence[str],
    split: str = "train",
    metric: str = "loss",
    smooth: int = 0,
) -> pd.DataFrame:
    """Mean and t interval over runs (seeds) of one curve, per step: columns step, mean,
    ci_low, ci_high, n. Only steps that every run logged are kept, so the band never mixes a
    different number of seeds along the line. ``smooth`` > 1: trailing moving average over
    that many log points, per run, before averaging (why: per-iteration loss is noisy)."""
    sel = curves[curves["run_id"].isin(run_ids) & (curves["split"] == split) & (curves["metric"] == metric)]
    wide = sel.pivot_table(index="step", columns="run_id", values="value", aggfunc="last").dropna()
    if wide.empty:
        return pd.DataFrame(columns=["step", "mean", "ci_low", "ci_high", "n"])
    if smooth > 1:
        wide = wide.rolling(smooth, min_periods=1).mean()
    low, high = t_interval(wide.to_numpy().T)
    return pd.DataFrame(
        {
            "step": wide.index.to_numpy(),
            "mean": wide.mean(axis=1).to_numpy(),
            "ci_low": low,
            "ci_high": high,
            "n": wide.shape[1],
        }
    )
