"""Automatic claims: statements from the papers, checked against the runs, PASS or FAIL.

Each claim states its rule (the threshold) next to its verdict and its numbers. A claim whose
data is absent (the norm was not run, one batch size only, one seed where a CI is needed)
says MISSING DATA: it never passes by default. Claims are checked separately in every cell of
the swept keys other than norm, batch size and seed (e.g. once per model).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from normbench.analysis import reference
from normbench.analysis.load import Results
from normbench.analysis.stats import BATCH_KEY, NORM_KEY, aggregate, contexts, difference_of_means

PASS, FAIL, MISSING = "PASS", "FAIL", "MISSING DATA"
GN_TOLERANCE_PP = 1.0  # points of error; the GN paper's own spread over 2..32 images is 0.2


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
    rule = (f"PASS if mean {metric} of norm={bn} at the smallest batch size minus at the largest "
            f"has a 95% bootstrap CI (unpaired, over seeds) entirely above 0; needs 2+ batch "
            f"sizes and 2+ seeds at both ends")
    table = _by_batch(runs, bn, metric)
    if len(table) < 2:
        return Claim(name, MISSING, f"norm={bn} finished at {len(table)} batch size(s); need 2 or more", rule)
    small, large = table[BATCH_KEY].iloc[0], table[BATCH_KEY].iloc[-1]
    pick = runs[runs[NORM_KEY] == bn]
    d = difference_of_means(pick[pick[BATCH_KEY] == small][metric], pick[pick[BATCH_KEY] == large][metric])
    numbers = (f"batch={small}: {_mean_ci(table.iloc[0])}; batch={large}: {_mean_ci(table.iloc[-1])}; "
               f"difference {_pct(d['diff'])} points")
    if np.isnan(d["ci_low"]):
        return Claim(name, MISSING, f"{numbers}; no CI: needs 2+ seeds at both ends", rule)
    verdict = PASS if d["ci_low"] > 0 else FAIL
    return Claim(name, verdict, f"{numbers}, CI [{_pct(d['ci_low'])}, {_pct(d['ci_high'])}]", rule)


def gn_flat(runs: pd.DataFrame, metric: str = "test/error", gn: str = "group",
            tolerance_pp: float = GN_TOLERANCE_PP) -> Claim:
    """GN's mean error varies by at most ``tolerance_pp`` points across the batch sizes run."""
    name = f"norm={gn} is batch-size independent"
    rule = (f"PASS if the mean {metric} of norm={gn} varies by at most {tolerance_pp:.1f} points "
            f"(max minus min over batch sizes); needs 2+ batch sizes")
    table = _by_batch(runs, gn, metric)
    if len(table) < 2:
        return Claim(name, MISSING, f"norm={gn} finished at {len(table)} batch size(s); need 2 or more", rule)
    spread = 100 * (table["mean"].max() - table["mean"].min())
    per_batch = "; ".join(f"batch={r[BATCH_KEY]}: {_mean_ci(r)}" for _, r in table.iterrows())
    verdict = PASS if spread <= tolerance_pp else FAIL
    one_seed = " (1 seed somewhere: spread includes seed noise)" if table["n"].min() < 2 else ""
    return Claim(name, verdict, f"spread {spread:.2f} points{one_seed}; {per_batch}", rule)


def ordering(runs: pd.DataFrame, metric: str = "test/error",
             expected: Sequence[str] | None = None) -> Claim:
    """At the largest batch size, the norms' mean errors are in the GroupNorm paper's order."""
    expected = list(expected or reference.paper_order_at_32())
    name = "ordering of norms at the largest batch"
    rule = (f"PASS if, at the largest batch size run, mean {metric} increases in the published order "
            f"{' < '.join(expected)} ({reference.GN_PAPER}, 32 images per GPU), over the norms run; "
            f"'~' marks neighbours whose 95% CIs overlap (order not resolved by these seeds)")
    if not _has(runs, metric) or runs[BATCH_KEY].dropna().empty:
        return Claim(name, MISSING, f"no finished runs with {metric}", rule)
    largest = runs[BATCH_KEY].max()
    table = aggregate(runs[runs[BATCH_KEY] == largest], metric, [NORM_KEY]).dropna(subset=["mean"])
    judged = table[table[NORM_KEY].isin(expected)].sort_values("mean")
    if len(judged) < 2:
        have = f"batch={largest}: {len(judged)} of {', '.join(expected)} finished; need 2"
        return Claim(name, MISSING, have, rule)
    observed = judged[NORM_KEY].tolist()
    verdict = PASS if observed == [n for n in expected if n in observed] else FAIL
    return Claim(name, verdict, f"batch={largest}: {_chain(judged)}{_unjudged(table, expected)}", rule)


def _chain(table: pd.DataFrame) -> str:
    """"a 14.1% (...) < b 15.0% (...)", with ~ where two neighbours' CIs overlap."""
    rows = [r for _, r in table.iterrows()]
    text = f"norm={rows[0][NORM_KEY]} {_mean_ci(rows[0])}"
    for prev, row in itertools.pairwise(rows):
        overlap = not (prev["ci_high"] < row["ci_low"])  # NaN (1 seed) counts as overlapping
        text += f" {'~' if overlap else '<'} norm={row[NORM_KEY]} {_mean_ci(row)}"
    return text


def _unjudged(table: pd.DataFrame, expected: Sequence[str]) -> str:
    other = table[~table[NORM_KEY].isin(expected)]
    if other.empty:
        return ""
    listed = ", ".join(f"norm={r[NORM_KEY]} {_mean_ci(r)}" for _, r in other.iterrows())
    return f"; not in the published order: {listed}"


def evaluate(res: Results, metric: str = "test/error", bn: str = "batch", gn: str = "group",
             gn_tolerance_pp: float = GN_TOLERANCE_PP) -> list[Claim]:
    """All claims, once per cell of the swept keys other than norm, batch size and seed."""
    claims = []
    for context, runs in contexts(res.done, res.swept):
        for claim in (bn_degrades(runs, metric, bn), gn_flat(runs, metric, gn, gn_tolerance_pp),
                      ordering(runs, metric)):
            claims.append(Claim(claim.name, claim.verdict, claim.evidence, claim.rule, context))
    return claims
