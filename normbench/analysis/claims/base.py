"""What every claim shares: the verdict type, the entry a claim declares in the table, the
wording of numbers, the one-sided tests with their planning line, and runs that did not learn."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from normbench.analysis.load import Results
from normbench.analysis.stats import (
    BATCH_SIZE_KEY,
    CONFIDENCE,
    LEARNED_KEY,
    NORM_KEY,
    SEED_KEY,
    Difference,
    difference_unit,
    natural_key,
    seeds_needed,
    variants,
)
from normbench.analysis.stats import scale as metric_scale

if TYPE_CHECKING:  # options.py reads the table, whose modules import this one
    from normbench.analysis.claims.options import ClaimOptions, Option

PASS, FAIL, INCONCLUSIVE, NOT_APPLICABLE = "PASS", "FAIL", "INCONCLUSIVE", "NOT APPLICABLE"
MISSING_PREFIX = "missing data:"
NOT_LEARNED_PREFIX = "runs that did not learn:"


@dataclass(frozen=True)
class Claim:
    name: str
    verdict: str  # PASS, FAIL, INCONCLUSIVE or NOT APPLICABLE
    evidence: str  # the numbers behind the verdict, or what is missing
    rule: str  # when the claim passes or fails, test and thresholds included
    context: str = ""  # the cell of the other swept keys, e.g. "model.name=resnet"
    effect: str = ""  # the deciding difference with its interval, for the claims table
    n: str = ""  # the seeds it rests on: "3 pairs", "3 vs 2 seeds"
    # the published effect scaled to this task, and whether the claim's interval excludes it
    published: str = ""
    # the deciding estimate, signed so that larger leans toward PASS (NaN: none): which side
    # a run that did not learn pushes the claim to (:func:`counting_unlearned`)
    lean: float = math.nan


# ---------------------------------------------------------------- a claim's entry in the table


@dataclass(frozen=True)
class Cell:
    """Where a claim is judged: the finished runs of one cell of the swept keys other than
    norm, batch size and seed (and the keys the claim pools), with the whole grid beside."""

    res: Results
    runs: pd.DataFrame
    metric: str  # lower is better (:func:`lower_is_better`)
    opts: ClaimOptions


@dataclass(frozen=True)
class Domain:
    """The runs a claim is about, decided by the layout the model's registry entry declares
    (``ModelSpec.layout``), not by model names: a new convolutional model joins by registering."""

    what: str  # "convolutional image models"
    layouts: tuple[str, ...] = ()  # the model layouts it covers; () = any model
    every: bool = True  # every run's model must be covered (else one is enough)
    why_not: str = "the claim is about {domain}"  # the not-applicable line: {domain}, {models}

    @property
    def text(self) -> str:
        """ "convolutional image models (model.name: resnet)": the registered models it covers."""
        if not self.layouts:
            return self.what
        from normbench.models import MODELS  # here: the registry imports torch; most claims need none

        names = sorted(name for name, spec in MODELS.items() if spec.layout in self.layouts)
        return f"{self.what} (model.name: {', '.join(names)})"

    def not_applicable(self, runs: pd.DataFrame) -> str:
        """ "" where ``runs`` are inside the domain, else the line that says why not."""
        if not self.layouts:
            return ""
        models = sorted(runs["model.name"].dropna().astype(str).unique()) if "model.name" in runs else []
        from normbench.models import MODELS  # here: see text

        covered = [m in MODELS and MODELS[m].layout in self.layouts for m in models]
        if covered and (all(covered) if self.every else any(covered)):
            return ""
        return self.why_not.format(domain=self.text, models=", ".join(models) or "unknown")


ANY_MODEL = Domain("any model")


@dataclass(frozen=True)
class Scope:
    """What a grid must vary for a claim to be made at all: a grid that does not is "not
    designed to test" it, listed as such (``listed``) or silently left out."""

    what: str  # "the batch-size claims (BN degrades, GN flat)"
    why_not: Callable[[Results], str]  # "" where the grid tests it
    listed: bool = True


@dataclass(frozen=True)
class ClaimSpec:
    """One row of the claims table (:data:`normbench.analysis.claims.table.CLAIMS`)."""

    title: Callable[[ClaimOptions], str]  # the claim's name where it is not applicable
    judge: Callable[[Cell], list[Claim]]  # its claims in one cell (context: what it adds, e.g. "batch=8")
    options: tuple[Option, ...] = ()  # what it can be told: ClaimOptions fields, report CLI flags
    domain: Domain = ANY_MODEL
    scope: Scope | None = None
    # an option that switches the claim on (True) or off (False) whatever the domain; None: the domain decides
    switch: str | None = None
    pools: tuple[str, ...] = ()  # swept keys judged within the claim rather than split into cells
    # why the grid's design cannot answer it at all ("" where it can): NOT APPLICABLE, said once
    design: Callable[[Results, ClaimOptions], str] | None = None


# ---------------------------------------------------------------- numbers as text


def num(x: float, scale: float = 100.0, signed: bool = False, decimals: int = 2) -> str:
    if x is None or np.isnan(x):
        return "n/a"
    return f"{x * scale:+.{decimals}f}" if signed else f"{x * scale:.{decimals}f}"


def p_text(p: float) -> str:
    return "n/a" if np.isnan(p) else f"{p:.3g}"


def effect_text(what: str, d: Difference, scale: float, unit: str, confidence: float = CONFIDENCE) -> str:
    """ "batch=2 - batch=32: +5.31 [+3.10, +7.52] points (95% CI)"; steps without decimals."""
    low, high = d.interval(confidence)
    k = 0 if unit == "steps" else 2
    return (
        f"{what}: {num(d.diff, scale, True, k)} [{num(low, scale, True, k)}, {num(high, scale, True, k)}] "
        f"{unit} ({confidence:.0%} CI)"
    )


def lower_is_better(metric: str) -> str:
    """The claims are about errors (lower is better): ``test/accuracy`` is judged as
    ``test/error`` (1 - accuracy, a column beside every accuracy, see load.add_derived), so
    "degrades" and the published order keep their direction."""
    return metric[: -len("accuracy")] + "error" if metric.endswith("/accuracy") else metric


@dataclass(frozen=True)
class Units:
    """How a metric's differences are shown and tested: points or the metric's own unit, the
    margin in the metric's scale, and the level of the interval a one-sided test decides on."""

    scale: float
    unit: str
    margin: float
    level: float


def units(metric: str, opts: ClaimOptions) -> Units:
    scale = metric_scale(metric)
    return Units(scale, difference_unit(metric), opts.margin_pp / scale, 1 - 2 * opts.alpha)


def fewest(diffs: Sequence[Difference]) -> str:
    """The n text of the comparison with the fewest seeds: what a verdict over several rests on."""
    return min((d.n_text for d in diffs), key=lambda t: int(t.split()[0]))


# ---------------------------------------------------------------- the cells a claim compares


def by_batch(runs: pd.DataFrame, label: str, metric: str) -> dict[object, pd.DataFrame]:
    """``label``'s runs that measured ``metric``, per batch size, smallest first."""
    if metric not in runs:  # no run measured it (every run diverged): missing data, said so
        return {}
    rows = runs[(runs[NORM_KEY] == label) & pd.to_numeric(runs[metric], errors="coerce").notna()]
    return {b: g for b, g in sorted(rows.groupby(BATCH_SIZE_KEY), key=lambda kv: natural_key(kv[0]))}


def largest_batch(runs: pd.DataFrame) -> object | None:
    """The largest batch size run, "32" above "8" as text too; None where none is recorded."""
    batches = runs[BATCH_SIZE_KEY].dropna().unique() if BATCH_SIZE_KEY in runs else []
    return max(batches, key=natural_key) if len(batches) else None


# ---------------------------------------------------------------- tests and planning


ABOVE_0 = ("one-sided p (above 0)", "one-sided p (below the margin)")  # how ``one_sided`` names its p values


def one_sided(
    d: Difference,
    u: Units,
    opts: ClaimOptions,
    passes: tuple[str, float],
    fails: tuple[str, float],
    target: str,
    words: tuple[str, str] = ABOVE_0,
) -> tuple[str, str]:
    """(verdict, "<words[0]> = p, <words[1]> = p") of one difference: PASS where the test
    ``passes`` (alternative, null) rejects at alpha, else FAIL where ``fails`` does, else
    INCONCLUSIVE with the seeds that would resolve ``target`` at the margin."""
    p_pass, p_fail = d.p_value(*passes), d.p_value(*fails)
    verdict = PASS if p_pass < opts.alpha else FAIL if p_fail < opts.alpha else INCONCLUSIVE
    text = f"{words[0]} = {p_text(p_pass)}, {words[1]} = {p_text(p_fail)}"
    if verdict == INCONCLUSIVE:
        needed = d.seeds_needed(u.margin, opts.alpha, opts.power)
        text += "; " + power_line(needed, d.sd, target, u.scale, u.unit, opts)
    return verdict, text


def power_line(
    needed: int | None, sd: float, target: str, scale: float, unit: str, opts: ClaimOptions
) -> str:
    """One line for planning the next run, not evidence: how many seeds would resolve
    ``target`` (a stated effect size) if one seed's difference spread as it did here."""
    if sd == 0:
        return "planning: the difference is the same in every seed: no spread to plan more seeds from"
    if not sd > 0:
        return "planning: needs 2+ seeds per cell to estimate how many would resolve it"
    spread = f"{num(sd, scale, decimals=0 if unit == 'steps' else 2)} {unit}"
    head = (
        f"planning, not evidence: to resolve {target} with one seed's difference spread as here (SD {spread})"
    )
    if needed is None:
        return f"{head}, more than 1000 seeds per cell would be needed for {opts.power:.0%} power"
    return f"{head}, about {needed} seeds per cell give {opts.power:.0%} power (noncentral t)"


def plan_all(
    diffs: Sequence[Difference],
    target: str,
    u: Units,
    opts: ClaimOptions,
    equivalence: bool = False,
    alpha: float | None = None,
) -> str:
    """The planning line of a verdict the comparisons decide together: the widest spread
    decides; ``alpha``: the level each test is held to, where it is not the claims' own."""
    sd = max((d.sd for d in diffs if d.testable), default=np.nan)
    paired = all(d.paired for d in diffs)
    level = opts.alpha if alpha is None else alpha
    needed = seeds_needed(sd, u.margin, paired=paired, alpha=level, power=opts.power, equivalence=equivalence)
    return power_line(needed, sd, target, u.scale, u.unit, opts)


def every_one(
    diffs: Sequence[Difference],
    inside: Sequence[float],
    outside: Sequence[float],
    evidence: str,
    missing_at: str,
    target: str,
    u: Units,
    opts: ClaimOptions,
    equivalence: bool = False,
) -> tuple[str, str]:
    """(verdict, evidence) of a claim every comparison must support (an intersection-union
    test: each at alpha already holds the level, so ``inside`` is not corrected): FAIL where
    one is resolved beyond the margin (``outside``, Holm-corrected by the caller), PASS where
    every one is resolved inside it, else INCONCLUSIVE with its planning line; ``missing_at``
    names where a comparison had too few seeds."""
    if any(p < opts.alpha for p in outside):
        return FAIL, evidence
    testable = all(d.testable for d in diffs)
    if testable and all(p < opts.alpha for p in inside):
        return PASS, evidence
    if not testable:
        evidence = f"{MISSING_PREFIX} fewer than 2 seeds at {missing_at}; {evidence}"
    return INCONCLUSIVE, evidence + "; " + plan_all(diffs, target, u, opts, equivalence)


def difference_claim(
    name: str, verdict: str, rule: str, d: Difference, effect: str, tests: str, published: str, lean: float
) -> Claim:
    """The claim one difference decides: its effect, method, seeds and tests as evidence."""
    evidence = f"{effect}, {d.method} ({d.n_text}), {tests}"
    return Claim(name, verdict, evidence, rule, effect=effect, n=d.n_text, published=published, lean=lean)


# ---------------------------------------------------------------- runs that did not learn


def _not_learned(rows: pd.DataFrame) -> str:
    """ "norm=batch batch=2 seed=1 (accuracy at chance)" for the runs that did not learn."""
    if LEARNED_KEY not in rows:
        return ""
    bad = rows[~rows[LEARNED_KEY].astype(bool)]
    notes = []
    for _, r in bad.iterrows():
        why = r.get("learned_note")
        notes.append(
            f"norm={r[NORM_KEY]} batch={r.get(BATCH_SIZE_KEY)} seed={r.get(SEED_KEY)}"
            + (f" ({why})" if isinstance(why, str) and why else "")
        )
    return "; ".join(notes)


def _learned(runs: pd.DataFrame) -> pd.Series:
    return runs[LEARNED_KEY].fillna(True).astype(bool) if LEARNED_KEY in runs else pd.Series(True, runs.index)


def counting_unlearned(check: Callable[[pd.DataFrame], Claim], runs: pd.DataFrame) -> Claim:
    """``check(runs)`` with the runs that did not learn counted on the side they support.

    A run at chance is evidence that its own cell is worse (BN at batch 2 at chance is the
    strongest case of "BN degrades"), but it is a second mode, which a t interval over seeds
    does not model: the verdict comes from the runs that learned, and the runs that did not
    then confirm it (with them as measured the estimate leans further toward the verdict:
    ``Claim.lean``) or go against it (INCONCLUSIVE). Where they alone resolve a claim the runs
    that learned leave open, that verdict stands, said to rest on them. Each case is named in
    the evidence; their share per cell is the report's failure-rate table."""
    claim = check(runs)
    learned = _learned(runs)
    if learned.all() or claim.verdict == NOT_APPLICABLE:
        return claim
    used = [
        i
        for i in runs.index[~learned]
        if len(runs) == 1 or check(runs.drop(index=i)).evidence != claim.evidence
    ]
    if not used:
        return claim
    if learned.sum() == 0:  # no run learned: nothing to read the claim from (a claim may need a run)
        evidence = f"{NOT_LEARNED_PREFIX} {_not_learned(runs)} (every run: no verdict)"
        evidence += f"; as measured: {claim.evidence}"
        return replace(claim, verdict=INCONCLUSIVE, evidence=evidence)
    clean = check(runs.drop(index=used))
    verdict, how = _unlearned_verdict(clean, claim)
    evidence = (
        f"{NOT_LEARNED_PREFIX} {_not_learned(runs.loc[used])} ({how}); runs that learned: {clean.evidence}; "
        f"with those runs as measured: {claim.verdict}"
    )
    return replace(clean, verdict=verdict, evidence=evidence)


def _unlearned_verdict(clean: Claim, measured: Claim) -> tuple[str, str]:
    """(verdict, why) from the claim on the runs that learned and on all runs as measured."""
    if clean.verdict == measured.verdict:
        return clean.verdict, f"{clean.verdict} with or without them"
    if clean.verdict == INCONCLUSIVE:
        return measured.verdict, "counted as measured they resolve it: the verdict rests on them"
    toward = measured.lean - clean.lean
    supports = toward >= 0 if clean.verdict == PASS else toward <= 0
    if supports:
        return clean.verdict, f"they lean toward {clean.verdict}: counted on its side"
    return INCONCLUSIVE, f"they go against {clean.verdict}: not resolved with them"


def label_pairs(runs: pd.DataFrame, first: str, second: str) -> list[tuple[str, str]]:
    """Every (label of ``first``, label of ``second``) that ``runs`` hold."""
    return [(a, b) for a in variants(runs, first) for b in variants(runs, second)]


def judge_each(runs: pd.DataFrame, check: Callable[..., Claim], cases: Sequence[tuple]) -> list[Claim]:
    """``check(runs, *case)`` per case (a label, a pair of labels, ...), runs that did not
    learn counted on their side: the claims one table entry makes in one cell."""
    return [counting_unlearned(lambda r, case=case: check(r, *case), runs) for case in cases]


def each_label(cell: Cell, norm: str, title: str, check: Callable[[pd.DataFrame, str], Claim]) -> list[Claim]:
    """``check(runs, label)`` per label of ``norm`` in the grid, whatever their status (a claim
    about "group" judges "group8" and "group(num_groups=2)" each on its own); NOT APPLICABLE
    where the grid never ran it."""
    labels = variants(cell.res.runs, norm)
    if not labels:
        return [Claim(title.format(norm), NOT_APPLICABLE, f"norm={norm} is not in this grid", "")]
    return judge_each(cell.runs, check, [(label,) for label in labels])
