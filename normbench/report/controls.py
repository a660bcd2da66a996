"""The report's control sections: convergence (runs with ``train_eval_size``) and the ghost-BN
control (runs with ``norm=ghost_batch``); nothing when the runs have no such data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from normbench.analysis import controls, figures
from normbench.analysis.claims import lower_is_better
from normbench.analysis.load import Results
from normbench.analysis.stats import (
    BATCH_SIZE_KEY,
    CONFIDENCE,
    NORM_KEY,
    Difference,
    aggregate,
    contexts,
    difference_unit,
    scale,
)
from normbench.report.document import Block
from normbench.report.options import Options
from normbench.report.sections import fmt_cell, pivot_table


def convergence_section(res: Results, fig_dir: Path) -> list[Block]:
    """The eval-mode train loss per epoch (figure) and its late change per cell (table)."""
    curves = controls.train_eval_curves(res)
    fig = figures.convergence(res, curves)
    if fig is None:
        return []
    runs = controls.late_change(res)
    blocks = [
        Block("h2", "Convergence"),
        Block(
            "p",
            "Did every cell finish learning? The loss on a fixed subset of the training images, "
            "scored in eval mode after every epoch as the test set is (split train_eval, "
            "`train_eval_size`). A comparison across batch sizes at equal epochs means something "
            "only where every compared cell has flattened: the table gives each cell's change over "
            f"the last quarter of training (train_eval/loss at the last epoch minus at {controls.LATE:g} "
            "of the epochs, mean over seeds with its 95% Student-t interval); a clearly negative "
            "value is a cell still learning.",
        ),
        Block(
            "figure",
            figures.save(fig, fig_dir, "convergence"),
            "Convergence: eval-mode train loss against epoch, a panel per norm, a line per batch "
            "size, mean over seeds, band = 95% Student-t CI.",
        ),
    ]
    for context, part in contexts(runs, res.swept):
        stats = aggregate(part, controls.LATE_KEY, [NORM_KEY, BATCH_SIZE_KEY])
        if not stats["n"].sum():
            continue
        caption = "train_eval/loss, last epoch minus 3/4 of the epochs" + (f", {context}" if context else "")
        blocks.append(Block("table", pivot_table(stats, NORM_KEY, BATCH_SIZE_KEY, 1.0, signed=True), caption))
    return blocks


GHOST_RULE = (
    "Reading rule: ghost BN normalises over sub-batches of the ghost size while the optimiser "
    "still steps on the full batch. Were ghost BN of size g at the large batch as bad as BN at "
    "batch g, the noisy statistics would explain BN's small-batch degradation; were it as good "
    "as BN at the large batch, the small optimisation batch would. Differences: paired on the "
    "seeds both ran (Welch where fewer than two are shared), two-sided t-test at alpha {alpha:g}, "
    "resolved when p < alpha. An unresolved difference is not read as no difference: the "
    "reading concludes only where both differences are resolved (the share between them)."
)


def ghost_section(res: Results, opts: Options) -> list[Block]:
    """Ghost BN at the optimisation batch beside BN at the ghost sizes and at that batch, within
    each setting of the other swept keys (ghost BN on a ResNet against BN on an MLP says nothing)."""
    metric, opts = lower_is_better(opts.metric), opts.resolved(res.runs)
    blocks = []
    for context, runs in contexts(res.done, res.swept):
        stats, readings = controls.ghost_control(runs, metric, opts.claims.bn, opts.claims.alpha)
        if readings:
            blocks += _ghost_blocks(stats, readings, metric, opts, context)
    if not blocks:
        return []
    return [
        Block("h2", "Ghost-BN control: noisy statistics or small optimisation batch?"),
        Block("p", GHOST_RULE.format(alpha=opts.claims.alpha)),
        *blocks,
    ]


def _ghost_blocks(
    stats: pd.DataFrame, readings: list[controls.GhostReading], metric: str, opts: Options, context: str
) -> list[Block]:
    k = scale(metric)
    table = pd.DataFrame(
        {
            "norm": stats[NORM_KEY],
            "batch": stats[BATCH_SIZE_KEY],
            "ghost size": [str(g) if g else "-" for g in stats["ghost_size"]],
            f"{metric}{' (%)' if k == 100 else ''}": [fmt_cell(r, k) for _, r in stats.iterrows()],
        }
    )
    unit = difference_unit(metric)
    items = [
        f"norm={r.label} (ghost size {r.ghost}) at batch={r.batch}: **{r.reading}**. "
        + "; ".join(
            f"minus norm={opts.claims.bn} at batch={b}: {_diff(d, k, unit)}"
            for b, d in ((r.ghost, r.vs_small), (r.batch, r.vs_large))
        )
        + f"; share of BN's degradation: {_share(r)}"
        for r in readings
    ]
    caption = f"{metric}: ghost BN and BN, mean [95% Student-t CI] n" + (f", {context}" if context else "")
    return [Block("table", table, caption), Block("ul", items)]


def _diff(d: Difference | None, k: float, unit: str) -> str:
    if d is None:
        return "not run"
    if not d.testable:
        return f"{d.diff * k:+.2f} {unit} ({d.n_text}: no interval)"
    low, high = d.interval(CONFIDENCE)
    p = d.p_value()
    return (
        f"{d.diff * k:+.2f} [{low * k:+.2f}, {high * k:+.2f}] {unit} ({CONFIDENCE:.0%} CI, {d.method}, "
        f"{d.n_text}, p = {p:.3g})"
    )


def _share(r: controls.GhostReading) -> str:
    if r.degradation <= 0:
        return f"n/a (BN's mean at batch={r.ghost} is not above its mean at batch={r.batch}: descriptive)"
    return "n/a" if pd.isna(r.share) else f"{r.share:.0%}"
