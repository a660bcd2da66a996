""" "GN within the margin of BN" at the largest batch: the gap the GN paper reports (0.5 points),
a non-inferiority test, beside the order."""

from __future__ import annotations

import pandas as pd

from normbench.analysis.claims.base import (
    INCONCLUSIVE,
    MISSING_PREFIX,
    Cell,
    Claim,
    ClaimSpec,
    difference_claim,
    effect_text,
    judge_each,
    label_pairs,
    largest_batch,
    one_sided,
    units,
)
from normbench.analysis.claims.domains import CONVOLUTIONAL, PUBLISHED_ORDER
from normbench.analysis.claims.options import BN, GN, ClaimOptions
from normbench.analysis.claims.published import published_gap
from normbench.analysis.stats import BATCH_SIZE_KEY, NO_SPREAD_RULE, NORM_KEY, difference, seed_values

NEAR_BASELINE = "norm={gn} is within the margin of norm={bn} at the largest batch"
WITHIN = ("within-margin p", "beyond-margin p")


def near_baseline(runs: pd.DataFrame, metric: str, gn: str, bn: str, opts: ClaimOptions) -> Claim:
    """The gap the GN paper reports at 32 images per GPU (GN 0.5 points above BN): at the
    largest batch, ``gn`` - ``bn`` is below the margin (non-inferiority), not only its sign."""
    u = units(metric, opts)
    name = NEAR_BASELINE.format(gn=gn, bn=bn)
    rule = (
        f"at the largest batch size, a non-inferiority t-test of {metric}(norm={gn}) - "
        f"{metric}(norm={bn}) < {opts.margin_pp:g} {u.unit} (one-sided at alpha {opts.alpha:g}, the "
        f"{u.level:.0%} CI's upper end; paired on the seeds both ran, Welch otherwise): PASS if resolved "
        f"below the margin (as the paper's 0.5-point gap is); FAIL if resolved above it; else "
        f"INCONCLUSIVE; {NO_SPREAD_RULE}. Domain: {CONVOLUTIONAL.text}"
    )
    largest = largest_batch(runs) if metric in runs else None
    at = runs[runs[BATCH_SIZE_KEY] == largest] if largest is not None else runs[:0]
    a, b = (seed_values(at[at[NORM_KEY] == x], metric) for x in (gn, bn))
    d = difference(a, b)
    if not d.testable:
        return Claim(
            name, INCONCLUSIVE, f"{MISSING_PREFIX} fewer than 2 seeds of each at batch={largest}", rule
        )
    effect = effect_text(f"norm={gn} - norm={bn} at batch={largest}", d, u.scale, u.unit, u.level)
    target = f"non-inferiority within {opts.margin_pp:g} {u.unit} at an assumed true gap of 0"
    verdict, tests = one_sided(d, u, opts, ("less", u.margin), ("greater", u.margin), target, WITHIN)
    published = published_gap(at, bn, gn, d, metric, u.level)
    return difference_claim(name, verdict, rule, d, effect, tests, published, -d.diff)


def judge(cell: Cell) -> list[Claim]:
    """One claim per pair of the two norms' labels that ran in this cell."""
    pairs = label_pairs(cell.runs, cell.opts.bn, cell.opts.gn)
    return judge_each(cell.runs, lambda r, bn, gn: near_baseline(r, cell.metric, gn, bn, cell.opts), pairs)


CLAIM = ClaimSpec(
    title=lambda opts: NEAR_BASELINE.format(gn=opts.gn, bn=opts.bn),
    judge=judge,
    options=(BN, GN),
    domain=CONVOLUTIONAL,
    scope=PUBLISHED_ORDER,
)
