"""The report's published numbers beside the runs' own: which table applies to which grid, and
that its cells are the papers' numbers and these runs' means, each where it belongs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fake_results import write_run, write_sweep

from normbench.analysis import figures, load
from normbench.analysis.load import Results
from normbench.report.build import document
from normbench.report.options import Options
from normbench.report.published import published_section

PAPER = "published: paper, ImageNet ResNet-50, top-1 error (%)"
CIFAR = "published: CIFAR-10 reproduction, test accuracy (%)"


def _error(norm: str, batch: int, seed: int) -> float:
    """Test error in percent: 10 + seed, so a cell of seeds 1 and 2 has mean 11.5."""
    return 10.0 + seed


@pytest.fixture(scope="module")
def group_sweep(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """experiment=group_sweep's grid: GN at batch 32 with 1, 2, 16 groups, seeds 1 and 2."""
    root = tmp_path_factory.mktemp("group_sweep")
    for groups in (1, 2, 16):
        for seed in (1, 2):
            overrides = [f"norm.num_groups={groups}", f"seed={seed}"]
            run = root / f"norm.num_groups={groups},seed={seed}"
            write_run(run, "group", 32, seed, error=_error, norm__num_groups=groups, overrides=overrides)
    return load(root)


def _tables(blocks: list) -> dict[str, pd.DataFrame]:
    return {b.caption.split(":")[0]: b.content for b in blocks if b.kind == "table"}


@pytest.mark.slow
def test_group_sweep_report_shows_table_3_beside_its_own_error(group_sweep: Results, tmp_path: Path) -> None:
    # the whole report's blocks: the section stands between the differences and the figures
    everything = document(group_sweep, Options(), tmp_path, tmp_path).blocks
    heads = [i for i, b in enumerate(everything) if b.kind == "h2"]
    start = next(i for i in heads if everything[i].content == "Published numbers beside these runs")
    blocks = everything[start : heads[heads.index(start) + 1]]
    assert everything[heads[heads.index(start) + 1]].content == "Figures"
    assert everything[heads[heads.index(start) - 1]].content.startswith("Differences against")
    (table,) = _tables(blocks).values()
    rows = {g: r for g, r in zip(table["norm.num_groups"], table.to_dict("records"), strict=True)}
    # every row of the paper's Table 3, as published, at 32 images per GPU
    paper = {g: rows[g][PAPER] for g in (64, 32, 16, 8, 4, 2, 1)}
    assert paper == {64: "24.6", 32: "24.1", 16: "24.6", 8: "24.4", 4: "24.6", 2: "24.7", 1: "25.3"}
    assert set(table["batch"]) == {32}
    # ours: test error of seeds 1 and 2 (11% and 12%), mean 11.5 with its t interval
    ours = "these runs: test/error (%)"
    assert rows[16][ours].startswith("11.50 [") and rows[16][ours].endswith("] n=2")
    assert rows[1][ours] == rows[16][ours] and rows[64][ours] == rows[32][ours] == "-"
    text = " ".join(b.content for b in blocks if b.kind == "p")
    assert "not expected to match" in text and "synthetic" in text
    (figure,) = [b for b in blocks if b.kind == "figure"]
    assert figure.content["png"] == tmp_path / "groups.png" and figure.content["png"].stat().st_size > 1000
    assert "Table 3" in figure.caption and "not produced by these runs" in figure.caption


def test_group_figure_draws_ours_and_the_papers_curve_apart(group_sweep: Results) -> None:
    runs = group_sweep.done.astype({"norm.num_groups": int})
    fig = figures.groups_vs_paper(runs, "norm.num_groups", figures.NEUTRAL)
    ours, paper = fig.axes
    assert paper.get_title().startswith("PUBLISHED (not these runs)")
    (curve,) = paper.get_lines()
    assert curve.get_label() == "paper, ImageNet ResNet-50"
    table_3 = {64: 24.6, 32: 24.1, 16: 24.6, 8: 24.4, 4: 24.6, 2: 24.7, 1: 25.3}  # the paper's
    assert dict(curve.get_xydata().tolist()) == table_3
    # ours: the mean line at 1, 2 and 16 groups, 11.5% each (seeds 1 and 2: 11% and 12%)
    mean = ours.get_lines()[0].get_xydata().tolist()
    assert mean == [[1.0, 11.5], [2.0, 11.5], [16.0, 11.5]]
    spans = [ax.get_ylim()[1] - ax.get_ylim()[0] for ax in (ours, paper)]
    assert spans[0] == pytest.approx(spans[1]) and spans[1] > 25.3 - 24.1  # same scale, no zoom


def test_no_published_table_where_the_grid_repeats_no_paper_comparison(tmp_path: Path) -> None:
    # norms and batch sizes on the synthetic task, GN at one group count: nothing to set beside
    res = load(write_sweep(tmp_path, norms=("batch", "group"), batches=(2, 32), seeds=(1,)))
    assert published_section(res.done, tmp_path) == []


def test_runs_without_the_compared_metric_get_no_table_and_no_error(tmp_path: Path) -> None:
    # a group-count sweep and a batch_renorm run on CIFAR-10 that logged only their train loss
    for groups in (1, 2):
        write_run(tmp_path / f"g{groups}", "group", 32, 0, norm__num_groups=groups, data__name="cifar10")
    write_run(tmp_path / "br", "batch_renorm", 4, 0, data__name="cifar10")
    for path in tmp_path.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        summary["final"] = {"train/loss": summary["final"]["train/loss"]}
        path.write_text(json.dumps(summary))
    done = load(tmp_path).done
    assert len(done) == 3 and "test/error" not in done
    assert published_section(done, tmp_path) == []


def test_batch_renorm_beside_the_papers_numbers_at_batch_4(tmp_path: Path) -> None:
    norms = ("batch", "batch_renorm", "group", "layer")
    res = load(write_sweep(tmp_path, norms=norms, batches=(4, 32), seeds=(1, 2), error=_error))
    tables = _tables(published_section(res.done, tmp_path))
    # BN, GN and LN at batch 32 are also a norm comparison: the paper's Table 1 beside it
    assert len(tables) == 2 and any("Table 1" in caption for caption in tables)
    table = tables["Batch renormalization beside BN and GN"]
    cells = {(r["norm"], r["batch"]): r for r in table.to_dict("records")}
    assert {k: cells[k][PAPER] for k in cells if cells[k][PAPER] != "-"} == {
        ("batch", 4): "27.3",
        ("batch_renorm", 4): "26.3",
        ("group", 4): "24.2",
    }
    assert "layer" not in set(table["norm"])  # the paper's comparison has no LN
    assert cells[("batch_renorm", 32)]["these runs: test/error (%)"].startswith("11.50 [")


def test_cifar_runs_beside_the_reproduction_by_label(tmp_path: Path) -> None:
    # GN as the small_batch presets name it (group8), on CIFAR-10, at batch 2 and 32
    group8 = {"norm__num_groups": 8, "record": {"choices": {"norm": "group8"}}}
    sweep = write_sweep(tmp_path, ("group",), (2, 32), (1, 2), error=_error, data__name="cifar10", **group8)
    res = load(sweep)
    (table,) = _tables(published_section(res.done, tmp_path)).values()
    cells = {(r["norm"], r["batch"]): r for r in table.to_dict("records")}
    assert set(cells) == {("group8", 2), ("group8", 4), ("group8", 32)}
    assert [cells[("group8", b)][CIFAR] for b in (2, 4, 32)] == ["85.8", "85.8", "85.8"]
    # accuracy, not error: 100 - 11.5
    assert cells[("group8", 2)]["these runs: test/accuracy (%)"].startswith("88.50 [")
    assert cells[("group8", 4)]["these runs: test/accuracy (%)"] == "-"


def test_runs_of_other_settings_get_a_table_each_not_one_mean_over_them(tmp_path: Path) -> None:
    # BN and GN on CIFAR-10 at two learning rates: a cell mixing lr=0.05 (error 10+seed) and
    # lr=0.1 (30+seed) is neither setting's number; each lr gets its own table, named in its caption
    for lr, offset in ((0.05, 0.0), (0.1, 20.0)):
        for norm in ("batch", "group"):
            for seed in (1, 2):
                write_run(
                    tmp_path / f"optim.lr={lr},norm={norm},seed={seed}",
                    norm,
                    32,
                    seed,
                    error=lambda n, b, s, offset=offset: 10.0 + s + offset,
                    data__name="cifar10",
                    optim__lr=lr,
                    overrides=[f"optim.lr={lr}", f"norm={norm}", f"seed={seed}"],
                )
    res = load(tmp_path)
    tables = [b for b in published_section(res.done, tmp_path, res.swept) if b.kind == "table"]
    assert len(tables) == 2
    ours = "these runs: test/accuracy (%)"
    for table, lr, mean in zip(tables, (0.05, 0.1), ("88.50 [", "68.50 ["), strict=True):
        assert f"optim.lr={lr}" in table.caption
        cells = {(r["norm"], r["batch"]): r[ours] for r in table.content.to_dict("records")}
        assert cells[("batch", 32)].startswith(mean) and cells[("batch", 32)].endswith("] n=2")


def test_a_norm_comparison_at_batch_32_is_beside_the_papers_table_1(tmp_path: Path) -> None:
    # norm_compare's grid: none and four of the paper's norms (GN as group8) at batch 32
    group8 = {"norm__num_groups": 8, "record": {"choices": {"norm": "group8"}}}
    for norm in ("none", "batch", "layer", "instance"):
        for seed in (1, 2):
            write_run(tmp_path / f"norm={norm},seed={seed}", norm, 32, seed, error=_error)
    for seed in (1, 2):
        write_run(tmp_path / f"norm=group8,seed={seed}", "group", 32, seed, error=_error, **group8)
    (table,) = _tables(published_section(load(tmp_path).done, tmp_path)).values()
    cells = {r["norm"]: r for r in table.to_dict("records")}
    assert {n: cells[n][PAPER] for n in cells} == {
        "batch": "23.6",
        "group8": "24.1",
        "instance": "28.4",
        "layer": "25.3",
    }  # no row for none: the paper's table has no network without a norm
    assert set(table["batch"]) == {32} and cells["layer"]["these runs: test/error (%)"].startswith("11.50 [")
