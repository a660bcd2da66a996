"""Automatic claims: statements from the papers, checked against the runs, PASS or FAIL.

Each claim states its rule (the threshold) next to its verdict and its numbers. A claim whose
data is absent (the norm was not run, one batch size only, one seed where a CI is needed)
says MISSING DATA: it never passes by default. A claim the grid was never designed to test
(the batch-size claims on a grid of one batch size, the published order on a grid with fewer
than two of its norms) is not made at all, and :func:`out_of_scope` says why: MISSING DATA is
kept for runs that should have been there. Claims are checked separately in every cell of the
swept keys other than norm, batch size and seed (e.g. once per model).

A claim about a norm ("group") applies to each of its variants: a sweep that compares group
counts labels its runs "group(num_groups=5)" and "group(num_groups=8)" (see
``load.add_norm_label``), and each is checked on its own; the published order judges variants
by the norm they belong to.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from normbench.analysis import reference
from normbench.analysis.load import Results
from normbench.analysis.stats import (
    BATCH_KEY,
    NORM_KEY,
    SEED_KEY,
    aggregate,
    base_norm,
    contexts,
    describe,
    difference_of_means,
    groups,
    variants,
)

PASS, FAIL, MISSING = "PASS", "FAIL", "MISSING DATA"
GN_TOLERANCE_PP = 1.0  # points of error; the GN paper's own spread over 2..32 images is 0.2
# Loss threshold: this fraction of the training loss at the first logged step. A ratio of the
# task's own starting loss needs no tuning per task (cross-entropy starts near ln(classes));
# a half is a drop well beyond seed noise that a learning run reaches within a few epochs.
LOSS_FRACTION = 0.5
# Each run's loss is judged as the mean over its last few log windows, weighted by their steps:
# a single short window (the last of an epoch can be one step) is too noisy to count as
# "reached"; a trailing mean delays every norm alike by about one window.
LOSS_WINDOWS = 3
RECURRENT_MODELS = ("rnn",)  # model.name values for which the threshold claim is on by default


@dataclass(frozen=True)
class Claim:
    name: str
    verdict: str  # PASS, FAIL or MISSING DATA
    evidence: str  # the numbers behind the verdict, or what is missing
    rule: str  # when the claim passes, thresholds included
    context: str = ""  # the cell of the other swept keys, e.g. "model.name=resnet"


def _pct(x: float) -> str:
    return "n/a" if x is None or np.isnan(x) else f"{100 * x:.2f}"


def _mean_ci(row: pd.Series) -> str:
    ci = "CI n/a, 1 seed" if row["n"] < 2 else f"CI [{_pct(row['ci_low'])}, {_pct(row['ci_high'])}]"
    return f"{_pct(row['mean'])}% ({ci}, n={row['n']})"


def _has(runs: pd.DataFrame, metric: str) -> bool:
    return not runs.empty and {NORM_KEY, BATCH_KEY, metric} <= set(runs.columns)


def _by_batch(runs: pd.DataFrame, norm: str, metric: str) -> pd.DataFrame:
    if not _has(runs, metric):
        return pd.DataFrame(columns=[BATCH_KEY, "mean", "n"])
    rows = runs[runs[NORM_KEY] == norm]
    return aggregate(rows, metric, [BATCH_KEY]).dropna(subset=["mean"]).sort_values(BATCH_KEY)


def bn_degrades(runs: pd.DataFrame, metric: str = "test/error", bn: str = "batch") -> Claim:
    """BN's error at the smallest batch minus at the largest has a 95% CI above zero."""
    name = f"norm={bn} degrades at small batch"
    rule = (
        f"PASS if mean {metric} of norm={bn} at the smallest batch size minus at the largest "
        f"has a 95% bootstrap CI (unpaired, over seeds) entirely above 0; needs 2+ batch "
        f"sizes and 2+ seeds at both ends"
    )
    table = _by_batch(runs, bn, metric)
    if len(table) < 2:
        return Claim(name, MISSING, f"norm={bn} finished at {len(table)} batch size(s); need 2 or more", rule)
    small, large = table[BATCH_KEY].iloc[0], table[BATCH_KEY].iloc[-1]
    pick = runs[runs[NORM_KEY] == bn]
    d = difference_of_means(pick[pick[BATCH_KEY] == small][metric], pick[pick[BATCH_KEY] == large][metric])
    numbers = (
        f"batch={small}: {_mean_ci(table.iloc[0])}; batch={large}: {_mean_ci(table.iloc[-1])}; "
        f"difference {_pct(d['diff'])} points"
    )
    if np.isnan(d["ci_low"]):
        return Claim(name, MISSING, f"{numbers}; no CI: needs 2+ seeds at both ends", rule)
    verdict = PASS if d["ci_low"] > 0 else FAIL
    return Claim(name, verdict, f"{numbers}, CI [{_pct(d['ci_low'])}, {_pct(d['ci_high'])}]", rule)


def gn_flat(
    runs: pd.DataFrame, metric: str = "test/error", gn: str = "group", tolerance_pp: float = GN_TOLERANCE_PP
) -> Claim:
    """GN's mean error varies by at most ``tolerance_pp`` points across the batch sizes run."""
    name = f"norm={gn} is batch-size independent"
    rule = (
        f"PASS if the mean {metric} of norm={gn} varies by at most {tolerance_pp:.1f} points "
        f"(max minus min over batch sizes); needs 2+ batch sizes"
    )
    table = _by_batch(runs, gn, metric)
    if len(table) < 2:
        return Claim(name, MISSING, f"norm={gn} finished at {len(table)} batch size(s); need 2 or more", rule)
    spread = 100 * (table["mean"].max() - table["mean"].min())
    per_batch = "; ".join(f"batch={r[BATCH_KEY]}: {_mean_ci(r)}" for _, r in table.iterrows())
    verdict = PASS if spread <= tolerance_pp else FAIL
    one_seed = " (1 seed somewhere: spread includes seed noise)" if table["n"].min() < 2 else ""
    return Claim(name, verdict, f"spread {spread:.2f} points{one_seed}; {per_batch}", rule)


def ordering(runs: pd.DataFrame, metric: str = "test/error", expected: Sequence[str] | None = None) -> Claim:
    """At the largest batch size, the norms' mean errors are in the GroupNorm paper's order."""
    expected = list(expected or reference.paper_order_at_32())
    name = "ordering of norms at the largest batch"
    rule = (
        f"PASS if, at the largest batch size run, mean {metric} increases in the published order "
        f"{' < '.join(expected)} ({reference.GN_PAPER}, 32 images per GPU), over the norms run; "
        f"'~' marks neighbours whose 95% CIs overlap (order not resolved by these seeds)"
    )
    if not _has(runs, metric) or runs[BATCH_KEY].dropna().empty:
        return Claim(name, MISSING, f"no finished runs with {metric}", rule)
    largest = runs[BATCH_KEY].max()
    table = aggregate(runs[runs[BATCH_KEY] == largest], metric, [NORM_KEY]).dropna(subset=["mean"])
    published = table[NORM_KEY].map(base_norm).isin(expected)
    judged = table[published].sort_values("mean")
    if judged[NORM_KEY].map(base_norm).nunique() < 2:
        have = f"batch={largest}: {len(judged)} of {', '.join(expected)} finished; need 2"
        return Claim(name, MISSING, have, rule)
    # variants of one norm (group counts) each take that norm's place in the order
    ranks = [expected.index(base_norm(n)) for n in judged[NORM_KEY]]
    verdict = PASS if ranks == sorted(ranks) else FAIL
    return Claim(name, verdict, f"batch={largest}: {_chain(judged)}{_unjudged(table[~published])}", rule)


def _chain(table: pd.DataFrame) -> str:
    """ "a 14.1% (...) < b 15.0% (...)", with ~ where two neighbours' CIs overlap."""
    rows = [r for _, r in table.iterrows()]
    text = f"norm={rows[0][NORM_KEY]} {_mean_ci(rows[0])}"
    for prev, row in itertools.pairwise(rows):
        overlap = not (prev["ci_high"] < row["ci_low"])  # NaN (1 seed) counts as overlapping
        text += f" {'~' if overlap else '<'} norm={row[NORM_KEY]} {_mean_ci(row)}"
    return text


def _unjudged(other: pd.DataFrame) -> str:
    if other.empty:
        return ""
    listed = ", ".join(f"norm={r[NORM_KEY]} {_mean_ci(r)}" for _, r in other.iterrows())
    return f"; not in the published order: {listed}"


def _first_below(steps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """The first logged step whose value is below ``threshold``; NaN if none (never)."""
    below = np.flatnonzero(values < threshold)
    return float(steps[below[0]]) if len(below) else np.nan


def trailing_mean(curve: pd.DataFrame, windows: int) -> pd.Series:
    """One run's logged losses (step, value) -> value at each step = the mean loss over the
    last ``windows`` log windows, each weighted by its length in steps (a logged value is the
    mean over the steps since the previous one), i.e. the mean over those steps."""
    curve = curve.sort_values("step").drop_duplicates("step", keep="last")
    steps = curve["step"].to_numpy(float)
    weight = np.diff(steps, prepend=0.0)
    weight = np.where(weight > 0, weight, 1.0)
    total = pd.Series(weight * curve["value"].to_numpy(float)).rolling(max(1, windows), min_periods=1).sum()
    count = pd.Series(weight).rolling(max(1, windows), min_periods=1).sum()
    return pd.Series((total / count).to_numpy(), index=steps)


def _run_curves(curves: pd.DataFrame, runs: pd.DataFrame, windows: int) -> pd.DataFrame:
    """steps x runs (seed order) of the trailing means; only the steps every run logged."""
    runs = runs.sort_values(SEED_KEY) if SEED_KEY in runs else runs
    wide = pd.concat(
        [trailing_mean(curves[curves["run_id"] == r], windows) for r in runs["run_id"]],
        axis=1,
        keys=list(runs["run_id"]),
    )
    return wide.dropna()


def _steps(value: float) -> str:
    return "never" if np.isnan(value) else f"{value:.0f}"


def first_to_threshold(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    norm: str = "layer",
    threshold: float | None = None,
    fraction: float = LOSS_FRACTION,
    windows: int = LOSS_WINDOWS,
    split: str = "train",
    metric: str = "loss",
) -> Claim:
    """Ba et al. (2016): LN helps recurrent networks most. In one cell (one batch size, one
    setting of the other swept keys) the mean curve over seeds of each norm reaches the loss
    threshold in the fewest steps for ``norm`` (any of its variants)."""
    name = f"norm={norm} reaches the {split} {metric} threshold first"
    how = (
        f"threshold {threshold:g} (fixed)"
        if threshold is not None
        else f"threshold = {fraction:g} x the {split} {metric} at the first logged step, mean over all "
        f"runs of the cell"
    )
    smoothing = (
        f"each run's {metric} taken as its mean over the last {windows} log windows (step-weighted), then "
        if windows > 1
        else ""
    )
    rule = (
        f"{how}; per norm, {smoothing}the first logged step at which the mean {split} {metric} "
        f"curve over seeds is below the threshold (steps resolve to the log interval); PASS if "
        f"norm={norm} needs the fewest steps (equal steps: a tie, said so), FAIL if another norm "
        f"needs fewer or norm={norm} never gets there, MISSING DATA without norm={norm} runs or if no "
        f"norm reaches it; '~' marks neighbours whose 95% CIs over the per-seed step counts overlap "
        f"(not resolved by these seeds)"
    )
    sel = (
        curves[
            (curves["split"] == split) & (curves["metric"] == metric) & curves["run_id"].isin(runs["run_id"])
        ]
        if len(curves) and NORM_KEY in runs
        else curves[:0]
    )
    if sel.empty:
        return Claim(name, MISSING, f"no finished runs with a {split} {metric} curve", rule)
    if threshold is None:
        initial = float(sel.sort_values("step").groupby("run_id")["value"].first().mean())
        threshold = fraction * initial
        how = f"threshold {threshold:.4g} = {fraction:g} x initial {split} {metric} {initial:.4g}"
    else:
        how = f"threshold {threshold:g}"
    rows = []
    for label, cell in runs[runs["run_id"].isin(sel["run_id"])].groupby(NORM_KEY, sort=True):
        wide = _run_curves(sel, cell, windows)  # steps x seeds
        steps, mean = wide.index.to_numpy(), wide.mean(axis=1).to_numpy()
        mean_steps = _first_below(steps, mean, threshold)
        seeds = np.array([_first_below(steps, wide[r].to_numpy(), threshold) for r in wide.columns])
        # a seed that never gets there has no step count: no CI (counts as unresolved)
        ci = describe(seeds) if not np.isnan(seeds).any() else {"ci_low": np.nan, "ci_high": np.nan}
        lowest = float(mean.min()) if len(mean) else np.nan
        rows.append(
            {
                NORM_KEY: label,
                "steps": mean_steps,
                "ci_low": ci["ci_low"],
                "ci_high": ci["ci_high"],
                "seeds": seeds.tolist(),
                "lowest": lowest,
            }
        )
    table = pd.DataFrame(rows).sort_values("steps", na_position="last")
    numbers = f"{how}; steps to fall below: {_race(table)}"
    leaders = variants(table[NORM_KEY].tolist(), norm)
    if not leaders:
        return Claim(name, MISSING, f"no finished norm={norm} runs; {numbers}", rule)
    reached = table.dropna(subset=["steps"])
    if reached.empty:
        return Claim(name, MISSING, f"no norm reaches the threshold; {numbers}", rule)
    fastest = reached[reached["steps"] == reached["steps"].min()]
    if not fastest[NORM_KEY].isin(leaders).any():
        return Claim(name, FAIL, numbers + _unresolved(table, leaders), rule)
    others = fastest[~fastest[NORM_KEY].isin(leaders)][NORM_KEY].tolist()
    if others:
        return Claim(
            name, PASS, f"{numbers} (tied at equal steps with {', '.join(f'norm={o}' for o in others)})", rule
        )
    return Claim(name, PASS, numbers + _unresolved(table, leaders), rule)


def _unresolved(table: pd.DataFrame, leaders: Sequence[str]) -> str:
    """A note when the 95% CIs of the per-seed step counts of ``norm`` (its fastest variant)
    and of the fastest other norm overlap: the order of the mean curves is not resolved."""
    mine = table[table[NORM_KEY].isin(leaders)].iloc[0]
    other = table[~table[NORM_KEY].isin(leaders)].dropna(subset=["steps"])
    if other.empty or np.isnan(mine["steps"]):
        return ""
    rival = other.iloc[0]
    a, b = (mine, rival) if mine["steps"] <= rival["steps"] else (rival, mine)
    if a["ci_high"] < b["ci_low"]:
        return ""
    return (
        f" (not resolved by these seeds: the 95% CIs of norm={mine[NORM_KEY]} and "
        f"norm={rival[NORM_KEY]} overlap)"
    )


def _race(table: pd.DataFrame) -> str:
    """ "norm=layer 120 (seeds: 100, 140) < norm=batch 340 (...) ~ ...; norm=none never (...)"."""
    out, prev = "", None
    for _, row in table.iterrows():
        text = f"norm={row[NORM_KEY]} {_steps(row['steps'])}"
        if len(row["seeds"]) > 1 and not np.isnan(row["seeds"]).all():
            text += f" (seeds: {', '.join(_steps(v) for v in row['seeds'])})"
        if np.isnan(row["steps"]):
            text += f" (lowest mean {row['lowest']:.4g})"
        if prev is None:
            out = text
        elif np.isnan(row["steps"]):
            out += f"; {text}"
        elif row["steps"] == prev["steps"]:
            out += f" = {text}"
        else:  # NaN bounds (one seed, or a seed that never got there) count as overlapping
            out += f" {'<' if prev['ci_high'] < row['ci_low'] else '~'} {text}"
        prev = row
    return out


def wants_threshold_claim(runs: pd.DataFrame, switch: bool | None) -> bool:
    """``switch`` True or False decides; None (auto): only where the runs are of a recurrent
    model, the setting the claim is about (Ba et al. 2016), not every report."""
    if switch is not None:
        return switch
    return "model.name" in runs and bool(runs["model.name"].isin(RECURRENT_MODELS).any())


BATCH_SIZE_CLAIMS = "the batch-size claims (BN degrades, GN flat)"
ORDER_CLAIM = "the ordering of norms"


def out_of_scope(res: Results) -> dict[str, str]:
    """The claims this grid does not test ({BATCH_SIZE_CLAIMS: why, ORDER_CLAIM: why}), judged
    on every run of the grid whatever its status: runs that failed are still part of the design,
    and their claims say MISSING DATA."""
    runs = res.runs
    batches = sorted(runs[BATCH_KEY].dropna().unique()) if BATCH_KEY in runs else []
    norms = {base_norm(n) for n in runs[NORM_KEY].dropna()} if NORM_KEY in runs else set()
    order = reference.paper_order_at_32()
    skipped: dict[str, str] = {}
    if len(batches) == 1:
        skipped[BATCH_SIZE_CLAIMS] = f"the grid runs one batch size ({batches[0]})"
    if len(runs) and sum(n in norms for n in order) < 2:
        skipped[ORDER_CLAIM] = (
            f"the grid runs fewer than 2 of the published order's norms ({', '.join(order)})"
        )
    return skipped


def evaluate(
    res: Results,
    metric: str = "test/error",
    bn: str = "batch",
    gn: str = "group",
    gn_tolerance_pp: float = GN_TOLERANCE_PP,
    threshold_claim: bool | None = None,
    threshold_norm: str = "layer",
    loss_threshold: float | None = None,
    loss_fraction: float = LOSS_FRACTION,
    loss_windows: int = LOSS_WINDOWS,
) -> list[Claim]:
    """All claims, once per cell of the swept keys other than norm, batch size and seed; the
    loss-threshold claim once per batch size within that cell, where
    :func:`wants_threshold_claim` (recurrent models, or ``threshold_claim=True``)."""
    claims: list[Claim] = []
    skipped = out_of_scope(res)
    for context, runs in contexts(res.done, res.swept):
        labels = runs[NORM_KEY].dropna().tolist() if NORM_KEY in runs else []
        found = []
        if BATCH_SIZE_CLAIMS not in skipped:
            found += [
                *(bn_degrades(runs, metric, n) for n in variants(labels, bn) or [bn]),
                *(gn_flat(runs, metric, n, gn_tolerance_pp) for n in variants(labels, gn) or [gn]),
            ]
        if ORDER_CLAIM not in skipped:
            found.append(ordering(runs, metric))
        claims += [Claim(c.name, c.verdict, c.evidence, c.rule, context) for c in found]
        if not wants_threshold_claim(runs, threshold_claim):
            continue
        for values, cell in groups(runs, [BATCH_KEY] if BATCH_KEY in runs else []):
            where = ", ".join(x for x in (context, f"batch={values[0]}" if values else "") if x)
            c = first_to_threshold(
                cell, res.curves, threshold_norm, loss_threshold, loss_fraction, loss_windows
            )
            claims.append(Claim(c.name, c.verdict, c.evidence, c.rule, where))
    return claims
