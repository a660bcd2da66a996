"""The published effect sizes, scaled to this task, against a claim's interval: a claim that
resolves nothing can still rule out an effect as large as the paper's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from normbench.analysis import reference
from normbench.analysis.claims.base import num
from normbench.analysis.stats import (
    BATCH_SIZE_KEY,
    NORM_KEY,
    Difference,
    is_proportion,
    paper_names,
    seed_values,
)

NO_PUBLISHED = "none published"


def against_published(expected: float, how: str, d: Difference, level: float, scale: float, unit: str) -> str:
    """ "+4.31 points (GN paper: x1.47 from batch 32 to 2, at this task's 9.18%): excluded by
    the 90% CI": the published effect scaled to this task, and whether the interval of ``d``
    leaves it out (a claim that resolves nothing can still rule out the published size)."""
    low, high = d.interval(level)
    text = f"{num(expected, scale, True)} {unit} ({how})"
    if np.isnan(low) or np.isnan(high):
        return f"{text}: no interval here to compare"
    inside = low <= expected <= high
    return f"{text}: {'inside' if inside else 'excluded by'} the {level:.0%} CI"


def _relative(table: dict, x: object, y: object) -> float | None:
    """table[x] / table[y] - 1 where the paper has both keys (batch sizes as ints), else None."""
    try:
        x, y = int(x), int(y)
    except (TypeError, ValueError):
        return None
    return table[x] / table[y] - 1 if x in table and y in table else None


def published_degradation(
    runs: pd.DataFrame, label: str, small: object, large: object, d: Difference, metric: str, level: float
) -> str:
    """The GN paper's relative change of ``label``'s norm from batch ``large`` to ``small``
    (Figure 1), applied to this task's error at ``large``, against the interval of ``d``."""
    table = reference.GN_PAPER_ERROR_VS_BATCH.get(paper_names(runs).get(label, ""))
    rise = _relative(table, small, large) if table and is_proportion(metric) else None
    if rise is None:
        return f"{NO_PUBLISHED} for this norm, metric and pair of batch sizes"
    how = f"GN paper x{1 + rise:.2f} from batch {large} to {small}, at this task's {num(d.b.mean())}%"
    return against_published(d.b.mean() * rise, how, d, level, 100.0, "points")


def published_gap(
    runs: pd.DataFrame, first: str, second: str, d: Difference, metric: str, level: float
) -> str:
    """The GN paper's Table 1 gap between two norms at 32 images per GPU, as a relative change
    of ``first``'s error, applied to this task's error of ``first`` (``d`` = second - first)."""
    papers = paper_names(runs)
    table = reference.GN_PAPER_ERROR_AT_32
    one, two = papers.get(first, ""), papers.get(second, "")
    if not is_proportion(metric) or one not in table or two not in table:
        return f"{NO_PUBLISHED} for this pair and metric"
    rise = table[two] / table[one] - 1
    how = f"GN paper Table 1: {table[two]:g} vs {table[one]:g}, x{1 + rise:.3f}"
    how += f" at this task's {num(d.b.mean())}%"
    return against_published(d.b.mean() * rise, how, d, level, 100.0, "points")


def published_did(
    runs: pd.DataFrame,
    bn: str,
    gn: str,
    small: object,
    large: object,
    d: Difference,
    metric: str,
    level: float,
) -> str:
    """The GN paper's BN and GN relative changes between the two batch sizes, each applied to
    this task's error of that norm at the larger batch, their difference against ``d``."""
    papers = paper_names(runs)
    tables = [reference.GN_PAPER_ERROR_VS_BATCH.get(papers.get(x, "")) for x in (bn, gn)]
    rises = [_relative(t, small, large) if t and is_proportion(metric) else None for t in tables]
    if None in rises:
        return f"{NO_PUBLISHED} for these norms, metric and pair of batch sizes"
    base = [
        float(seed_values(runs[(runs[NORM_KEY] == x) & (runs[BATCH_SIZE_KEY] == large)], metric).mean())
        for x in (bn, gn)
    ]
    expected = base[0] * rises[0] - base[1] * rises[1]
    how = f"GN paper: BN x{1 + rises[0]:.2f}, GN x{1 + rises[1]:.2f} from batch {large} to {small}"
    how += ", at this task's errors"
    return against_published(expected, how, d, level, 100.0, "points")
