"""From a results tree to tidy DataFrames, statistics and figures. Never imports the runner."""

from normbench.analysis.claims import FAIL, INCONCLUSIVE, NOT_APPLICABLE, PASS, Claim, ClaimOptions, evaluate
from normbench.analysis.load import Results, load
from normbench.analysis.stats import (
    Difference,
    aggregate,
    cell_keys,
    curve_band,
    describe,
    difference,
    holm,
    paired_differences,
    seeds_needed,
    t_interval,
)

__all__ = [
    "Claim",
    "ClaimOptions",
    "Difference",
    "FAIL",
    "INCONCLUSIVE",
    "NOT_APPLICABLE",
    "PASS",
    "Results",
    "aggregate",
    "cell_keys",
    "curve_band",
    "describe",
    "difference",
    "evaluate",
    "holm",
    "load",
    "paired_differences",
    "seeds_needed",
    "t_interval",
]
