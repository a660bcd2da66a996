""" "X is non-inferior to BN at the largest batch", for every norm X of a remedies grid: the
non-inferiority test of :mod:`.near_baseline` (GN within the margin of BN), once per norm the
grid runs beside BN, Holm-corrected over those norms (a grid of five remedies makes five
claims, and any one passing by chance is what the correction bounds)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from normbench.analysis.claims.base import (
    FAIL,
    INCONCLUSIVE,
    MISSING_PREFIX,
    PASS,
    Cell,
    Claim,
    ClaimSpec,
    difference_claim,
    effect_text,
    judge_each,
    largest_batch,
    p_text,
    power_line,
    units,
)
from normbench.analysis.claims.options import BN, REMEDY_CLAIMS, ClaimOptions
from normbench.analysis.claims.published import published_gap
from normbench.analysis.load import Results
from normbench.analysis.stats import (
    BATCH_SIZE_KEY,
    NO_SPREAD_RULE,
    NORM_KEY,
    Difference,
    difference,
    holm,
    natural_key,
    norm_names,
    seed_values,
    variants,
)

NON_INFERIOR = "norm={norm} is non-inferior to norm={bn} at the largest batch"


def compared(runs: pd.DataFrame, bn: str) -> list[str]:
    """Every label of ``runs`` that is not one of ``bn``'s: the family Holm corrects over."""
    baseline = set(variants(runs, bn))
    return sorted((x for x in norm_names(runs) if x not in baseline), key=natural_key)


def _rule(metric: str, bn: str, family: Sequence[str], opts: ClaimOptions) -> str:
    u = units(metric, opts)
    return (
        f"at the largest batch size, for each norm X of {', '.join(family)} (the grid's norms other than "
        f"norm={bn}), a non-inferiority t-test of {metric}(X) - {metric}(norm={bn}) < {opts.margin_pp:g} "
        f"{u.unit} (one-sided, paired on the seeds both ran, Welch otherwise), Holm-corrected over those "
        f"{len(family)} norms (a norm with too few seeds counts as p = 1): PASS if resolved below the "
        f"margin at alpha {opts.alpha:g} after correction; FAIL if resolved above it (one-sided, Holm "
        f"likewise); else INCONCLUSIVE; {NO_SPREAD_RULE}. The interval shown is the uncorrected "
        f"{u.level:.0%} CI. Domain: any model; made where the report is told to (remedy_claims: on, "
        f"as experiment=remedies does)"
    )


def remedy_near_baseline(
    runs: pd.DataFrame, metric: str, label: str, bn: str, family: Sequence[str], opts: ClaimOptions
) -> Claim:
    """``label``'s claim: every norm of ``family`` tested against ``bn`` at the largest batch of
    ``runs``, the p values Holm-corrected over the family, ``label``'s read off."""
    u = units(metric, opts)
    name = NON_INFERIOR.format(norm=label, bn=bn)
    rule = _rule(metric, bn, family, opts)
    largest = largest_batch(runs) if metric in runs else None
    at = runs[runs[BATCH_SIZE_KEY] == largest] if largest is not None else runs[:0]
    base = seed_values(at[at[NORM_KEY] == bn], metric)
    found: dict[str, Difference] = {
        x: difference(seed_values(at[at[NORM_KEY] == x], metric), base) for x in family
    }
    below = dict(zip(family, holm([d.p_value("less", u.margin) for d in found.values()]), strict=True))
    above = dict(zip(family, holm([d.p_value("greater", u.margin) for d in found.values()]), strict=True))
    d = found[label]
    if not d.testable:
        return Claim(
            name, INCONCLUSIVE, f"{MISSING_PREFIX} fewer than 2 seeds of each at batch={largest}", rule
        )
    effect = effect_text(f"norm={label} - norm={bn} at batch={largest}", d, u.scale, u.unit, u.level)
    p_in, p_out = below[label], above[label]
    verdict = PASS if p_in < opts.alpha else FAIL if p_out < opts.alpha else INCONCLUSIVE
    tests = f"within-margin p (Holm) = {p_text(p_in)}, beyond-margin p (Holm) = {p_text(p_out)}"
    if verdict == INCONCLUSIVE:
        # Holm's first step holds a test to alpha / m: plan for it (a later step needs less)
        level = opts.alpha / len(family)
        target = (
            f"non-inferiority within {opts.margin_pp:g} {u.unit} at an assumed true gap of 0, each test at "
            f"alpha {level:.3g} (Holm's first step over {len(family)} norms)"
        )
        needed = d.seeds_needed(u.margin, level, opts.power)
        tests += "; " + power_line(needed, d.sd, target, u.scale, u.unit, opts)
    published = published_gap(at, bn, label, d, metric, u.level)
    return difference_claim(name, verdict, rule, d, effect, tests, published, -d.diff)


def judge(cell: Cell) -> list[Claim]:
    """One claim per norm of the grid other than BN, per label of BN (normally one)."""
    claims: list[Claim] = []
    for bn in variants(cell.res.runs, cell.opts.bn):
        family = compared(cell.res.runs, cell.opts.bn)
        check = lambda r, label, bn=bn, family=family: remedy_near_baseline(  # noqa: E731
            r, cell.metric, label, bn, family, cell.opts
        )
        claims += judge_each(cell.runs, check, [(label,) for label in family])
    return claims


def _design(res: Results, opts: ClaimOptions) -> str:
    """Why the grid cannot answer it ("" where it can): no BN, or nothing beside it."""
    if not variants(res.runs, opts.bn):
        return f"the grid runs no norm={opts.bn} to compare the other norms with"
    return "" if compared(res.runs, opts.bn) else f"the grid runs no norm beside norm={opts.bn}"


CLAIM = ClaimSpec(
    title=lambda opts: NON_INFERIOR.format(norm="*", bn=opts.bn),
    judge=judge,
    options=(BN, REMEDY_CLAIMS),
    switch=REMEDY_CLAIMS.name,
    design=_design,
)
