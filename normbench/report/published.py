"""Published numbers beside these runs: one table per paper result whose set-up a grid repeats
at its own scale (the norms at batch 32, GN against the number of groups, Batch
Renormalization at a small batch, BN and GN on CIFAR-10). Each applies only where the runs
have what it compares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from normbench.analysis import figures, reference
from normbench.analysis.stats import (
    BATCH_SIZE_KEY,
    NORM_KEY,
    NORM_NAME_KEY,
    NORM_PAPER_KEY,
    aggregate,
    contexts,
    natural_key,
    scale,
)
from normbench.report.document import Block
from normbench.report.sections import fmt_cell

GROUPS_KEY = "norm.num_groups"
# The images per GPU of the published numbers: the GN paper's Table 3, and BR's comparison.
GN_PAPER_BATCH = 32
BR_PAPER_BATCH = 4

PAPER_COLUMN = "paper, ImageNet ResNet-50, top-1 error (%)"

Key = tuple[object, object]  # (row of the table: a group count or a norm label, batch size)


def beside(
    runs: pd.DataFrame, key: str, metric: str, published: Mapping[Key, float], source: str
) -> pd.DataFrame:
    """One row per (``key``, batch) that the runs or the paper have: these runs' ``metric``
    (mean [CI] n) beside the published number, "-" where one side has none."""
    stats = aggregate(runs, metric, [key, BATCH_SIZE_KEY])
    stats = stats[stats["n"] > 0]
    ours = {(r[key], r[BATCH_SIZE_KEY]): fmt_cell(r, scale(metric)) for _, r in stats.iterrows()}
    cells = sorted({*ours, *published}, key=lambda k: (natural_key(k[0]), natural_key(k[1])))
    unit = " (%)" if scale(metric) == 100 else ""
    return pd.DataFrame(
        [
            {
                key: k[0],
                BATCH_SIZE_KEY: k[1],
                f"these runs: {metric}{unit}": ours.get(k, "-"),
                f"published: {source}": f"{published[k]:.1f}" if k in published else "-",
            }
            for k in cells
        ]
    )


def _by_label(runs: pd.DataFrame, numbers: Mapping[str, Mapping[int, float]]) -> dict[Key, float]:
    """Published numbers keyed by the papers' name of a norm -> keyed by each label of that
    norm in the runs (``group8`` gets GN's number); a norm no run has gets no row."""
    labels = runs.groupby(NORM_KEY)[NORM_PAPER_KEY].first().to_dict() if len(runs) else {}
    return {
        (label, batch): value
        for label, paper in labels.items()
        for batch, value in numbers.get(paper, {}).items()
    }


def _papers(runs: pd.DataFrame, metric: str) -> set[str]:
    """The papers' names of the norms of the runs that measured ``metric`` (none: no table,
    not a failed report)."""
    if NORM_PAPER_KEY not in runs or metric not in runs:
        return set()
    return set(runs.loc[runs[metric].notna(), NORM_PAPER_KEY].dropna())


def _of(runs: pd.DataFrame, papers: Mapping[str, object] | Sequence[str]) -> pd.DataFrame:
    """The runs of the norms the papers call one of ``papers``."""
    return runs[runs[NORM_PAPER_KEY].isin(list(papers))] if NORM_PAPER_KEY in runs else runs.iloc[:0]


def groups_table(runs: pd.DataFrame, fig_dir: Path, fig_name: str = "groups") -> list[Block]:
    """GN paper Table 3: top-1 error against the number of groups, as a table and a figure;
    where the runs sweep ``norm.num_groups`` of group norm."""
    gn = _of(runs, ["GN"]) if "GN" in _papers(runs, "test/error") else runs.iloc[:0]
    if GROUPS_KEY not in gn or gn[GROUPS_KEY].nunique() < 2:
        return []
    gn = gn.dropna(subset=[GROUPS_KEY]).astype({GROUPS_KEY: int})
    paper = {(g, GN_PAPER_BATCH): v for g, v in reference.GN_PAPER_ERROR_VS_GROUPS.items()}
    table = beside(gn, GROUPS_KEY, "test/error", paper, PAPER_COLUMN)
    caption = (
        f"Group norm: test error against the number of groups, these runs beside the paper's "
        f"Table 3 ({reference.GN_PAPER}, {GN_PAPER_BATCH} images per GPU)"
    )
    note = (
        "The paper's error is nearly flat in the number of groups (24.1 at 32 groups, within "
        "0.6 points from 2 to 64, 25.3 at one group, i.e. layer norm). These runs are a small "
        "synthetic task: their level is not expected to match ImageNet's; the shape is for "
        "reading, not tested (descriptive)."
    )
    style = next(iter(figures.recorded_styles(gn, NORM_NAME_KEY).values()), figures.NEUTRAL)
    fig = figures.groups_vs_paper(gn, GROUPS_KEY, style)
    fig_caption = (
        "Figure 6. Group norm's test error against the number of groups: these runs (mean, 95% "
        f"Student-t CI, each seed as a dot) beside the paper's Table 3 ({reference.GN_PAPER}; "
        "not produced by these runs)."
    )
    return [
        Block("p", note),
        Block("table", table, caption),
        Block("figure", figures.save(fig, fig_dir, fig_name), fig_caption),
    ]


def norms_table(runs: pd.DataFrame) -> list[Block]:
    """GN paper Table 1: BN, GN, LN and IN at 32 images per GPU; where the runs compare at
    least three of them at that batch (a norm comparison, not a batch sweep of BN and GN)."""
    at_32 = _of(runs[runs[BATCH_SIZE_KEY] == GN_PAPER_BATCH], reference.GN_PAPER_ERROR_AT_32)
    if len(_papers(at_32, "test/error")) < 3:
        return []
    caption = f"The norms at batch {GN_PAPER_BATCH} beside the paper's Table 1 ({reference.GN_PAPER})"
    note = (
        "In the paper, at 32 images per GPU, BN 23.6 < GN 24.1 < LN 25.3 < IN 28.4 (ImageNet "
        "validation error): GN within 0.5 points of BN, IN 4.8 behind. These runs' levels are "
        "their own task's, not ImageNet's; compare the order and the gaps (the claim 'ordering "
        "of norms at the largest batch' tests the order)."
    )
    return _imagenet_norms(at_32, reference.GN_PAPER_ERROR_AT_32, GN_PAPER_BATCH, caption, note)


def renorm_table(runs: pd.DataFrame) -> list[Block]:
    """Batch Renormalization at 4 images per GPU, with BN and GN at that batch, as the GN
    paper reports it; where batch_renorm ran. Rows: the norms the paper has."""
    if "BRN" not in _papers(runs, "test/error"):
        return []
    compared = _of(runs, reference.BR_ERROR_AT_4)
    caption = f"Batch renormalization beside BN and GN: {reference.BR_PAPER}, {BR_PAPER_BATCH} images per GPU"
    note = (
        "In the paper, Batch Renormalization recovers part of BN's loss at 4 images per GPU "
        "(26.3 against BN's 27.3) but not all of it (GN 24.2). These runs' levels are their own "
        "task's, not ImageNet's; compare the order of the norms at a small batch."
    )
    return _imagenet_norms(compared, reference.BR_ERROR_AT_4, BR_PAPER_BATCH, caption, note)


def _imagenet_norms(
    runs: pd.DataFrame, published: Mapping[str, float], batch: int, caption: str, note: str
) -> list[Block]:
    """The note, then the runs' test error per norm beside the paper's ImageNet error of each
    norm at ``batch`` images per GPU."""
    paper = _by_label(runs, _at(published, batch))
    table = beside(runs, NORM_KEY, "test/error", paper, PAPER_COLUMN)
    return [Block("p", note), Block("table", table, caption)]


def cifar_table(runs: pd.DataFrame) -> list[Block]:
    """The public CIFAR-10 reproduction's BN and GN test accuracy per batch size; where the
    runs are on CIFAR-10. Rows: BN's and GN's labels."""
    if "data.name" not in runs or not _papers(runs[runs["data.name"] == "cifar10"], "test/accuracy"):
        return []
    cifar = _of(runs[runs["data.name"] == "cifar10"], reference.CIFAR_ACCURACY_VS_BATCH)
    paper = _by_label(cifar, reference.CIFAR_ACCURACY_VS_BATCH)
    table = beside(cifar, NORM_KEY, "test/accuracy", paper, "CIFAR-10 reproduction, test accuracy (%)")
    caption = f"CIFAR-10 test accuracy beside the {reference.CIFAR_REPRO}"
    note = (
        "The reproduction's set-up (ResNet, 100 epochs, lr 0.1 x batch / 32) is that of "
        "experiment=small_batch_cifar; a shorter or smaller run is not expected to reach its level."
    )
    return [Block("p", note), Block("table", table, caption)]


def remedies_note(runs: pd.DataFrame) -> list[Block]:
    """Where FRN or EvoNorm ran: why no published number stands beside them (SOURCES.md has
    none), and what it says of EvoNorm's result, as text."""
    measured = runs[runs["test/error"].notna()] if "test/error" in runs else runs.iloc[:0]
    present = [
        name
        for paper in reference.UNPUBLISHED
        for name in sorted(set(_of(measured, [paper])[NORM_NAME_KEY].dropna().astype(str)))
    ]
    if not present:
        return []
    note = (
        f"No published number is shown for {', '.join(present)}: the project's sources (SOURCES.md) "
        "give no number from the FRN or EvoNorm papers' ResNet-50 batch results, only the EvoNorm "
        "paper's in words. EvoNorm's Figure 1 "
        "(ResNet-50 on ImageNet over 8 workers): EvoNorm-S0 holds its accuracy as the total batch "
        "falls from 1024 to 32 while BN-ReLU falls. Descriptive: not tested here; the claims above "
        "test these runs' own flatness and gap to BN."
    )
    return [Block("p", note)]


def _at(numbers: Mapping[str, float], batch: int) -> dict[str, dict[int, float]]:
    return {name: {batch: v} for name, v in numbers.items()}


def _named(block: Block, context: str) -> Block:
    """A table or figure with its setting (``optim.lr=0.1``) after its caption."""
    if not context or block.kind not in ("table", "figure"):
        return block
    return replace(block, caption=f"{block.caption} ({context})")


def published_section(done: pd.DataFrame, fig_dir: Path, swept: Sequence[str] = ()) -> list[Block]:
    """The tables above that apply to these finished runs, under one heading; none: nothing.
    One set per setting of the ``swept`` keys other than norm, batch and seed (a mean over two
    learning rates or models is neither one's number), its captions naming it. Writes the
    group-count figure into ``fig_dir`` where it applies."""
    blocks = []
    for i, (context, runs) in enumerate(contexts(done, swept)):
        found = [
            *norms_table(runs),
            *groups_table(runs, fig_dir, f"groups_{i}" if i else "groups"),
            *renorm_table(runs),
            *remedies_note(runs),
        ]
        blocks += [_named(b, context) for b in [*found, *cifar_table(runs)]]
    if not blocks:
        return []
    head = (
        "Published numbers (not produced by these runs) beside these runs' own, where the grid "
        "repeats a paper's comparison at its own scale. Each cell of these runs: mean [95% "
        "Student-t CI] n. Descriptive: these tables test nothing; the claims above say which "
        "published effects the runs' intervals exclude."
    )
    return [Block("h2", "Published numbers beside these runs"), Block("p", head), *blocks]
