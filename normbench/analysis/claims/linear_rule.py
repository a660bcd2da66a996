""" "the linear-rule lr is within the margin of the best" (grids sweeping ``optim.lr``): a
non-inferiority t-test of error(rule lr) - error(other lr) against the margin, per other lr."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from normbench.analysis.claims.base import (
    INCONCLUSIVE,
    MISSING_PREFIX,
    Cell,
    Claim,
    ClaimSpec,
    Scope,
    effect_text,
    every_one,
    fewest,
    judge_each,
    num,
    p_text,
    units,
)
from normbench.analysis.claims.loop import judge_claims
from normbench.analysis.claims.options import ClaimOptions
from normbench.analysis.claims.published import NO_PUBLISHED
from normbench.analysis.load import Results
from normbench.analysis.stats import (
    BATCH_SIZE_KEY,
    NO_SPREAD_RULE,
    NORM_KEY,
    difference,
    groups,
    holm,
    seed_values,
)

LINEAR_RULE = "norm={norm} at batch={batch}: the linear-rule lr is within the margin of the best"
LR_KEY = "optim.lr"
SCALING_KEY = "optim.linear_scaling"


def rule_lr(values: Sequence[float]) -> float | None:
    """The linear rule's lr among the swept ``optim.lr`` values: the middle one of an odd number
    (3+) of them, as a sweep over x0.5, x1, x2 of it lays them out; None otherwise."""
    values = sorted(set(values))
    return values[len(values) // 2] if len(values) >= 3 and len(values) % 2 else None


def _rule(metric: str, opts: ClaimOptions) -> str:
    u = units(metric, opts)
    return (
        f"the linear rule's lr is the middle of the swept {LR_KEY} values (with linear_scaling on, "
        f"{LR_KEY} is the rate at batch 32 and each run uses it x batch/32); for each other lr, a "
        f"non-inferiority t-test of {metric}(rule lr) - {metric}(other lr) < {opts.margin_pp:g} {u.unit} "
        f"(one-sided at alpha {opts.alpha:g}, i.e. the {u.level:.0%} CI's upper end, paired on the seeds "
        f"both ran, Welch where fewer than two are shared): PASS if every one is resolved below the "
        f"margin (the rule's lr is within the margin of the best; every test must reject, so none is "
        f"corrected); FAIL if one is resolved above it (one-sided, Holm over the other lrs); else "
        f"INCONCLUSIVE; {NO_SPREAD_RULE}. Domain: any model"
    )


def linear_rule(cell: pd.DataFrame, metric: str, lr: float, opts: ClaimOptions) -> Claim:
    """Non-inferiority: the error at the linear rule's lr minus at each other lr is below the
    margin (one-sided t-tests; Holm only on the FAIL side: see :func:`base.every_one`)."""
    u, rule = units(metric, opts), _rule(metric, opts)
    name = LINEAR_RULE.format(norm=cell[NORM_KEY].iloc[0], batch=cell[BATCH_SIZE_KEY].iloc[0])
    by_lr = {float(v): seed_values(g, metric) for v, g in cell.groupby(LR_KEY)}
    others = [v for v in sorted(by_lr) if v != lr]
    if lr not in by_lr or not others:
        what = f"{LR_KEY}={lr:g}" if lr not in by_lr else "another lr"
        return Claim(name, INCONCLUSIVE, f"{MISSING_PREFIX} no finished run at {what}", rule)
    found = [(v, difference(by_lr[lr], by_lr[v])) for v in others]
    below = [d.p_value("less", u.margin) for _, d in found]
    above = holm([d.p_value("greater", u.margin) for _, d in found])
    means = ", ".join(f"lr={v:g} {num(by_lr[v].mean(), u.scale)}" for v in sorted(by_lr))
    best = min(by_lr, key=lambda v: by_lr[v].mean())
    parts = [
        f"{effect_text(f'lr={lr:g} - lr={v:g}', d, u.scale, u.unit, u.level)}, {d.method} ({d.n_text}), "
        f"within-margin p = {p_text(p_in)}, beyond-margin p (Holm) = {p_text(p_out)}"
        for (v, d), p_in, p_out in zip(found, below, above, strict=True)
    ]
    evidence = f"{metric} means: {means} (best lr={best:g}); " + "; ".join(parts)
    target = f"non-inferiority within {opts.margin_pp:g} {u.unit} at an assumed true difference of 0"
    diffs = [d for _, d in found]
    verdict, evidence = every_one(diffs, below, above, evidence, "some lr", target, u, opts)
    v, worst = max(found, key=lambda vd: vd[1].diff if not np.isnan(vd[1].diff) else -np.inf)
    effect = effect_text(f"lr={lr:g} - lr={v:g}", worst, u.scale, u.unit, u.level)
    return Claim(
        name,
        verdict,
        evidence,
        rule,
        effect=effect,
        n=fewest(diffs),
        published=NO_PUBLISHED,
        lean=-worst.diff,
    )


def _swept_lr(res: Results) -> float | None:
    return rule_lr(pd.to_numeric(res.runs[LR_KEY], errors="coerce").dropna().tolist())


def _design(res: Results, opts: ClaimOptions) -> str:
    """Why this lr sweep cannot test the rule ("" where it can)."""
    if _swept_lr(res) is None:
        return f"needs an odd number (3 or more) of swept {LR_KEY} values, the middle one the rule's"
    if SCALING_KEY in res.runs and res.runs[SCALING_KEY].eq(False).any():  # NaN: not recorded
        return (
            f"{SCALING_KEY}=false: each batch ran the swept {LR_KEY} as given, none the rule's lr x batch/32"
        )
    return ""


def judge(cell: Cell) -> list[Claim]:
    """One claim per norm and batch size, the swept lrs compared within it."""
    lr = _swept_lr(cell.res)
    check = lambda r: linear_rule(r, cell.metric, lr, cell.opts)  # noqa: E731
    return [
        claim
        for _, runs in groups(cell.runs, [NORM_KEY, BATCH_SIZE_KEY])
        for claim in judge_each(runs, check, [()])
    ]


def _not_swept(res: Results) -> str:
    return "" if LR_KEY in res.swept and len(res.done) else f"the grid does not sweep {LR_KEY}"


CLAIM = ClaimSpec(
    title=lambda opts: LINEAR_RULE.format(norm="*", batch="*"),
    judge=judge,
    scope=Scope("the linear lr rule", _not_swept, listed=False),
    pools=(LR_KEY,),
    design=_design,
)


def linear_rule_claims(res: Results, metric: str, opts: ClaimOptions) -> list[Claim]:
    """One :func:`linear_rule` claim per norm and batch size (and cell of the other swept keys)
    of a grid that sweeps ``optim.lr``; none otherwise."""
    return judge_claims(res, metric, opts, [CLAIM])
