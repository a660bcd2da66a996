""" "X is batch-size independent": an equivalence test (TOST) of error(b) - error(largest b)
against a stated margin, for every b."""

from __future__ import annotations

import math

import numpy as np
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
    every_one,
    fewest,
    p_text,
    units,
)
from normbench.analysis.claims.domains import BATCH_SIZES
from normbench.analysis.claims.options import GN, ClaimOptions
from normbench.analysis.claims.published import published_degradation
from normbench.analysis.stats import NO_SPREAD_RULE, Difference, difference, holm, seed_values

FLAT = "norm={} is batch-size independent"


def flat(runs: pd.DataFrame, metric: str, gn: str, opts: ClaimOptions) -> Claim:
    """TOST: every error(b) - error(largest b) lies within +-margin."""
    u = units(metric, opts)  # its level: the interval TOST at alpha decides on
    name = FLAT.format(gn)
    rule = (
        f"equivalence test (TOST at alpha {opts.alpha:g}, i.e. the {u.level:.0%} CI) of {metric}(b) - "
        f"{metric}(largest b) for every other batch size b, margin +-{opts.margin_pp:g} {u.unit}, paired on "
        f"the seeds both ran (Welch where fewer than two are shared): PASS if every difference is inside "
        f"the margin; "
        f"FAIL if one is resolved outside it (one-sided test beyond the margin, Holm-corrected over the "
        f"batch sizes); else INCONCLUSIVE; {NO_SPREAD_RULE}. Domain: any model"
    )
    cells = by_batch(runs, gn, metric)
    if len(cells) < 2:
        return Claim(
            name, INCONCLUSIVE, f"{MISSING_PREFIX} norm={gn} finished at {len(cells)} batch size(s)", rule
        )
    large, base = list(cells.items())[-1]
    found: list[tuple[object, Difference]] = [
        (b, difference(seed_values(rows, metric), seed_values(base, metric)))
        for b, rows in list(cells.items())[:-1]
    ]
    m = u.margin
    inside = [max(d.p_value("less", m), d.p_value("greater", -m)) for _, d in found]
    outside = holm([min(d.p_value("greater", m), d.p_value("less", -m)) for _, d in found])
    parts = [
        f"{effect_text(f'batch={b} - batch={large}', d, u.scale, u.unit, u.level)}, {d.method} ({d.n_text}), "
        f"TOST p = {p_text(p_in)}, beyond-margin p (Holm) = {p_text(p_out)}"
        for (b, d), p_in, p_out in zip(found, inside, outside, strict=True)
    ]
    worst_b, worst = max(found, key=lambda bd: abs(bd[1].diff) if not np.isnan(bd[1].diff) else -1)
    effect = effect_text(f"batch={worst_b} - batch={large}", worst, u.scale, u.unit, u.level)
    published = "; ".join(
        f"batch={b}: {published_degradation(runs, gn, b, large, d, metric, u.level)}" for b, d in found
    )
    untestable = ", ".join(f"batch={b}" for b, d in found if not d.testable)
    target = (
        f"equivalence within +-{opts.margin_pp:g} {u.unit} at an assumed true difference of 0 "
        f"(TOST power >= 2P - 1)"
    )
    diffs = [d for _, d in found]
    verdict, evidence = every_one(diffs, inside, outside, "; ".join(parts), untestable, target, u, opts, True)
    lean = -max((abs(d.diff) for d in diffs), default=math.nan)
    return Claim(
        name, verdict, evidence, rule, effect=effect, n=fewest(diffs), published=published, lean=lean
    )


def judge(cell: Cell) -> list[Claim]:
    return each_label(cell, cell.opts.gn, FLAT, lambda r, lbl: flat(r, cell.metric, lbl, cell.opts))


CLAIM = ClaimSpec(title=lambda opts: FLAT.format(opts.gn), judge=judge, options=(GN,), scope=BATCH_SIZES)
