"""Claims from the papers, checked against the runs: PASS, FAIL or INCONCLUSIVE.

Every claim prints its rule, its numbers and its test (docs/design.md §6):

- "X degrades at small batch": a one-sided t-test of error(smallest batch) - error(largest).
- "X is batch-size independent": an equivalence test (TOST) of error(b) - error(largest b)
  against a stated margin, for every b.
- "BN degrades more than GN": the difference-in-differences of the two, per seed, one-sided.
- "ordering": each adjacent pair of the published order resolved as published, reversed, or
  not at all (two-sided t-tests, Holm-corrected over the pairs of the claim).
- "GN within the margin of BN" at the largest batch: the gap the paper reports (0.5 points),
  a non-inferiority test, beside the order.
- "first to the loss threshold": each seed's crossing step, then the same pairwise tests.
- "the linear-rule lr is within the margin of the best" (grids sweeping ``optim.lr``): a
  non-inferiority t-test of error(rule lr) - error(other lr) against the margin, per other lr.

Not resolved is INCONCLUSIVE, never FAIL, and gives a planning line: how many seeds would
resolve a stated effect at the observed spread (:func:`stats.seeds_needed`), not evidence.
Data that should be there and is not (a norm that failed at a batch size, one seed where a
spread is needed) is INCONCLUSIVE too, said so. A run that did not learn (summary.json
``learned: false``) counts as measured, on the side it supports (its own cell worse), and
the verdict names it and says whether it rests on it (:func:`counting_unlearned`). Each claim
says whether its interval excludes the published effect size scaled to the task. A claim outside its
domain (the ImageNet order judged on an MLP) is NOT APPLICABLE, and one the grid was never
designed to test (batch-size claims on one batch size) is not made: :func:`out_of_scope`.

Differences are paired on the seeds both cells ran (the others named and left out), Welch
where fewer than two are shared (see :func:`stats.difference`). Claims are checked separately
in every cell of the swept keys other than norm, batch size and seed (e.g. once per model). A
claim about a norm ("group") applies to each label of that norm ("group8",
"group(num_groups=2)"), each judged on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from normbench.analysis import reference
from normbench.analysis.load import Results
from normbench.analysis.stats import (
    ALPHA,
    BATCH_KEY,
    CONFIDENCE,
    LEARNED_KEY,
    NO_SPREAD_RULE,
    NORM_KEY,
    POWER,
    SEED_KEY,
    Difference,
    contexts,
    difference,
    difference_unit,
    groups,
    holm,
    is_proportion,
    natural_key,
    norm_names,
    seed_values,
    seeds_needed,
    variants,
)
from normbench.analysis.stats import scale as metric_scale
from normbench.errors import ConfigError

PASS, FAIL, INCONCLUSIVE, NOT_APPLICABLE = "PASS", "FAIL", "INCONCLUSIVE", "NOT APPLICABLE"
MARGIN_PP = 1.5  # points of error: what "flat" tolerates and the smallest degradation that counts
# Loss threshold: this fraction of the training loss at the first logged step. A ratio of the
# task's own starting loss needs no tuning per task (cross-entropy starts near ln(classes));
# a half is a drop well beyond seed noise that a learning run reaches within a few epochs.
LOSS_FRACTION = 0.5
# Each run's loss is judged as the mean over its last few log windows, weighted by their steps:
# a single short window (the last of an epoch can be one step) is too noisy to count as
# "reached"; a trailing mean delays every norm alike by about one window.
LOSS_WINDOWS = 3
# Domains (model.name values). The published order is ResNet-50 on ImageNet: convolutional
# image models only. Ba et al. (2016) show LN's lead on recurrent networks.
CONVOLUTIONAL_MODELS = ("resnet",)
RECURRENT_MODELS = ("rnn",)
ORDER_DOMAIN = "convolutional image models (model.name: " + ", ".join(CONVOLUTIONAL_MODELS) + ")"
THRESHOLD_DOMAIN = "recurrent models (model.name: " + ", ".join(RECURRENT_MODELS) + ")"
MISSING_PREFIX = "missing data:"
NOT_LEARNED_PREFIX = "runs that did not learn:"
DEGRADES = "norm={} degrades at small batch"
FLAT = "norm={} is batch-size independent"
DEGRADES_MORE = "norm={bn} degrades more than norm={gn} at small batch"
NEAR_BASELINE = "norm={gn} is within the margin of norm={bn} at the largest batch"
ORDERING = "ordering of norms at the largest batch"
THRESHOLD = "norm={norm} reaches the {split} {metric} threshold first"
LINEAR_RULE = "norm={norm} at batch={batch}: the linear-rule lr is within the margin of the best"
LR_KEY = "optim.lr"
SCALING_KEY = "optim.linear_scaling"


@dataclass(frozen=True)
class ClaimOptions:
    """Everything the claims can be told, passed whole (report CLI, Hydra callback, tests)."""

    bn: str = "batch"  # the norm that degrades at small batch (a label or a norm name)
    gn: str = "group"  # the norm that is batch-size independent
    margin_pp: float = MARGIN_PP  # equivalence margin (flat) and smallest degradation that counts
    alpha: float = ALPHA
    power: float = POWER  # the power the "seeds needed" line aims at
    # the loss-threshold claim: None = only for recurrent models, True/False = always/never; the
    # threshold is ``loss_threshold`` if set, else ``loss_fraction`` x the first logged loss
    threshold_claim: bool | None = None
    threshold_norm: str = "layer"
    loss_threshold: float | None = None
    loss_fraction: float = LOSS_FRACTION
    loss_windows: int = LOSS_WINDOWS

    def __post_init__(self) -> None:
        """An impossible option would decide verdicts silently (``alpha=2`` passes every test)."""
        for key, ok, works in (
            ("alpha", 0 < self.alpha < 1, "a level in (0, 1), e.g. 0.05"),
            ("power", 0 < self.power < 1, "a probability in (0, 1), e.g. 0.8"),
            ("margin_pp", 0 < self.margin_pp < math.inf, "a positive finite margin, e.g. 1.5"),
            ("loss_fraction", 0 < self.loss_fraction < math.inf, "a positive fraction, e.g. 0.5"),
            ("loss_windows", self.loss_windows >= 1, "a whole number of log windows >= 1"),
            (
                "loss_threshold",
                self.loss_threshold is None or math.isfinite(self.loss_threshold),
                "a finite loss, or none for --loss-fraction",
            ),
        ):
            if not ok:
                raise ConfigError(key, getattr(self, key), f"is out of range; use {works}")


@dataclass(frozen=True)
class Claim:
    name: str
    verdict: str  # PASS, FAIL, INCONCLUSIVE or NOT APPLICABLE
    evidence: str  # the numbers behind the verdict, or what is missing
    rule: str  # when the claim passes or fails, test and thresholds included
    context: str = ""  # the cell of the other swept keys, e.g. "model.name=resnet"
    effect: str = ""  # the deciding difference with its interval, for the claims table
    n: str = ""  # the seeds it rests on: "3 pairs", "3 vs 2 seeds"
    # the published effect scaled to this task, and whether the claim's interval excludes it
    published: str = ""
    # the deciding estimate, signed so that larger leans toward PASS (NaN: none): which side
    # a run that did not learn pushes the claim to (:func:`counting_unlearned`)
    lean: float = math.nan


def _num(x: float, scale: float = 100.0, signed: bool = False, decimals: int = 2) -> str:
    if x is None or np.isnan(x):
        return "n/a"
    return f"{x * scale:+.{decimals}f}" if signed else f"{x * scale:.{decimals}f}"


def _p(p: float) -> str:
    return "n/a" if np.isnan(p) else f"{p:.3g}"


def _effect(what: str, d: Difference, scale: float, unit: str, confidence: float = CONFIDENCE) -> str:
    """ "batch=2 - batch=32: +5.31 [+3.10, +7.52] points (95% CI)"; steps without decimals."""
    low, high = d.interval(confidence)
    k = 0 if unit == "steps" else 2
    return (
        f"{what}: {_num(d.diff, scale, True, k)} [{_num(low, scale, True, k)}, {_num(high, scale, True, k)}] "
        f"{unit} ({confidence:.0%} CI)"
    )


def lower_is_better(metric: str) -> str:
    """The claims are about errors (lower is better): ``test/accuracy`` is judged as
    ``test/error`` (1 - accuracy, a column beside every accuracy, see load.add_derived), so
    "degrades" and the published order keep their direction."""
    return metric[: -len("accuracy")] + "error" if metric.endswith("/accuracy") else metric


def _not_learned(rows: pd.DataFrame) -> str:
    """ "norm=batch batch=2 seed=1 (accuracy at chance)" for the runs that did not learn."""
    if LEARNED_KEY not in rows:
        return ""
    bad = rows[~rows[LEARNED_KEY].astype(bool)]
    notes = []
    for _, r in bad.iterrows():
        why = r.get("learned_note")
        notes.append(
            f"norm={r[NORM_KEY]} batch={r.get(BATCH_KEY)} seed={r.get(SEED_KEY)}"
            + (f" ({why})" if isinstance(why, str) and why else "")
        )
    return "; ".join(notes)


def _learned(runs: pd.DataFrame) -> pd.Series:
    return runs[LEARNED_KEY].fillna(True).astype(bool) if LEARNED_KEY in runs else pd.Series(True, runs.index)


def counting_unlearned(check: Callable[[pd.DataFrame], Claim], runs: pd.DataFrame) -> Claim:
    """``check(runs)`` with the runs that did not learn counted on the side they support.

    A run at chance is evidence that its own cell is worse (BN at batch 2 at chance is the
    strongest case of "BN degrades"), but it is a second mode, which a t interval over seeds
    does not model: the verdict comes from the runs that learned, and the runs that did not
    then confirm it (with them as measured the estimate leans further toward the verdict:
    ``Claim.lean``) or go against it (INCONCLUSIVE). Where they alone resolve a claim the runs
    that learned leave open, that verdict stands, said to rest on them. Each case is named in
    the evidence; their share per cell is the report's failure-rate table."""
    claim = check(runs)
    learned = _learned(runs)
    if learned.all() or claim.verdict == NOT_APPLICABLE:
        return claim
    used = [
        i
        for i in runs.index[~learned]
        if len(runs) == 1 or check(runs.drop(index=i)).evidence != claim.evidence
    ]
    if not used:
        return claim
    if learned.sum() == 0:  # no run learned: nothing to read the claim from (a claim may need a run)
        evidence = f"{NOT_LEARNED_PREFIX} {_not_learned(runs)} (every run: no verdict)"
        evidence += f"; as measured: {claim.evidence}"
        return replace(claim, verdict=INCONCLUSIVE, evidence=evidence)
    clean = check(runs.drop(index=used))
    verdict, how = _unlearned_verdict(clean, claim)
    evidence = (
        f"{NOT_LEARNED_PREFIX} {_not_learned(runs.loc[used])} ({how}); runs that learned: {clean.evidence}; "
        f"with those runs as measured: {claim.verdict}"
    )
    return replace(clean, verdict=verdict, evidence=evidence)


def _unlearned_verdict(clean: Claim, measured: Claim) -> tuple[str, str]:
    """(verdict, why) from the claim on the runs that learned and on all runs as measured."""
    if clean.verdict == measured.verdict:
        return clean.verdict, f"{clean.verdict} with or without them"
    if clean.verdict == INCONCLUSIVE:
        return measured.verdict, "counted as measured they resolve it: the verdict rests on them"
    toward = measured.lean - clean.lean
    supports = toward >= 0 if clean.verdict == PASS else toward <= 0
    if supports:
        return clean.verdict, f"they lean toward {clean.verdict}: counted on its side"
    return INCONCLUSIVE, f"they go against {clean.verdict}: not resolved with them"


def _power_line(
    needed: int | None, sd: float, target: str, scale: float, unit: str, opts: ClaimOptions
) -> str:
    """One line for planning the next run, not evidence: how many seeds would resolve
    ``target`` (a stated effect size) if one seed's difference spread as it did here."""
    if sd == 0:
        return "planning: the difference is the same in every seed: no spread to plan more seeds from"
    if not sd > 0:
        return "planning: needs 2+ seeds per cell to estimate how many would resolve it"
    spread = f"{_num(sd, scale, decimals=0 if unit == 'steps' else 2)} {unit}"
    head = (
        f"planning, not evidence: to resolve {target} with one seed's difference spread as here (SD {spread})"
    )
    if needed is None:
        return f"{head}, more than 1000 seeds per cell would be needed for {opts.power:.0%} power"
    return f"{head}, about {needed} seeds per cell give {opts.power:.0%} power (noncentral t)"


# ---------------------------------------------------------------- published effect sizes

NO_PUBLISHED = "none published"


def against_published(expected: float, how: str, d: Difference, level: float, scale: float, unit: str) -> str:
    """ "+4.31 points (GN paper: x1.47 from batch 32 to 2, at this task's 9.18%): excluded by
    the 90% CI": the published effect scaled to this task, and whether the interval of ``d``
    leaves it out (a claim that resolves nothing can still rule out the published size)."""
    low, high = d.interval(level)
    text = f"{_num(expected, scale, True)} {unit} ({how})"
    if np.isnan(low) or np.isnan(high):
        return f"{text}: no interval here to compare"
    inside = low <= expected <= high
    return f"{text}: {'inside' if inside else 'excluded by'} the {level:.0%} CI"


def _relative(table: dict, x: object, y: object) -> float | None:
    """table[x] / table[y] - 1 where the paper has both keys (batch sizes as ints), else None."""
    try:
        x, y = int(x), int(y)
    except (TypeError, ValueError):
        return None
    return table[x] / table[y] - 1 if x in table and y in table else None


def published_degradation(
    runs: pd.DataFrame, label: str, small: object, large: object, d: Difference, metric: str, level: float
) -> str:
    """The GN paper's relative change of ``label``'s norm from batch ``large`` to ``small``
    (Figure 1), applied to this task's error at ``large``, against the interval of ``d``."""
    table = reference.GN_PAPER_ERROR_VS_BATCH.get(norm_names(runs).get(label, label))
    rise = _relative(table, small, large) if table and is_proportion(metric) else None
    if rise is None:
        return f"{NO_PUBLISHED} for this norm, metric and pair of batch sizes"
    how = f"GN paper x{1 + rise:.2f} from batch {large} to {small}, at this task's {_num(d.b.mean())}%"
    return against_published(d.b.mean() * rise, how, d, level, 100.0, "points")


def published_gap(
    runs: pd.DataFrame, first: str, second: str, d: Difference, metric: str, level: float
) -> str:
    """The GN paper's Table 1 gap between two norms at 32 images per GPU, as a relative change
    of ``first``'s error, applied to this task's error of ``first`` (``d`` = second - first)."""
    names = norm_names(runs)
    table = reference.GN_PAPER_ERROR_AT_32
    one, two = names.get(first, first), names.get(second, second)
    if not is_proportion(metric) or one not in table or two not in table:
        return f"{NO_PUBLISHED} for this pair and metric"
    rise = table[two] / table[one] - 1
    how = f"GN paper Table 1: {table[two]:g} vs {table[one]:g}, x{1 + rise:.3f}"
    how += f" at this task's {_num(d.b.mean())}%"
    return against_published(d.b.mean() * rise, how, d, level, 100.0, "points")


# ---------------------------------------------------------------- batch-size claims


def _by_batch(runs: pd.DataFrame, label: str, metric: str) -> dict[object, pd.DataFrame]:
    if metric not in runs:  # no run measured it (every run diverged): missing data, said so
        return {}
    rows = runs[(runs[NORM_KEY] == label) & pd.to_numeric(runs[metric], errors="coerce").notna()]
    return {b: g for b, g in sorted(rows.groupby(BATCH_KEY), key=lambda kv: natural_key(kv[0]))}


def degrades(runs: pd.DataFrame, metric: str, bn: str, opts: ClaimOptions) -> Claim:
    """``bn``'s error at the smallest batch minus at the largest is above 0 (one-sided t)."""
    scale, unit = metric_scale(metric), difference_unit(metric)
    margin, level = opts.margin_pp / scale, 1 - 2 * opts.alpha
    name = DEGRADES.format(bn)
    rule = (
        f"one-sided t-tests at alpha {opts.alpha:g} (paired on the seeds both batch sizes ran, Welch "
        f"where fewer than two are shared) of {metric}(smallest batch) - {metric}(largest batch): PASS "
        f"if it is resolved above 0 (the {level:.0%} CI's lower end above 0); FAIL if it is resolved below "
        f"the margin {opts.margin_pp:g} {unit} (the {level:.0%} CI's upper end below it: no degradation "
        f"as large as the margin); else INCONCLUSIVE; {NO_SPREAD_RULE}. Domain: any model whose norm "
        f"uses batch statistics"
    )
    cells = _by_batch(runs, bn, metric)
    if len(cells) < 2:
        return Claim(
            name, INCONCLUSIVE, f"{MISSING_PREFIX} norm={bn} finished at {len(cells)} batch size(s)", rule
        )
    (small, a), (large, b) = list(cells.items())[0], list(cells.items())[-1]
    d = difference(seed_values(a, metric), seed_values(b, metric))
    where = f"batch={small} - batch={large}"
    effect = _effect(where, d, scale, unit, level)
    numbers = (
        f"{metric} batch={small}: {_num(d.a.mean(), scale)}, batch={large}: {_num(d.b.mean(), scale)}; "
        f"{effect}, {d.method} ({d.n_text})"
    )
    published = published_degradation(runs, bn, small, large, d, metric, level)
    if not d.testable:
        missing = f"{MISSING_PREFIX} {numbers}; needs 2+ seeds at both ends"
        return Claim(name, INCONCLUSIVE, missing, rule, effect=effect, n=d.n_text, published=published)
    p_above = d.p_value("greater")
    p_below = d.p_value("less", margin)
    numbers += f", one-sided p (above 0) = {_p(p_above)}, one-sided p (below the margin) = {_p(p_below)}"
    if p_above < opts.alpha:
        verdict = PASS
    elif p_below < opts.alpha:
        verdict = FAIL
    else:
        verdict = INCONCLUSIVE
        needed = d.seeds_needed(margin, opts.alpha, opts.power)
        target = f"an assumed true degradation of {opts.margin_pp:g} {unit} (the margin)"
        numbers += "; " + _power_line(needed, d.sd, target, scale, unit, opts)
    return Claim(name, verdict, numbers, rule, effect=effect, n=d.n_text, published=published, lean=d.diff)


def flat(runs: pd.DataFrame, metric: str, gn: str, opts: ClaimOptions) -> Claim:
    """TOST: every error(b) - error(largest b) lies within +-margin."""
    scale, unit = metric_scale(metric), difference_unit(metric)
    margin = opts.margin_pp / scale
    level = 1 - 2 * opts.alpha  # the interval TOST at alpha decides on
    name = FLAT.format(gn)
    rule = (
        f"equivalence test (TOST at alpha {opts.alpha:g}, i.e. the {level:.0%} CI) of {metric}(b) - "
        f"{metric}(largest b) for every other batch size b, margin +-{opts.margin_pp:g} {unit}, paired on "
        f"the seeds both ran (Welch where fewer than two are shared): PASS if every difference is inside "
        f"the margin; "
        f"FAIL if one is resolved outside it (one-sided test beyond the margin, Holm-corrected over the "
        f"batch sizes); else INCONCLUSIVE; {NO_SPREAD_RULE}. Domain: any model"
    )
    cells = _by_batch(runs, gn, metric)
    if len(cells) < 2:
        return Claim(
            name, INCONCLUSIVE, f"{MISSING_PREFIX} norm={gn} finished at {len(cells)} batch size(s)", rule
        )
    large, base = list(cells.items())[-1]
    found: list[tuple[object, Difference]] = [
        (b, difference(seed_values(rows, metric), seed_values(base, metric)))
        for b, rows in list(cells.items())[:-1]
    ]
    untestable = [f"batch={b}" for b, d in found if not d.testable]
    inside = [max(d.p_value("less", margin), d.p_value("greater", -margin)) for _, d in found]
    outside = holm([min(d.p_value("greater", margin), d.p_value("less", -margin)) for _, d in found])
    parts = [
        f"{_effect(f'batch={b} - batch={large}', d, scale, unit, level)}, {d.method} ({d.n_text}), "
        f"TOST p = {_p(p_in)}, beyond-margin p (Holm) = {_p(p_out)}"
        for (b, d), p_in, p_out in zip(found, inside, outside, strict=True)
    ]
    evidence = "; ".join(parts)
    worst_b, worst = max(found, key=lambda bd: abs(bd[1].diff) if not np.isnan(bd[1].diff) else -1)
    effect = _effect(f"batch={worst_b} - batch={large}", worst, scale, unit, level)
    n_text = min((d.n_text for _, d in found), key=lambda t: int(t.split()[0]))
    published = "; ".join(
        f"batch={b}: {published_degradation(runs, gn, b, large, d, metric, level)}" for b, d in found
    )
    if any(p < opts.alpha for p in outside):
        verdict = FAIL
    elif not untestable and all(p < opts.alpha for p in inside):
        verdict = PASS
    else:
        verdict = INCONCLUSIVE
        if untestable:
            evidence = f"{MISSING_PREFIX} fewer than 2 seeds at {', '.join(untestable)}; {evidence}"
        sd = max((d.sd for _, d in found if d.testable), default=np.nan)
        paired = all(d.paired for _, d in found)
        needed = seeds_needed(sd, margin, paired=paired, alpha=opts.alpha, power=opts.power, equivalence=True)
        target = (
            f"equivalence within +-{opts.margin_pp:g} {unit} at an assumed true difference of 0 "
            f"(TOST power >= 2P - 1)"
        )
        evidence += "; " + _power_line(needed, sd, target, scale, unit, opts)
    lean = -max((abs(d.diff) for _, d in found), default=math.nan)
    return Claim(name, verdict, evidence, rule, effect=effect, n=n_text, published=published, lean=lean)


def _change(runs: pd.DataFrame, label: str, metric: str, small: object, large: object) -> pd.Series:
    """Per seed, ``label``'s metric at batch ``small`` minus at ``large`` (seeds run at both)."""
    rows = runs[runs[NORM_KEY] == label]
    at = {b: seed_values(rows[rows[BATCH_KEY] == b], metric) for b in (small, large)}
    a, b = (pd.to_numeric(v, errors="coerce").groupby(level=0).mean() for v in at.values())
    return (a - b).dropna()


def degrades_more(runs: pd.DataFrame, metric: str, bn: str, gn: str, opts: ClaimOptions) -> Claim:
    """The difference-in-differences: ``bn``'s change from the largest to the smallest batch
    minus ``gn``'s, per seed (the seeds all four cells ran), one-sided above 0."""
    scale, unit = metric_scale(metric), difference_unit(metric)
    margin, level = opts.margin_pp / scale, 1 - 2 * opts.alpha
    name = DEGRADES_MORE.format(bn=bn, gn=gn)
    rule = (
        f"per seed, the difference-in-differences [{metric}(smallest) - {metric}(largest)] of norm={bn} "
        f"minus the same of norm={gn}, at norm={bn}'s smallest and largest batch sizes; one-sided t-tests "
        f"at alpha {opts.alpha:g} (paired on the seeds both norms ran at both sizes, Welch otherwise): PASS "
        f"if it is resolved above 0; FAIL if resolved below the margin {opts.margin_pp:g} {unit}; else "
        f"INCONCLUSIVE; {NO_SPREAD_RULE}. Domain: any model"
    )
    sizes = list(_by_batch(runs, bn, metric))
    gn_sizes = set(_by_batch(runs, gn, metric))
    if len(sizes) < 2 or not {sizes[0], sizes[-1]} <= gn_sizes:
        why = f"{MISSING_PREFIX} norm={bn} and norm={gn} did not both finish at two shared batch sizes"
        return Claim(name, INCONCLUSIVE, why, rule)
    small, large = sizes[0], sizes[-1]
    d = difference(_change(runs, bn, metric, small, large), _change(runs, gn, metric, small, large))
    effect = _effect(f"(batch={small} - batch={large}) of {bn} minus of {gn}", d, scale, unit, level)
    p_above, p_below = d.p_value("greater"), d.p_value("less", margin)
    evidence = (
        f"{effect}, {d.method} ({d.n_text}), one-sided p (above 0) = {_p(p_above)}, "
        f"one-sided p (below the margin) = {_p(p_below)}"
    )
    verdict = PASS if p_above < opts.alpha else FAIL if p_below < opts.alpha else INCONCLUSIVE
    if verdict == INCONCLUSIVE:
        needed = d.seeds_needed(margin, opts.alpha, opts.power)
        target = f"an assumed true difference-in-differences of {opts.margin_pp:g} {unit} (the margin)"
        evidence += "; " + _power_line(needed, d.sd, target, scale, unit, opts)
    return Claim(
        name,
        verdict,
        evidence,
        rule,
        effect=effect,
        n=d.n_text,
        published=_published_did(runs, bn, gn, small, large, d, metric, level),
        lean=d.diff,
    )


def _published_did(
    runs: pd.DataFrame,
    bn: str,
    gn: str,
    small: object,
    large: object,
    d: Difference,
    metric: str,
    level: float,
) -> str:
    """The GN paper's BN and GN relative changes between the two batch sizes, each applied to
    this task's error of that norm at the larger batch, their difference against ``d``."""
    names = norm_names(runs)
    tables = [reference.GN_PAPER_ERROR_VS_BATCH.get(names.get(x, x)) for x in (bn, gn)]
    rises = [_relative(t, small, large) if t and is_proportion(metric) else None for t in tables]
    if None in rises:
        return f"{NO_PUBLISHED} for these norms, metric and pair of batch sizes"
    base = [
        float(seed_values(runs[(runs[NORM_KEY] == x) & (runs[BATCH_KEY] == large)], metric).mean())
        for x in (bn, gn)
    ]
    expected = base[0] * rises[0] - base[1] * rises[1]
    how = f"GN paper: BN x{1 + rises[0]:.2f}, GN x{1 + rises[1]:.2f} from batch {large} to {small}"
    how += ", at this task's errors"
    return against_published(expected, how, d, level, 100.0, "points")


def near_baseline(runs: pd.DataFrame, metric: str, gn: str, bn: str, opts: ClaimOptions) -> Claim:
    """The gap the GN paper reports at 32 images per GPU (GN 0.5 points above BN): at the
    largest batch, ``gn`` - ``bn`` is below the margin (non-inferiority), not only its sign."""
    scale, unit = metric_scale(metric), difference_unit(metric)
    margin, level = opts.margin_pp / scale, 1 - 2 * opts.alpha
    name = NEAR_BASELINE.format(gn=gn, bn=bn)
    rule = (
        f"at the largest batch size, a non-inferiority t-test of {metric}(norm={gn}) - "
        f"{metric}(norm={bn}) < {opts.margin_pp:g} {unit} (one-sided at alpha {opts.alpha:g}, the "
        f"{level:.0%} CI's upper end; paired on the seeds both ran, Welch otherwise): PASS if resolved "
        f"below the margin (as the paper's 0.5-point gap is); FAIL if resolved above it; else "
        f"INCONCLUSIVE; {NO_SPREAD_RULE}. Domain: {ORDER_DOMAIN}"
    )
    batches = runs[BATCH_KEY].dropna().unique() if BATCH_KEY in runs and metric in runs else []
    largest = max(batches, key=natural_key) if len(batches) else None
    at = runs[runs[BATCH_KEY] == largest] if largest is not None else runs[:0]
    a, b = (seed_values(at[at[NORM_KEY] == x], metric) for x in (gn, bn))
    d = difference(a, b)
    if not d.testable:
        return Claim(
            name, INCONCLUSIVE, f"{MISSING_PREFIX} fewer than 2 seeds of each at batch={largest}", rule
        )
    effect = _effect(f"norm={gn} - norm={bn} at batch={largest}", d, scale, unit, level)
    p_below, p_above = d.p_value("less", margin), d.p_value("greater", margin)
    evidence = (
        f"{effect}, {d.method} ({d.n_text}), within-margin p = {_p(p_below)}, beyond-margin p = {_p(p_above)}"
    )
    verdict = PASS if p_below < opts.alpha else FAIL if p_above < opts.alpha else INCONCLUSIVE
    if verdict == INCONCLUSIVE:
        needed = d.seeds_needed(margin, opts.alpha, opts.power)
        target = f"non-inferiority within {opts.margin_pp:g} {unit} at an assumed true gap of 0"
        evidence += "; " + _power_line(needed, d.sd, target, scale, unit, opts)
    return Claim(
        name,
        verdict,
        evidence,
        rule,
        effect=effect,
        n=d.n_text,
        published=published_gap(at, bn, gn, d, metric, level),
        lean=-d.diff,
    )


# ---------------------------------------------------------------- orderings


@dataclass(frozen=True)
class Pair:
    first: str  # expected lower (published: lower error; threshold: fewer steps)
    second: str
    d: Difference  # second - first: positive = as expected
    p: float  # two-sided
    p_holm: float
    alpha: float

    @property
    def outcome(self) -> str:
        if not self.p_holm < self.alpha:
            return "unresolved"
        return "resolved as published" if self.d.diff > 0 else "resolved reversed"


def resolve_pairs(values: dict[str, pd.Series], pairs: Sequence[tuple[str, str]], alpha: float) -> list[Pair]:
    """Two-sided t-test per (first, second) pair of ``values`` (seed-indexed), Holm over all."""
    diffs = [difference(values[b], values[a]) for a, b in pairs]
    raw = [d.p_value("two-sided") for d in diffs]
    adjusted = holm(raw)
    return [Pair(a, b, d, p, q, alpha) for (a, b), d, p, q in zip(pairs, diffs, raw, adjusted, strict=True)]


def _pairs_verdict(pairs: Sequence[Pair]) -> str:
    outcomes = [p.outcome for p in pairs]
    if any(o == "resolved reversed" for o in outcomes):
        return FAIL
    if all(o == "resolved as published" for o in outcomes):
        return PASS
    return INCONCLUSIVE


def _pair_text(p: Pair, scale: float, unit: str) -> str:
    return (
        f"{_effect(f'norm={p.second} - norm={p.first}', p.d, scale, unit, 1 - p.alpha)}, {p.d.method} "
        f"({p.d.n_text}), "
        f"p = {_p(p.p)}, Holm {_p(p.p_holm)}: {p.outcome}"
    )


def _weakest(pairs: Sequence[Pair]) -> Pair:
    """The pair that decides the verdict: a reversed one, else the least resolved."""
    reversed_ = [p for p in pairs if p.outcome == "resolved reversed"]
    return reversed_[0] if reversed_ else max(pairs, key=lambda p: p.p_holm)


def _pairs_power(
    pairs: Sequence[Pair], margin: float, scale: float, unit: str, what: str, opts: ClaimOptions
) -> str:
    """Seeds for the unresolved pairs: two-sided at alpha / (number of pairs), Holm's first step."""
    open_ = [p for p in pairs if p.outcome == "unresolved"]
    sd = max((p.d.sd for p in open_ if p.d.testable), default=np.nan)
    paired = all(p.d.paired for p in open_)
    needed = seeds_needed(sd, margin, paired=paired, alpha=opts.alpha / 2 / len(pairs), power=opts.power)
    return _power_line(needed, sd, what, scale, unit, opts)


def ordering(
    runs: pd.DataFrame, metric: str, opts: ClaimOptions, expected: Sequence[str] | None = None
) -> Claim:
    """At the largest batch size, adjacent norms of the published order (GN paper Table 1,
    32 images per GPU) are resolved in that order."""
    expected = list(expected or reference.paper_order_at_32())
    scale, unit = metric_scale(metric), difference_unit(metric)
    name = ORDERING
    rule = (
        f"at the largest batch size run, for each adjacent pair of the published order "
        f"{' < '.join(expected)} ({reference.GN_PAPER}, 32 images per GPU) among the norms run: "
        f"two-sided t-test of the {metric} difference (paired by seed where the seeds pair, Welch "
        f"otherwise), Holm-corrected over the pairs at alpha {opts.alpha:g}; PASS if every pair is "
        f"resolved as published, FAIL if any is resolved reversed, else INCONCLUSIVE; {NO_SPREAD_RULE}. "
        f"Domain: {ORDER_DOMAIN}"
    )
    batches = runs[BATCH_KEY].dropna().unique() if BATCH_KEY in runs else []
    largest = max(batches, key=natural_key) if len(batches) else None  # "32" above "8" as text too
    if largest is None or metric not in runs:
        return Claim(name, INCONCLUSIVE, f"{MISSING_PREFIX} no finished runs with {metric}", rule)
    at = runs[(runs[BATCH_KEY] == largest) & pd.to_numeric(runs[metric], errors="coerce").notna()]
    names = norm_names(at)
    ranks: dict[int, list[str]] = {}
    for label in sorted(names):
        if names[label] in expected:
            ranks.setdefault(expected.index(names[label]), []).append(label)
    order = [ranks[r] for r in sorted(ranks)]
    if len(order) < 2:
        return Claim(
            name,
            INCONCLUSIVE,
            f"{MISSING_PREFIX} batch={largest}: fewer than 2 of the published norms finished",
            rule,
        )
    pairs = [(a, b) for lower, upper in zip(order, order[1:]) for a in lower for b in upper]
    values = {label: seed_values(at[at[NORM_KEY] == label], metric) for label in names}
    found = resolve_pairs(values, pairs, opts.alpha)
    means = ", ".join(f"norm={lbl} {_num(values[lbl].mean(), scale)}" for grp in order for lbl in grp)
    evidence = f"batch={largest}: means {means}; " + "; ".join(_pair_text(p, scale, unit) for p in found)
    verdict = _pairs_verdict(found)
    if verdict == INCONCLUSIVE:
        margin = opts.margin_pp / scale
        target = f"a difference of {opts.margin_pp:g} {unit} per pair (alpha / {len(found)} pairs, two-sided)"
        evidence += "; " + _pairs_power(found, margin, scale, unit, target, opts)
    weakest = _weakest(found)
    level = 1 - opts.alpha  # the interval of a two-sided test at alpha
    published = "; ".join(
        f"norm={p.second} - norm={p.first}: {published_gap(at, p.first, p.second, p.d, metric, level)}"
        for p in found
    )
    return Claim(
        name,
        verdict,
        evidence,
        rule,
        effect=_effect(
            f"norm={weakest.second} - norm={weakest.first}", weakest.d, scale, unit, 1 - opts.alpha
        ),
        n=weakest.d.n_text,
        published=published,
        lean=min(p.d.diff for p in found),
    )


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
        f"then; {NO_SPREAD_RULE}. Domain: {THRESHOLD_DOMAIN}"
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
    parts = [_pair_text(p, 1.0, "steps") for p in found] + [
        f"norm={o} - norm={leader}: not tested (censored: a seed never reached the threshold)"
        for o in censored
    ]
    evidence = f"{numbers}; " + "; ".join(parts)
    verdict = _pairs_verdict(found) if found else INCONCLUSIVE
    if censored and verdict == PASS:
        verdict = INCONCLUSIVE
    if not found:
        return Claim(name, verdict, evidence, rule)
    weakest = _weakest(found)
    if verdict == INCONCLUSIVE and any(p.outcome == "unresolved" for p in found):
        gap = abs(weakest.d.diff)
        target = (
            f"an assumed true lead of {gap:.0f} steps (the least resolved pair's observed lead: post-hoc)"
        )
        evidence += "; " + _pairs_power(found, gap, 1.0, "steps", target, opts)
    return Claim(
        name,
        verdict,
        evidence,
        rule,
        effect=_effect(
            f"norm={weakest.second} - norm={weakest.first}", weakest.d, 1.0, "steps", 1 - opts.alpha
        ),
        n=weakest.d.n_text,
        published=NO_PUBLISHED,
        lean=min(p.d.diff for p in found),
    )


# ---------------------------------------------------------------- the linear lr rule


def rule_lr(values: Sequence[float]) -> float | None:
    """The linear rule's lr among the swept ``optim.lr`` values: the middle one of an odd number
    (3+) of them, as a sweep over x0.5, x1, x2 of it lays them out; None otherwise."""
    values = sorted(set(values))
    return values[len(values) // 2] if len(values) >= 3 and len(values) % 2 else None


def linear_rule(cell: pd.DataFrame, metric: str, lr: float, opts: ClaimOptions) -> Claim:
    """Non-inferiority: the error at the linear rule's lr minus at each other lr is below the
    margin (one-sided t-tests; Holm only on the FAIL side, see below)."""
    scale, unit = metric_scale(metric), difference_unit(metric)
    margin, level = opts.margin_pp / scale, 1 - 2 * opts.alpha
    norm, batch = cell[NORM_KEY].iloc[0], cell[BATCH_KEY].iloc[0]
    name = LINEAR_RULE.format(norm=norm, batch=batch)
    rule = (
        f"the linear rule's lr is the middle of the swept {LR_KEY} values (with linear_scaling on, "
        f"{LR_KEY} is the rate at batch 32 and each run uses it x batch/32); for each other lr, a "
        f"non-inferiority t-test of {metric}(rule lr) - {metric}(other lr) < {opts.margin_pp:g} {unit} "
        f"(one-sided at alpha {opts.alpha:g}, i.e. the {level:.0%} CI's upper end, paired on the seeds "
        f"both ran, Welch where fewer than two are shared): PASS if every one is resolved below the "
        f"margin (the rule's lr is within the margin of the best; every test must reject, so none is "
        f"corrected); FAIL if one is resolved above it (one-sided, Holm over the other lrs); else "
        f"INCONCLUSIVE; {NO_SPREAD_RULE}. Domain: any model"
    )
    by_lr = {float(v): seed_values(g, metric) for v, g in cell.groupby(LR_KEY)}
    others = [v for v in sorted(by_lr) if v != lr]
    if lr not in by_lr or not others:
        what = f"{LR_KEY}={lr:g}" if lr not in by_lr else "another lr"
        return Claim(name, INCONCLUSIVE, f"{MISSING_PREFIX} no finished run at {what}", rule)
    found = [(v, difference(by_lr[lr], by_lr[v])) for v in others]
    # PASS needs every comparison below the margin (an intersection-union test): each at alpha
    # already holds the level, so a correction would only cost power. FAIL needs any one: Holm.
    below = [d.p_value("less", margin) for _, d in found]
    above = holm([d.p_value("greater", margin) for _, d in found])
    means = ", ".join(f"lr={v:g} {_num(by_lr[v].mean(), scale)}" for v in sorted(by_lr))
    best = min(by_lr, key=lambda v: by_lr[v].mean())
    parts = [
        f"{_effect(f'lr={lr:g} - lr={v:g}', d, scale, unit, level)}, {d.method} ({d.n_text}), "
        f"within-margin p = {_p(p_in)}, beyond-margin p (Holm) = {_p(p_out)}"
        for (v, d), p_in, p_out in zip(found, below, above, strict=True)
    ]
    evidence = f"{metric} means: {means} (best lr={best:g}); " + "; ".join(parts)
    v, worst = max(found, key=lambda vd: vd[1].diff if not np.isnan(vd[1].diff) else -np.inf)
    if any(p < opts.alpha for p in above):
        verdict = FAIL
    elif all(d.testable for _, d in found) and all(p < opts.alpha for p in below):
        verdict = PASS
    else:
        verdict = INCONCLUSIVE
        if not all(d.testable for _, d in found):
            evidence = f"{MISSING_PREFIX} fewer than 2 seeds at some lr; {evidence}"
        sd = max((d.sd for _, d in found if d.testable), default=np.nan)
        paired = all(d.paired for _, d in found)
        needed = seeds_needed(sd, margin, paired=paired, alpha=opts.alpha, power=opts.power)
        target = f"non-inferiority within {opts.margin_pp:g} {unit} at an assumed true difference of 0"
        evidence += "; " + _power_line(needed, sd, target, scale, unit, opts)
    claim = Claim(
        name,
        verdict,
        evidence,
        rule,
        effect=_effect(f"lr={lr:g} - lr={v:g}", worst, scale, unit, level),
        n=min((d.n_text for _, d in found), key=lambda t: int(t.split()[0])),
        published=NO_PUBLISHED,
        lean=-worst.diff,
    )
    return claim


def linear_rule_claims(res: Results, metric: str, opts: ClaimOptions) -> list[Claim]:
    """One :func:`linear_rule` claim per norm and batch size (and cell of the other swept keys)
    of a grid that sweeps ``optim.lr``; none otherwise."""
    if LR_KEY not in res.swept or not len(res.done):
        return []
    lr = rule_lr(pd.to_numeric(res.runs[LR_KEY], errors="coerce").dropna().tolist())
    why = None
    if lr is None:
        why = f"needs an odd number (3 or more) of swept {LR_KEY} values, the middle one the rule's"
    elif SCALING_KEY in res.runs and res.runs[SCALING_KEY].eq(False).any():  # NaN: not recorded
        why = (
            f"{SCALING_KEY}=false: each batch ran the swept {LR_KEY} as given, none the rule's lr x batch/32"
        )
    if why:
        return [Claim(LINEAR_RULE.format(norm="*", batch="*"), NOT_APPLICABLE, why, "")]
    claims = []
    for context, runs in contexts(res.done, [k for k in res.swept if k != LR_KEY]):
        for _, cell in groups(runs, [NORM_KEY, BATCH_KEY]):
            claim = counting_unlearned(lambda r: linear_rule(r, metric, lr, opts), cell)
            claims.append(replace(claim, context=context))
    return claims


# ---------------------------------------------------------------- which claims, where


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
    and their claims say INCONCLUSIVE (missing data)."""
    runs = res.runs
    batches = sorted(runs[BATCH_KEY].dropna().unique()) if BATCH_KEY in runs else []
    norms = set(norm_names(runs).values())
    order = reference.paper_order_at_32()
    skipped: dict[str, str] = {}
    if len(batches) == 1:
        skipped[BATCH_SIZE_CLAIMS] = f"the grid runs one batch size ({batches[0]})"
    if len(runs) and sum(n in norms for n in order) < 2:
        skipped[ORDER_CLAIM] = (
            f"the grid runs fewer than 2 of the published order's norms ({', '.join(order)})"
        )
    return skipped


def _order_applies(runs: pd.DataFrame) -> str:
    """ "" where the published order applies, else why not."""
    models = sorted(runs["model.name"].dropna().astype(str).unique()) if "model.name" in runs else []
    if models and all(m in CONVOLUTIONAL_MODELS for m in models):
        return ""
    return (
        f"the published order is of {ORDER_DOMAIN}; these runs: model.name={', '.join(models) or 'unknown'}"
    )


def _batch_size_claims(res: Results, runs: pd.DataFrame, metric: str, opts: ClaimOptions) -> list[Claim]:
    """BN degrades, GN flat (one per label of each), and BN degrades more than GN per pair."""
    found = []
    labels = {}
    for option, check, title in ((opts.bn, degrades, DEGRADES), (opts.gn, flat, FLAT)):
        labels[option] = variants(res.runs, option)  # the grid's, whatever their status
        found += [
            counting_unlearned(lambda r, lbl=lbl, check=check: check(r, metric, lbl, opts), runs)
            for lbl in labels[option]
        ] or [Claim(title.format(option), NOT_APPLICABLE, f"norm={option} is not in this grid", "")]
    for bn in labels[opts.bn]:
        for gn in labels[opts.gn]:
            found.append(
                counting_unlearned(lambda r, bn=bn, gn=gn: degrades_more(r, metric, bn, gn, opts), runs)
            )
    return found


def _near_baseline_claims(runs: pd.DataFrame, metric: str, opts: ClaimOptions) -> list[Claim]:
    """GN within the margin of BN at the largest batch, per pair of their labels that ran."""
    return [
        counting_unlearned(lambda r, bn=bn, gn=gn: near_baseline(r, metric, gn, bn, opts), runs)
        for bn in variants(runs, opts.bn)
        for gn in variants(runs, opts.gn)
    ]


def evaluate(res: Results, metric: str = "test/error", options: ClaimOptions | None = None) -> list[Claim]:
    """All claims, once per cell of the swept keys other than norm, batch size and seed; the
    loss-threshold claim once per batch size within that cell. Claims outside their domain
    (or about a norm the grid never ran) come back as NOT APPLICABLE, the reason as evidence."""
    opts, metric = options or ClaimOptions(), lower_is_better(metric)
    claims: list[Claim] = []
    skipped = out_of_scope(res)
    for context, runs in contexts(res.done, res.swept):
        found = []
        if BATCH_SIZE_CLAIMS not in skipped:
            found += _batch_size_claims(res, runs, metric, opts)
        if ORDER_CLAIM not in skipped:
            why = _order_applies(runs)
            if why:
                found.append(Claim(ORDERING, NOT_APPLICABLE, why, ""))
            else:
                found.append(counting_unlearned(lambda r: ordering(r, metric, opts), runs))
                found += _near_baseline_claims(runs, metric, opts)
        if opts.threshold_claim is None and not wants_threshold_claim(runs, None):
            title = THRESHOLD.format(norm=opts.threshold_norm, split="train", metric="loss")
            found.append(Claim(title, NOT_APPLICABLE, f"the claim is about {THRESHOLD_DOMAIN}", ""))
        claims += [replace(c, context=context) for c in found]
        if not wants_threshold_claim(runs, opts.threshold_claim):
            continue
        for values, cell in groups(runs, [BATCH_KEY] if BATCH_KEY in runs else []):
            where = ", ".join(x for x in (context, f"batch={values[0]}" if values else "") if x)
            claim = counting_unlearned(lambda r: first_to_threshold(r, res.curves, opts), cell)
            claims.append(replace(claim, context=where))
    return claims + linear_rule_claims(res, metric, opts)
