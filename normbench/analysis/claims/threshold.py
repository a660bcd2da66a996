""" "first to the loss threshold" (Ba et al. 2016: LN helps recurrent networks most): each
seed's crossing step, then pairwise tests as for an ordering."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from normbench.analysis.claims.base import (
    INCONCLUSIVE,
    MISSING_PREFIX,
    PASS,
    Cell,
    Claim,
    ClaimSpec,
    Units,
    judge_each,
)
from normbench.analysis.claims.domains import RECURRENT
from normbench.analysis.claims.options import ClaimOptions, Option, positive
from normbench.analysis.claims.pairs import (
    pair_text,
    pairs_claim,
    pairs_power,
    pairs_verdict,
    resolve_pairs,
    weakest,
)
from normbench.analysis.claims.published import NO_PUBLISHED
from normbench.analysis.stats import BATCH_SIZE_KEY, NO_SPREAD_RULE, NORM_KEY, SEED_KEY, groups, variants

THRESHOLD = "norm={norm} reaches the {split} {metric} threshold first"
# Loss threshold: this fraction of the training loss at the first logged step. A ratio of the
# task's own starting loss needs no tuning per task (cross-entropy starts near ln(classes));
# a half is a drop well beyond seed noise that a learning run reaches within a few epochs.
LOSS_FRACTION = 0.5
# Each run's loss is judged as the mean over its last few log windows, weighted by their steps:
# a single short window (the last of an epoch can be one step) is too noisy to count as
# "reached"; a trailing mean delays every norm alike by about one window.
LOSS_WINDOWS = 3
STEPS = Units(1.0, "steps", 0.0, 0.0)  # crossing steps: counted, not scaled; no margin

# ---------------------------------------------------------------- first to the loss threshold


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


def crossings(
    runs: pd.DataFrame, curves: pd.DataFrame, threshold: float, windows: int
) -> tuple[dict[str, pd.Series], float]:
    """Per norm label, each seed's first step below ``threshold`` (NaN: never), and the step
    a "never" counts as in the tests: one log interval after the last step logged."""
    out, last, gap = {}, 0.0, 1.0
    for label, cell in runs.groupby(NORM_KEY, sort=True):
        wide = _run_curves(curves, cell, windows)  # steps x seeds
        steps = wide.index.to_numpy(float)
        if len(steps):
            last = max(last, steps[-1])
            gap = max(gap, steps[-1] - steps[-2]) if len(steps) > 1 else gap
        seeds = cell.set_index("run_id").loc[list(wide.columns), SEED_KEY].to_numpy()
        out[label] = pd.Series(
            [_first_below(steps, wide[r].to_numpy(), threshold) for r in wide.columns], index=seeds
        )
    return out, last + gap


def first_to_threshold(
    runs: pd.DataFrame, curves: pd.DataFrame, opts: ClaimOptions, split: str = "train", metric: str = "loss"
) -> Claim:
    """Ba et al. (2016): LN helps recurrent networks most. In one cell (one batch size, one
    setting of the other swept keys), ``opts.threshold_norm`` reaches the loss threshold in
    fewer steps than every other norm, judged on each seed's crossing step."""
    norm = opts.threshold_norm
    name = THRESHOLD.format(norm=norm, split=split, metric=metric)
    how = (
        f"threshold {opts.loss_threshold:g} (fixed)"
        if opts.loss_threshold is not None
        else f"threshold = {opts.loss_fraction:g} x the {split} {metric} at the first logged step, "
        f"mean over all runs of the cell"
    )
    smoothing = (
        f"each run's {metric} taken as its mean over the last {opts.loss_windows} log windows "
        "(step-weighted); "
        if opts.loss_windows > 1
        else ""
    )
    rule = (
        f"{how}; {smoothing}per seed, the first logged step below the threshold; per other norm, a "
        f"two-sided t-test of its steps minus norm={norm}'s (paired on the seeds both ran, Welch where "
        f"fewer than two are shared), Holm-corrected over the other norms at alpha {opts.alpha:g}: PASS "
        f"if norm={norm} is resolved faster than every other norm, FAIL if any is resolved faster than "
        f"it, else INCONCLUSIVE. A pair in which a seed never reaches the threshold is censored (its "
        f"step is unknown, only later than the last logged one) and not tested: the claim cannot PASS "
        f"then; {NO_SPREAD_RULE}. Domain: {RECURRENT.text}"
    )
    sel = (
        curves[
            (curves["split"] == split) & (curves["metric"] == metric) & curves["run_id"].isin(runs["run_id"])
        ]
        if len(curves) and NORM_KEY in runs
        else curves[:0]
    )
    if sel.empty:
        return Claim(
            name, INCONCLUSIVE, f"{MISSING_PREFIX} no finished runs with a {split} {metric} curve", rule
        )
    threshold = opts.loss_threshold
    if threshold is None:
        initial = float(sel.sort_values("step").groupby("run_id")["value"].first().mean())
        threshold = opts.loss_fraction * initial
        how = f"threshold {threshold:.4g} = {opts.loss_fraction:g} x initial {split} {metric} {initial:.4g}"
    else:
        how = f"threshold {threshold:g}"
    cell = runs[runs["run_id"].isin(sel["run_id"])]
    steps, censor = crossings(cell, sel, threshold, opts.loss_windows)
    listed = "; ".join(
        f"norm={lbl} seeds: {', '.join(_steps(v) for v in s.to_numpy())}" for lbl, s in steps.items()
    )
    numbers = f"{how}; steps to fall below: {listed}"
    leaders = [lbl for lbl in variants(cell, norm) if lbl in steps]
    if not leaders:
        return Claim(name, INCONCLUSIVE, f"{MISSING_PREFIX} no finished norm={norm} runs; {numbers}", rule)
    if all(s.isna().all() for s in steps.values()):
        return Claim(name, INCONCLUSIVE, f"no norm reaches the threshold; {numbers}", rule)
    filled = {lbl: s.fillna(censor) for lbl, s in steps.items()}
    leader = min(leaders, key=lambda lbl: filled[lbl].mean())  # the fastest variant of the norm
    others = [lbl for lbl in filled if lbl not in leaders]
    if not others:
        return Claim(name, INCONCLUSIVE, f"{MISSING_PREFIX} no other norm to race; {numbers}", rule)
    # A seed that never gets there has an unknown step, only "later than the last logged one":
    # a t-test on a made-up step would test the made-up number, so such a pair is not tested.
    censored = [o for o in others if steps[o].isna().any() or steps[leader].isna().any()]
    tested = [o for o in others if o not in censored]
    found = resolve_pairs(filled, [(leader, o) for o in tested], opts.alpha) if tested else []
    parts = [pair_text(p, 1.0, "steps") for p in found] + [
        f"norm={o} - norm={leader}: not tested (censored: a seed never reached the threshold)"
        for o in censored
    ]
    evidence = f"{numbers}; " + "; ".join(parts)
    verdict = pairs_verdict(found) if found else INCONCLUSIVE
    if censored and verdict == PASS:
        verdict = INCONCLUSIVE
    if not found:
        return Claim(name, verdict, evidence, rule)
    if verdict == INCONCLUSIVE and any(p.outcome == "unresolved" for p in found):
        gap = abs(weakest(found).d.diff)
        target = (
            f"an assumed true lead of {gap:.0f} steps (the least resolved pair's observed lead: post-hoc)"
        )
        evidence += "; " + pairs_power(found, gap, STEPS, target, opts)
    return pairs_claim(name, verdict, evidence, rule, found, STEPS, NO_PUBLISHED)


def judge(cell: Cell) -> list[Claim]:
    """One claim per batch size in the cell: a race is run at one batch size."""
    claims = []
    for values, runs in groups(cell.runs, [BATCH_SIZE_KEY] if BATCH_SIZE_KEY in cell.runs else []):
        (claim,) = judge_each(runs, lambda r: first_to_threshold(r, cell.res.curves, cell.opts), [()])
        claims.append(replace(claim, context=f"batch={values[0]}" if values else ""))
    return claims


CLAIM = ClaimSpec(
    title=lambda opts: THRESHOLD.format(norm=opts.threshold_norm, split="train", metric="loss"),
    judge=judge,
    domain=RECURRENT,
    switch="threshold_claim",
    options=(
        Option(
            "threshold_claim",
            None,
            "loss-threshold claim: auto = only for recurrent models (model.name rnn)",
            choices={"auto": None, "on": True, "off": False},
        ),
        Option(
            "threshold_norm",
            None,
            "norm the loss-threshold claim expects to get there first",
            norm=True,
            paper="LN",
        ),
        Option(
            "loss_threshold",
            None,
            "fixed training-loss threshold (default: --loss-fraction x first logged loss)",
            float,
            valid=lambda t: t is None or np.isfinite(t),
            works="a finite loss, or none for --loss-fraction",
        ),
        Option(
            "loss_fraction",
            LOSS_FRACTION,
            "threshold as a fraction of the training loss at the first logged step",
            float,
            valid=positive,
            works="a positive fraction, e.g. 0.5",
        ),
        Option(
            "loss_windows",
            LOSS_WINDOWS,
            "loss-threshold claim: each run's loss is its mean over this many log windows",
            int,
            valid=lambda w: w >= 1,
            works="a whole number of log windows >= 1",
        ),
    ),
)
