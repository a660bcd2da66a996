""" "BN degrades more than GN": the difference-in-differences of the two, per seed, one-sided."""

from __future__ import annotations

import pandas as pd

from normbench.analysis.claims.base import (
    INCONCLUSIVE,
    MISSING_PREFIX,
    Cell,
    Claim,
    ClaimSpec,
    by_batch,
    difference_claim,
    effect_text,
    judge_each,
    label_pairs,
    one_sided,
    units,
)
from normbench.analysis.claims.domains import BATCH_SIZES
from normbench.analysis.claims.options import BN, GN, ClaimOptions
from normbench.analysis.claims.published import published_did
from normbench.analysis.stats import BATCH_SIZE_KEY, NO_SPREAD_RULE, NORM_KEY, difference, seed_values

DEGRADES_MORE = "norm={bn} degrades more than norm={gn} at small batch"


def _change(runs: pd.DataFrame, label: str, metric: str, small: object, large: object) -> pd.Series:
    """Per seed, ``label``'s metric at batch ``small`` minus at ``large`` (seeds run at both)."""
    rows = runs[runs[NORM_KEY] == label]
    at = {b: seed_values(rows[rows[BATCH_SIZE_KEY] == b], metric) for b in (small, large)}
    a, b = (pd.to_numeric(v, errors="coerce").groupby(level=0).mean() for v in at.values())
    return (a - b).dropna()


def degrades_more(runs: pd.DataFrame, metric: str, bn: str, gn: str, opts: ClaimOptions) -> Claim:
    """The difference-in-differences: ``bn``'s change from the largest to the smallest batch
    minus ``gn``'s, per seed (the seeds all four cells ran), one-sided above 0."""
    u = units(metric, opts)
    name = DEGRADES_MORE.format(bn=bn, gn=gn)
    rule = (
        f"per seed, the difference-in-differences [{metric}(smallest) - {metric}(largest)] of norm={bn} "
        f"minus the same of norm={gn}, at norm={bn}'s smallest and largest batch sizes; one-sided t-tests "
        f"at alpha {opts.alpha:g} (paired on the seeds both norms ran at both sizes, Welch otherwise): PASS "
        f"if it is resolved above 0; FAIL if resolved below the margin {opts.margin_pp:g} {u.unit}; else "
        f"INCONCLUSIVE; {NO_SPREAD_RULE}. Domain: any model"
    )
    sizes = list(by_batch(runs, bn, metric))
    gn_sizes = set(by_batch(runs, gn, metric))
    if len(sizes) < 2 or not {sizes[0], sizes[-1]} <= gn_sizes:
        why = f"{MISSING_PREFIX} norm={bn} and norm={gn} did not both finish at two shared batch sizes"
        return Claim(name, INCONCLUSIVE, why, rule)
    small, large = sizes[0], sizes[-1]
    d = difference(_change(runs, bn, metric, small, large), _change(runs, gn, metric, small, large))
    effect = effect_text(
        f"(batch={small} - batch={large}) of {bn} minus of {gn}", d, u.scale, u.unit, u.level
    )
    target = f"an assumed true difference-in-differences of {opts.margin_pp:g} {u.unit} (the margin)"
    verdict, tests = one_sided(d, u, opts, ("greater", 0.0), ("less", u.margin), target)
    published = published_did(runs, bn, gn, small, large, d, metric, u.level)
    return difference_claim(name, verdict, rule, d, effect, tests, published, d.diff)


def judge(cell: Cell) -> list[Claim]:
    """One claim per pair of the two norms' labels in the grid."""
    pairs = label_pairs(cell.res.runs, cell.opts.bn, cell.opts.gn)
    return judge_each(cell.runs, lambda r, bn, gn: degrades_more(r, cell.metric, bn, gn, cell.opts), pairs)


CLAIM = ClaimSpec(
    title=lambda opts: DEGRADES_MORE.format(bn=opts.bn, gn=opts.gn),
    judge=judge,
    options=(BN, GN),
    scope=BATCH_SIZES,
)
