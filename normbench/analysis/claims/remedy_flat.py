""" "X is batch-size independent" for every norm X of a remedies grid other than BN and GN:
:mod:`.flat`'s equivalence test (TOST of error(b) - error(largest b) against the margin),
per norm. GN's labels (group8, and WS + GN as group8_ws) keep their own claim in :mod:`.flat`,
BN its "degrades" (:mod:`.degrades`)."""

from __future__ import annotations

from normbench.analysis.claims.base import Cell, Claim, ClaimSpec, judge_each
from normbench.analysis.claims.flat import FLAT, flat
from normbench.analysis.claims.options import BN, GN, REMEDY_CLAIMS, ClaimOptions
from normbench.analysis.claims.remedy_near_baseline import compared
from normbench.analysis.load import Results
from normbench.analysis.stats import BATCH_SIZE_KEY, variants


def judged(res: Results, opts: ClaimOptions) -> list[str]:
    """The labels of the grid other than BN's and GN's (which :mod:`.flat` judges)."""
    gn = set(variants(res.runs, opts.gn))
    return [x for x in compared(res.runs, opts.bn) if x not in gn]


def judge(cell: Cell) -> list[Claim]:
    check = lambda r, label: flat(r, cell.metric, label, cell.opts)  # noqa: E731
    return judge_each(cell.runs, check, [(label,) for label in judged(cell.res, cell.opts)])


def _design(res: Results, opts: ClaimOptions) -> str:
    """Why the grid cannot answer it ("" where it can)."""
    batches = res.runs[BATCH_SIZE_KEY].dropna().unique() if BATCH_SIZE_KEY in res.runs else []
    if len(batches) < 2:
        return "the grid runs one batch size"
    return "" if judged(res, opts) else f"the grid runs no norm beside norm={opts.bn} and norm={opts.gn}"


CLAIM = ClaimSpec(
    title=lambda opts: FLAT.format("*"),
    judge=judge,
    options=(BN, GN, REMEDY_CLAIMS),
    switch=REMEDY_CLAIMS.name,
    design=_design,
)
