"""Judging a list of table entries on a results tree: per cell of the swept keys other than
norm, batch size and seed, each entry where its scope, design and domain let it."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

from normbench.analysis.claims.base import NOT_APPLICABLE, Cell, Claim, ClaimSpec, Domain
from normbench.analysis.claims.options import ClaimOptions
from normbench.analysis.load import Results
from normbench.analysis.stats import contexts


def judge_claims(res: Results, metric: str, opts: ClaimOptions, specs: Sequence[ClaimSpec]) -> list[Claim]:
    """The claims of ``specs`` in table order, cell by cell. Entries that pool the same swept
    keys are judged together per cell (a cell's claims stay together in the report); a grid
    the entry's scope leaves out gets none; one whose design cannot answer it, one NOT
    APPLICABLE line."""
    found: list[Claim] = []
    for pooled, group in itertools.groupby(specs, key=lambda s: s.pools):
        made = [
            s for s in group if not _switched_off(s, opts) and (s.scope is None or not s.scope.why_not(res))
        ]
        undesigned = {id(s): s.design(res, opts) if s.design else "" for s in made}
        found += [
            Claim(s.title(opts), NOT_APPLICABLE, undesigned[id(s)], "") for s in made if undesigned[id(s)]
        ]
        judged = [s for s in made if not undesigned[id(s)]]
        for context, runs in contexts(res.done, [k for k in res.swept if k not in pooled]):
            cell = Cell(res, runs, metric, opts)
            found += [_in(context, c) for c in _judge_cell(cell, judged)]
    return found


def _switched_off(spec: ClaimSpec, opts: ClaimOptions) -> bool:
    """An entry switched off is said nowhere: not even that its grid could not answer it."""
    return spec.switch is not None and getattr(opts, spec.switch) is False


def _in_scope(spec: ClaimSpec, res: Results) -> bool:
    return spec.scope is None or not spec.scope.why_not(res)


def _in(context: str, claim: Claim) -> Claim:
    """The claim placed in its cell: "model.name=rnn, batch=8" where it adds "batch=8"."""
    return replace(claim, context=", ".join(x for x in (context, claim.context) if x))


def _judge_cell(cell: Cell, specs: Sequence[ClaimSpec]) -> list[Claim]:
    """Each entry's claims here; outside its domain, one NOT APPLICABLE line per domain (the
    entries that share one are not applicable for one reason)."""
    found: list[Claim] = []
    said: list[Domain] = []
    for spec in specs:
        why = _outside(spec, cell)
        if why is None:
            found += spec.judge(cell)
        elif why and spec.domain not in said:
            said.append(spec.domain)
            found.append(Claim(spec.title(cell.opts), NOT_APPLICABLE, why, ""))
    return found


def _outside(spec: ClaimSpec, cell: Cell) -> str | None:
    """None where the entry is judged in this cell; "" where it is switched off (said
    nowhere); else why its domain leaves these runs out."""
    switch = getattr(cell.opts, spec.switch) if spec.switch else None
    if switch is not None:
        return None if switch else ""
    return spec.domain.not_applicable(cell.runs) or None
