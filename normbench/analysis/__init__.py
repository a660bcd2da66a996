"""From a results tree to tidy DataFrames, statistics and figures. Never imports the runner."""

from normbench.analysis.claims import FAIL, MISSING, PASS, Claim, evaluate
from normbench.analysis.load import Results, load
from normbench.analysis.stats import (
    aggregate,
    bootstrap_ci,
    cell_keys,
    curve_band,
    describe,
    difference_of_means,
    paired_differences,
)

__all__ = [
    "Claim",
    "FAIL",
    "MISSING",
    "PASS",
    "Results",
    "aggregate",
    "bootstrap_ci",
    "cell_keys",
    "curve_band",
    "describe",
    "difference_of_means",
    "evaluate",
    "load",
    "paired_differences",
]
