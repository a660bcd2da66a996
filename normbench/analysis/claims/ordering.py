""" "ordering": each adjacent pair of the published order resolved as published, reversed, or
not at all (two-sided t-tests, Holm-corrected over the pairs of the claim)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from normbench.analysis import reference
from normbench.analysis.claims.base import (
    INCONCLUSIVE,
    MISSING_PREFIX,
    Cell,
    Claim,
    ClaimSpec,
    judge_each,
    largest_batch,
    num,
    units,
)
from normbench.analysis.claims.domains import CONVOLUTIONAL, PUBLISHED_ORDER
from normbench.analysis.claims.options import ClaimOptions
from normbench.analysis.claims.pairs import pair_text, pairs_claim, pairs_power, pairs_verdict, resolve_pairs
from normbench.analysis.claims.published import published_gap
from normbench.analysis.stats import (
    BATCH_SIZE_KEY,
    NO_SPREAD_RULE,
    NORM_KEY,
    norm_names,
    paper_names,
    seed_values,
)

ORDERING = "ordering of norms at the largest batch"


def _ranked(at: pd.DataFrame, expected: list[str]) -> list[list[str]]:
    """The labels that ran, grouped by their norm's place in ``expected`` (the papers' names of
    the norms), in its order."""
    papers = paper_names(at)
    ranks: dict[int, list[str]] = {}
    for label in sorted(papers):
        if papers[label] in expected:
            ranks.setdefault(expected.index(papers[label]), []).append(label)
    return [ranks[r] for r in sorted(ranks)]


def ordering(
    runs: pd.DataFrame, metric: str, opts: ClaimOptions, expected: Sequence[str] | None = None
) -> Claim:
    """At the largest batch size, adjacent norms of the published order (GN paper Table 1,
    32 images per GPU) are resolved in that order."""
    expected = list(expected or reference.paper_order_at_32())
    u = units(metric, opts)
    rule = (
        f"at the largest batch size run, for each adjacent pair of the published order "
        f"{' < '.join(expected)} ({reference.GN_PAPER}, 32 images per GPU) among the norms run: "
        f"two-sided t-test of the {metric} difference (paired by seed where the seeds pair, Welch "
        f"otherwise), Holm-corrected over the pairs at alpha {opts.alpha:g}; PASS if every pair is "
        f"resolved as published, FAIL if any is resolved reversed, else INCONCLUSIVE; {NO_SPREAD_RULE}. "
        f"Domain: {CONVOLUTIONAL.text}"
    )
    largest = largest_batch(runs)
    if largest is None or metric not in runs:
        return Claim(ORDERING, INCONCLUSIVE, f"{MISSING_PREFIX} no finished runs with {metric}", rule)
    at = runs[(runs[BATCH_SIZE_KEY] == largest) & pd.to_numeric(runs[metric], errors="coerce").notna()]
    order = _ranked(at, expected)
    if len(order) < 2:
        why = f"{MISSING_PREFIX} batch={largest}: fewer than 2 of the published norms finished"
        return Claim(ORDERING, INCONCLUSIVE, why, rule)
    pairs = [(a, b) for lower, upper in zip(order, order[1:]) for a in lower for b in upper]
    values = {label: seed_values(at[at[NORM_KEY] == label], metric) for label in norm_names(at)}
    found = resolve_pairs(values, pairs, opts.alpha)
    means = ", ".join(f"norm={lbl} {num(values[lbl].mean(), u.scale)}" for grp in order for lbl in grp)
    evidence = f"batch={largest}: means {means}; " + "; ".join(pair_text(p, u.scale, u.unit) for p in found)
    verdict = pairs_verdict(found)
    if verdict == INCONCLUSIVE:
        target = (
            f"a difference of {opts.margin_pp:g} {u.unit} per pair (alpha / {len(found)} pairs, two-sided)"
        )
        evidence += "; " + pairs_power(found, u.margin, u, target, opts)
    level = 1 - opts.alpha  # the interval of a two-sided test at alpha
    published = "; ".join(
        f"norm={p.second} - norm={p.first}: {published_gap(at, p.first, p.second, p.d, metric, level)}"
        for p in found
    )
    return pairs_claim(ORDERING, verdict, evidence, rule, found, u, published)


def judge(cell: Cell) -> list[Claim]:
    return judge_each(cell.runs, lambda r: ordering(r, cell.metric, cell.opts), [()])


CLAIM = ClaimSpec(title=lambda opts: ORDERING, judge=judge, domain=CONVOLUTIONAL, scope=PUBLISHED_ORDER)
