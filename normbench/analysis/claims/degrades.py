""" "X degrades at small batch": a one-sided t-test of error(smallest batch) - error(largest)."""

from __future__ import annotations

import pandas as pd

from normbench.analysis.claims.base import (
    INCONCLUSIVE,
    MISSING_PREFIX,
    Cell,
    Claim,
    ClaimSpec,
    by_batch,
    each_label,
    effect_text,
    num,
    one_sided,
    units,
)
from normbench.analysis.claims.domains import BATCH_SIZES
from normbench.analysis.claims.options import BN, ClaimOptions
from normbench.analysis.claims.published import published_degradation
from normbench.analysis.stats import NO_SPREAD_RULE, difference, seed_values

DEGRADES = "norm={} degrades at small batch"


def degrades(runs: pd.DataFrame, metric: str, bn: str, opts: ClaimOptions) -> Claim:
    """``bn``'s error at the smallest batch minus at the largest is above 0 (one-sided t)."""
    u = units(metric, opts)
    name = DEGRADES.format(bn)
    rule = (
        f"one-sided t-tests at alpha {opts.alpha:g} (paired on the seeds both batch sizes ran, Welch "
        f"where fewer than two are shared) of {metric}(smallest batch) - {metric}(largest batch): PASS "
        f"if it is resolved above 0 (the {u.level:.0%} CI's lower end above 0); FAIL if it is resolved below "
        f"the margin {opts.margin_pp:g} {u.unit} (the {u.level:.0%} CI's upper end below it: no degradation "
        f"as large as the margin); else INCONCLUSIVE; {NO_SPREAD_RULE}. Domain: any model whose norm "
        f"uses batch statistics"
    )
    cells = by_batch(runs, bn, metric)
    if len(cells) < 2:
        return Claim(
            name, INCONCLUSIVE, f"{MISSING_PREFIX} norm={bn} finished at {len(cells)} batch size(s)", rule
        )
    (small, a), (large, b) = list(cells.items())[0], list(cells.items())[-1]
    d = difference(seed_values(a, metric), seed_values(b, metric))
    effect = effect_text(f"batch={small} - batch={large}", d, u.scale, u.unit, u.level)
    numbers = (
        f"{metric} batch={small}: {num(d.a.mean(), u.scale)}, batch={large}: {num(d.b.mean(), u.scale)}; "
        f"{effect}, {d.method} ({d.n_text})"
    )
    published = published_degradation(runs, bn, small, large, d, metric, u.level)
    if not d.testable:
        missing = f"{MISSING_PREFIX} {numbers}; needs 2+ seeds at both ends"
        return Claim(name, INCONCLUSIVE, missing, rule, effect=effect, n=d.n_text, published=published)
    target = f"an assumed true degradation of {opts.margin_pp:g} {u.unit} (the margin)"
    verdict, tests = one_sided(d, u, opts, ("greater", 0.0), ("less", u.margin), target)
    numbers += ", " + tests
    return Claim(name, verdict, numbers, rule, effect=effect, n=d.n_text, published=published, lean=d.diff)


def judge(cell: Cell) -> list[Claim]:
    return each_label(cell, cell.opts.bn, DEGRADES, lambda r, lbl: degrades(r, cell.metric, lbl, cell.opts))


CLAIM = ClaimSpec(title=lambda opts: DEGRADES.format(opts.bn), judge=judge, options=(BN,), scope=BATCH_SIZES)
