"""Orderings: pairs of norms each resolved as expected, reversed or not at all (two-sided
t-tests, Holm-corrected over the pairs of a claim); the published order and the race to the
loss threshold are judged this way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd

from normbench.analysis.claims.base import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Claim,
    Units,
    effect_text,
    p_text,
    plan_all,
)
from normbench.analysis.claims.options import ClaimOptions
from normbench.analysis.stats import Difference, difference, holm


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


def pairs_verdict(pairs: Sequence[Pair]) -> str:
    outcomes = [p.outcome for p in pairs]
    if any(o == "resolved reversed" for o in outcomes):
        return FAIL
    if all(o == "resolved as published" for o in outcomes):
        return PASS
    return INCONCLUSIVE


def pair_text(p: Pair, scale: float, unit: str) -> str:
    return (
        f"{effect_text(f'norm={p.second} - norm={p.first}', p.d, scale, unit, 1 - p.alpha)}, {p.d.method} "
        f"({p.d.n_text}), "
        f"p = {p_text(p.p)}, Holm {p_text(p.p_holm)}: {p.outcome}"
    )


def weakest(pairs: Sequence[Pair]) -> Pair:
    """The pair that decides the verdict: a reversed one, else the least resolved."""
    reversed_ = [p for p in pairs if p.outcome == "resolved reversed"]
    return reversed_[0] if reversed_ else max(pairs, key=lambda p: p.p_holm)


def pairs_power(pairs: Sequence[Pair], gap: float, u: Units, what: str, opts: ClaimOptions) -> str:
    """Seeds for the unresolved pairs at a true difference of ``gap``: two-sided at
    alpha / (number of pairs), Holm's first step."""
    open_ = [p.d for p in pairs if p.outcome == "unresolved"]
    return plan_all(open_, what, replace(u, margin=gap), opts, alpha=opts.alpha / 2 / len(pairs))


def pairs_claim(
    name: str, verdict: str, evidence: str, rule: str, found: Sequence[Pair], u: Units, published: str
) -> Claim:
    """The claim an ordering makes: its effect and n are those of the pair that decides it."""
    low = weakest(found)
    return Claim(
        name,
        verdict,
        evidence,
        rule,
        effect=effect_text(f"norm={low.second} - norm={low.first}", low.d, u.scale, u.unit, 1 - low.alpha),
        n=low.d.n_text,
        published=published,
        lean=min(p.d.diff for p in found),
    )
