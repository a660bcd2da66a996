"""What the claims can be told: each table entry declares its options, and :class:`ClaimOptions`
holds a value for every option the table declares (report CLI, Hydra callback, tests)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from normbench.analysis.stats import ALPHA, POWER, norm_called
from normbench.errors import ConfigError

MARGIN_PP = 1.5  # points of error: what "flat" tolerates and the smallest degradation that counts


@dataclass(frozen=True)
class Option:
    """One option: a ClaimOptions field and, where ``flags`` has any, a report CLI flag."""

    name: str
    default: Any
    help: str
    type: Callable[[str], Any] = str  # how the command line's text becomes a value
    flags: tuple[str, ...] | None = None  # None: --name with dashes; (): not on the command line
    choices: Mapping[str, Any] | None = None  # command-line words and the values they mean
    valid: Callable[[Any], bool] = lambda value: True
    works: str = ""  # what ``valid`` accepts, for the error line
    norm: bool = False  # names a norm, which the runs must have when not the default
    # a norm option whose default (None) is the runs' norm the papers call this ("BN"): see
    # ClaimOptions.resolved; the analysis names no norm of ours
    paper: str = ""

    @property
    def cli_flags(self) -> tuple[str, ...]:
        return self.flags if self.flags is not None else ("--" + self.name.replace("_", "-"),)

    def check(self, value: Any) -> None:
        """An impossible option would decide verdicts silently (``alpha=2`` passes every test)."""
        if not self.valid(value):
            raise ConfigError(self.name, value, f"is out of range; use {self.works}")


def positive(value: float) -> bool:
    return 0 < value < math.inf


# Options more than one claim (or the report's controls) read, declared once.
MARGIN = Option(
    "margin_pp",
    MARGIN_PP,
    "points of error: the equivalence margin of 'flat' and the smallest degradation that counts",
    float,
    ("--margin", "--gn-tolerance"),
    valid=positive,
    works="a positive finite margin, e.g. 1.5",
)
ALPHA_OPTION = Option(
    "alpha",
    ALPHA,
    "significance level of the claims",
    float,
    valid=lambda a: 0 < a < 1,
    works="a level in (0, 1), e.g. 0.05",
)
POWER_OPTION = Option(
    "power",
    POWER,
    "the power the 'seeds needed' line aims at",
    float,
    (),
    valid=lambda p: 0 < p < 1,
    works="a probability in (0, 1), e.g. 0.8",
)
BN = Option("bn", None, "norm checked for degrading at small batch", norm=True, paper="BN")
GN = Option("gn", None, "norm checked for batch independence", flags=("--group-norm",), norm=True, paper="GN")
# Each norm against BN and each norm flat: a study of remedies asks it of every norm it runs, a
# study of the published order (norm_compare) or of BN and GN (small_batch) asks its own claims,
# which these would only repeat. Which study a grid is cannot be read from the norms' names or
# properties (a user's norm is a remedy as much as FRN), so the preset says so.
REMEDY_CLAIMS = Option(
    "remedy_claims",
    False,
    "each norm non-inferior to BN at the largest batch, and flat: on for a study of remedies "
    "(experiment=remedies sets it)",
    choices={"on": True, "off": False},
    valid=lambda value: value is True or value is False,  # a YAML "maybe" is truthy
    works="true or false (on or off on the command line)",
)
COMMON = (MARGIN, ALPHA_OPTION, POWER_OPTION)


def declared() -> dict[str, Option]:
    """Every option of the claims table, by name, in table order (each once)."""
    from normbench.analysis.claims import table  # here: the table's modules import this one

    found = {o.name: o for o in COMMON}
    for spec in table.CLAIMS:
        found.update({o.name: o for o in spec.options if o.name not in found})
    return found


class ClaimOptions:
    """Everything the claims can be told, passed whole: a value for each option the table
    declares, its default unless given. Immutable and compared by value, as a dataclass."""

    def __init__(self, **values: Any) -> None:
        options = declared()
        unknown = sorted(set(values) - set(options))
        if unknown:
            raise TypeError(f"ClaimOptions got an unexpected keyword argument {unknown[0]!r}")
        resolved = {name: values.get(name, o.default) for name, o in options.items()}
        for name, o in options.items():
            o.check(resolved[name])
            object.__setattr__(self, name, resolved[name])

    def __getattr__(self, name: str) -> Any:
        # an option declared after these options were made (a claim added to the table) reads
        # as its default, as a dataclass field added with a default would
        option = declared().get(name) if not name.startswith("_") else None
        if option is None:
            raise AttributeError(name)
        return option.default

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ClaimOptions is immutable: cannot set {name}")

    def resolved(self, runs: pd.DataFrame) -> ClaimOptions:
        """These options with each norm option left at its default (None) set to the norm the
        runs record as the one the papers call its ``paper`` ("BN" -> "batch"); where no run
        has it, to the registry's (a claim about BN on a grid without BN still names it)."""
        values = self.asdict()
        for name, o in declared().items():
            if o.paper and values[name] is None:
                values[name] = norm_called(runs, o.paper) or _registered(o.paper)
        return ClaimOptions(**values)

    def asdict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in declared()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClaimOptions) and self.asdict() == other.asdict()

    def __hash__(self) -> int:
        return hash(tuple(self.asdict().items()))

    def __repr__(self) -> str:
        return "ClaimOptions(" + ", ".join(f"{k}={v!r}" for k, v in self.asdict().items()) + ")"


def _registered(paper: str) -> str:
    """The registered norm the papers call ``paper``, for a grid that ran none (the import costs
    torch's start-up, so only those reports pay it); ``paper`` itself if none is."""
    from normbench.norms import paper_norm

    return paper_norm(paper) or paper
