"""normbench.report: the files it writes, their content, the CLI and the Hydra callback."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fake_results import add_activations, set_curve, write_run, write_sweep
from omegaconf import OmegaConf

from normbench.analysis import ClaimOptions, aggregate, figures, load
from normbench.report import Options, ReportCallback, build_report, main
from normbench.report.document import Document
from normbench.report.render import to_markdown
from normbench.report.sections import (
    _missing_cells,
    _pick_grid_axes,
    claims_section,
    differences,
    pivot_table,
)

# its module fixtures build reports (seconds each): its tests run on one worker, which builds each once
pytestmark = pytest.mark.xdist_group("test_report")

# Anything that would make a browser fetch something: a scheme, a protocol-relative link,
# a stylesheet or script reference, a CSS url() or @import.
EXTERNAL = re.compile(
    r"(https?:|ftp:|file:)|(src|href)\s*=\s*(?![\"']?data:)|<link|<script|url\(|@import", re.IGNORECASE
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_sweep(
        tmp_path_factory.mktemp("results") / "small_batch",
        norms=("batch", "group", "layer"),
        batches=(2, 32),
        seeds=(1, 2),
    )
    write_run(root / "batch=8,norm=group,seed=1", "group", 8, 1, status="diverged")
    return root


@pytest.fixture(scope="module")
def report(sweep: Path) -> Path:
    return build_report(sweep)


@pytest.fixture(scope="module")
def cli_report(sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """The same sweep's report through the command line, elsewhere: (exit code, stdout, out
    dir). --gn-tolerance, the old name of --margin, at the default value: the report must
    equal the one of build_report (see test_report_is_reproducible)."""
    out, stdout = tmp_path_factory.mktemp("cli") / "out", io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main([str(sweep), "--out", str(out), "--gn-tolerance", "1.5"])
    return code, stdout.getvalue(), out


def markdown(blocks: list) -> str:
    """Sections as report.md shows them, without building the rest of the report."""
    return to_markdown(Document("", blocks), Path("."))


@pytest.mark.slow
def test_report_files_land_in_the_sweep_dir(sweep: Path, report: Path) -> None:
    assert report == sweep / "report.html" and (sweep / "report.md").exists()
    for stem in ("loss_curves", "small_batch", "batchstats_gap", "grid"):
        assert (sweep / "figures" / f"{stem}.png").stat().st_size > 1000
        assert (sweep / "figures" / f"{stem}.svg").stat().st_size > 1000


@pytest.mark.slow
def test_html_is_self_contained(report: Path) -> None:
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("data:image/png;base64,") == 4
    assert EXTERNAL.search(text) is None, EXTERNAL.search(text)


def test_external_link_check_would_catch_one() -> None:
    for bad in (
        '<img src="figures/a.png">',
        '<a href="https://x.org">',
        "<link rel=stylesheet>",
        "background: url(a.png)",
        "<script src=x.js>",
    ):
        assert EXTERNAL.search(bad), bad


@pytest.mark.slow
def test_report_says_what_was_run(sweep: Path, report: Path) -> None:
    md = (sweep / "report.md").read_text()
    assert "13 run(s) found" in md and "12 done, 1 diverged" in md
    assert "- norm: batch, group, layer" in md and "- batch: 2, 8, 32" in md
    assert "norm=group, batch=8: 0 of 2 seeds finished, 1 diverged" in md
    assert "| batch=8,norm=group,seed=1 | diverged |" in md


@pytest.mark.slow
def test_report_numbers_are_the_runs_numbers(sweep: Path, report: Path) -> None:
    md = (sweep / "report.md").read_text()
    stats = aggregate(load(sweep).done, "test/error", ["norm.name", "batch"])
    stats = stats.set_index(["norm.name", "batch"])
    row = stats.loc[("batch", 2)]
    cell = f"{100 * row['mean']:.2f} [{100 * row['ci_low']:.2f}, {100 * row['ci_high']:.2f}] n=2"
    assert cell in md and cell in report.read_text()
    assert "**test/error (%)**" in md and "| norm | batch=2 | batch=32 |" in md


@pytest.mark.slow
def test_report_has_differences_claims_and_provenance(sweep: Path, report: Path) -> None:
    md = (sweep / "report.md").read_text()
    assert "## Differences against norm=batch, paired by seed" in md
    assert re.search(r"\| group \| -\d+\.\d\d \[", md)  # GN below BN at batch 2
    assert "| norm=batch degrades at small batch | **PASS** | batch=2 - batch=32: +" in md
    assert "**PASS** norm=batch degrades at small batch: test/error batch=2:" in md  # the details
    assert "**generalization_gap: test/loss minus train/loss (overfitting when large)**" in md
    assert "margin +-1.5 points" in md and "95% Student-t confidence interval" in md
    assert "bootstrap" not in md
    assert "git commit: 0123456789abcdef0123456789abcdef01234567" in md and "versions.torch: 2.13.0" in md
    assert "PUBLISHED" not in md and "Wu & He" in md  # the reference is cited, labelled in the figure


@pytest.mark.slow
def test_one_seed_says_there_is_no_ci(tmp_path: Path) -> None:
    root = write_sweep(tmp_path / "one", norms=("batch", "group"), batches=(4, 32), seeds=(0,))
    md = (build_report(root, tmp_path / "out").parent / "report.md").read_text()
    assert "One seed per cell: no confidence interval" in md and "(1 seed, no CI)" in md
    assert "| norm=batch degrades at small batch | **INCONCLUSIVE** (missing data) | " in md
    assert not (root / "report.md").exists()  # --out respected


def test_broken_tree_still_gives_a_report(tmp_path: Path) -> None:
    write_run(tmp_path / "a", "batch", 4, 1, summary=False)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "summary.json").write_text("not json")
    md = (build_report(tmp_path).parent / "report.md").read_text()
    assert "No finished runs" in md and "No claim applies to this grid." in md
    assert "the batch-size claims (BN degrades, GN flat): the grid runs one batch size (4)" in md
    assert "| b | corrupt summary: JSONDecodeError |" in md


@pytest.mark.slow
def test_cli(tmp_path: Path, cli_report: tuple[int, str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err.startswith(f"error: results_dir={tmp_path / 'absent'}: not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "--out", str(tmp_path / "out")]) == 2  # no runs: no report of none
    assert "no runs under it" in capsys.readouterr().err and not (tmp_path / "out").exists()
    code, stdout, out = cli_report
    assert code == 0 and stdout.strip() == f"report: {out / 'report.html'}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("option", "line"),
    [
        (["--alpha", "2"], "error: --alpha=2.0: is out of range; use a level in (0, 1)"),  # p=0.84 passed
        (["--margin", "-1"], "error: --margin=-1.0: is out of range; use a positive finite margin"),
        (["--margin", "nan"], "error: --margin=nan: is out of range"),
        (["--smooth", "-3"], "error: --smooth=-3: is negative"),
        (["--loss-windows", "0"], "error: --loss-windows=0: is out of range"),
        (["--loss-threshold", "inf"], "error: --loss-threshold=inf: is out of range"),
        (["--metric", "nosuch"], "error: --metric=nosuch: no finished run has it; use one of "),
    ],
)
def test_cli_refuses_an_option_that_cannot_work(
    tmp_path: Path, sweep: Path, capsys: pytest.CaptureFixture[str], option: list[str], line: str
) -> None:
    """One line naming the option as typed, exit 2, and no report (nor figures/) left."""
    assert main([str(sweep), "--out", str(tmp_path / "out"), *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1
    assert not (tmp_path / "out" / "report.md").exists() and not (tmp_path / "out" / "figures").exists()
    if option[0] == "--metric":
        assert "test/error" in err


def test_hydra_callback_builds_the_report_at_multirun_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "sweep"
    write_run(root / "batch=4,norm=group,seed=1", "group", 4, 1)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(root)}}})
    ReportCallback(metric="test/loss").on_multirun_end(config=config)
    assert capsys.readouterr().out.strip() == f"report: {root / 'report.html'}"
    assert "test/loss" in (root / "report.md").read_text()


def test_callback_reports_a_failure_without_raising(capsys: pytest.CaptureFixture[str]) -> None:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": "/proc/definitely/not/writable"}}})
    ReportCallback().on_multirun_end(config=config)
    assert "no report for" in capsys.readouterr().err


@pytest.mark.slow
def test_options_reach_the_report(tmp_path: Path) -> None:
    root = write_sweep(tmp_path / "s", norms=("group", "layer"), batches=(4,), seeds=(1, 2))
    opts = Options(baseline="layer", grid_metric="test/accuracy", grid_x="batch", grid_facet="norm.name")
    md = (build_report(root, options=opts).parent / "report.md").read_text()
    assert "## Differences against norm=layer" in md and "| group | " in md
    assert "Figure 4. Final test/accuracy against batch, one panel per norm.name" in md


@pytest.mark.slow
def test_report_is_reproducible(sweep: Path, report: Path, cli_report: tuple[int, str, Path]) -> None:
    # built twice, once through the command line: the same bytes (no timestamps in the figures)
    again = cli_report[2]
    assert (again / "report.md").read_text() == (sweep / "report.md").read_text()
    assert (again / "report.html").read_text() == report.read_text()


@pytest.mark.slow
def test_activations_and_threshold_only_where_their_data_is(sweep: Path, report: Path) -> None:
    md = (sweep / "report.md").read_text()
    assert "Activations at initialisation" not in md and "activations" not in md
    assert not (sweep / "figures" / "activations.png").exists()
    # an MLP small-batch sweep: the loss-threshold claim is listed as not applicable, not judged
    assert "- norm=layer reaches the train loss threshold first: the claim is about recurrent models" in md
    assert "| norm=layer reaches the train loss threshold first" not in md


@pytest.fixture(scope="module")
def depth_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """depth_init in miniature: init x norm, 12 layers, the N(0, 1) run without BN diverged."""
    root = tmp_path_factory.mktemp("depth") / "depth_init"
    for init in ("normal", "kaiming"):
        for norm in ("none", "batch"):
            bad = (init, norm) == ("normal", "none")
            run = write_run(
                root / f"model.init={init},norm={norm}",
                norm,
                16,
                0,
                model__init=init,
                status="diverged" if bad else "done",
                overrides=[f"model.init={init}", f"norm={norm}"],
            )
            stds = [10.0**i if i < 7 else float("inf") for i in range(1, 13)] if bad else [0.6] * 12
            add_activations(run, stds)
    build_report(root)
    return root


@pytest.mark.slow
def test_report_shows_activations_at_init_with_the_diverged_run(depth_report: Path) -> None:
    md = (depth_report / "report.md").read_text()
    assert "## Activations at initialisation" in md
    assert "Includes runs that diverged later" in md and "status diverged are included here" in md
    assert "| init | norm | runs | std layer 1 | std layer 10 | std layer 12 |" in md
    assert "| normal | none | 1 (diverged) | 10 | inf | inf | 7 | 7 |" in md
    assert "| kaiming | batch | 1 | 0.6 | 0.6 | 0.6 | none | none |" in md
    assert "left out of all statistics except the activations at initialisation" in md
    assert (depth_report / "figures" / "activations.png").stat().st_size > 1000
    assert (depth_report / "report.html").read_text().count("data:image/png;base64,") == 4
    assert "Figure 2 (small_batch): not drawn, it needs finished runs with test/error at two or more" in md


@pytest.fixture(scope="module")
def rnn_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rnn_norms in miniature: LN's loss halves first at batch 8, BN's at batch 64."""
    root = tmp_path_factory.mktemp("rnn") / "rnn_norms"
    first = {
        8: {"layer": (20, 30, 20), "batch": (60, 80, 70)},
        64: {"layer": (40, 50, 40), "batch": (20, 30, 30)},
    }
    for batch, crossings in first.items():
        for norm, steps in crossings.items():
            for seed, cross in enumerate(steps):
                run = write_run(
                    root / f"batch={batch},norm={norm},seed={seed}", norm, batch, seed, model="rnn"
                )
                set_curve(run, [(s, 1.4 if s < cross else 0.5) for s in range(10, 101, 10)])
    return root


@pytest.mark.slow
def test_report_states_the_threshold_claim_per_batch(rnn_sweep: Path) -> None:
    # the claims' part of the report (test_cli_threshold_options builds a whole one of this sweep)
    md = markdown(claims_section(load(rnn_sweep), Options()))
    # each run's loss a mean over 3 log windows: the drop at step 20 is judged at 40
    assert "| norm=layer reaches the train loss threshold first (batch=8) | **PASS** |" in md
    assert (
        "**PASS** norm=layer reaches the train loss threshold first (batch=8): threshold 0.7 = "
        "0.5 x initial train loss 1.4; steps to fall below: norm=batch seeds: 80, 100, 90; "
        "norm=layer seeds: 40, 50, 40; norm=batch - norm=layer: +47 ["
    ) in md
    assert "paired t (3 pairs), p = 0.0" in md
    assert "| norm=layer reaches the train loss threshold first (batch=64) | **FAIL** |" in md
    assert "threshold = 0.5 x the train loss at the first logged step" in md
    assert "mean over the last 3 log windows" in md
    off = claims_section(load(rnn_sweep), Options(claims=ClaimOptions(threshold_claim=False)))
    assert "loss threshold" not in str(off)


@pytest.mark.slow
def test_cli_threshold_options(rnn_sweep: Path, tmp_path: Path) -> None:
    assert (
        main(
            [
                str(rnn_sweep),
                "--out",
                str(tmp_path),
                "--loss-threshold",
                "0.9",
                "--threshold-norm",
                "batch",
                "--loss-windows",
                "1",
            ]
        )
        == 0
    )
    md = (tmp_path / "report.md").read_text()
    assert "**PASS** norm=batch reaches the train loss threshold first (batch=64): threshold 0.9;" in md


def test_missing_cells_of_norm_presets_are_norms_not_a_product(tmp_path: Path) -> None:
    # norm=batch,group5,group8: num_groups exists for the group presets only; group5 failed
    for preset, groups in (("batch", None), ("group5", 5), ("group8", 8)):
        for seed in (0, 1):
            norm = "group" if groups else "batch"
            write_run(
                tmp_path / f"batch=8,norm={preset},seed={seed}",
                norm,
                8,
                seed,
                status="failed" if groups == 5 else "done",
                overrides=["batch=8", f"norm={preset}", f"seed={seed}"],
                **({"norm__num_groups": groups} if groups else {}),
            )
    lines = _missing_cells(load(tmp_path))
    assert lines == ["norm=group5: 0 of 2 seeds finished, 2 failed"]


def test_cells_no_sweep_asked_for_are_one_line_not_missing_seeds(tmp_path: Path) -> None:
    # small_batch's grid: BN at batch 2 and 32 (one sweep), LN at batch 32 only (a second sweep
    # into the same directory); BN at batch 32 lost a seed
    cells = [("batch", 2, (0, 1)), ("batch", 32, (0,)), ("layer", 32, (0, 1))]
    for norm, batch, seeds in cells:
        for seed in seeds:
            write_run(
                tmp_path / f"batch={batch},norm={norm},seed={seed}",
                norm,
                batch,
                seed,
                overrides=[f"batch={batch}", f"norm={norm}", f"seed={seed}"],
            )
    lines = _missing_cells(load(tmp_path))
    assert lines[0] == "norm=batch, batch=32: 1 of 2 seeds finished"
    assert lines[1].startswith("no run of norm=layer, batch=2 (not asked for, if the grid was several")
    assert len(lines) == 2


APP = """
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

sys.path.insert(0, {tests!r})
from fake_results import write_run



@hydra.main(version_base="1.3", config_path=".", config_name="cfg")
def main(cfg):
    write_run(Path(HydraConfig.get().runtime.output_dir), cfg.norm, cfg.batch, cfg.seed)


main()
"""

CFG = """
norm: batch
batch: 4
seed: 1
hydra:
  sweep: {dir: sweep, subdir: "${hydra.job.override_dirname}"}
  callbacks:
    report: {_target_: normbench.report.ReportCallback}
"""


def test_a_real_hydra_multirun_ends_with_a_report(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP.format(tests=str(Path(__file__).parent)))
    (tmp_path / "cfg.yaml").write_text(CFG)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "app.py", "-m", "norm=batch,group", "batch=2,8"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "report: sweep/report.html"
    assert "4 run(s) found under `sweep`: 4 done" in (tmp_path / "sweep" / "report.md").read_text()


def test_tables_list_group_counts_in_numeric_order(tmp_path: Path) -> None:
    for groups in (16, 2, 4):
        write_run(tmp_path / f"g{groups}", "group", 32, 0, norm__num_groups=groups)
    res = load(tmp_path)
    stats = aggregate(res.done, "test/error", ["norm", "batch"])
    rows = pivot_table(stats, "norm", "batch", 100.0)["norm"].tolist()
    assert rows == ["group(num_groups=2)", "group(num_groups=4)", "group(num_groups=16)"]


def test_grid_figure_never_facets_by_a_norm_key() -> None:
    from normbench.analysis.load import Results

    res = Results(runs=pd.DataFrame(), curves=pd.DataFrame(), swept=["norm.name", "reg", "seed"])
    assert _pick_grid_axes(res, Options(grid_x="reg")) == ("reg", None)  # norms are the hue
    groups = Results(runs=pd.DataFrame(), curves=pd.DataFrame(), swept=["norm.num_groups", "seed"])
    assert _pick_grid_axes(groups, Options()) == ("norm.num_groups", None)  # still an x axis


@pytest.fixture(scope="module")
def group8_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """small_batch's norms as its preset names them: norm=batch,group8 on a ResNet, the choice
    recorded in summary.json; one BN run at batch 2 did not learn."""
    root = tmp_path_factory.mktemp("g8") / "small_batch"
    for preset in ("batch", "group8", "layer"):
        for batch in (2, 32):
            for seed in (0, 1, 2):
                norm = "group" if preset == "group8" else preset
                record: dict = {"choices": {"norm": preset, "model": "resnet"}}
                if (preset, batch, seed) == ("batch", 2, 1):
                    record |= {"learned": False, "learned_note": "test accuracy within 2 points of chance"}
                write_run(
                    root / f"batch={batch},norm={preset},seed={seed}",
                    norm,
                    batch,
                    seed,
                    model="resnet",
                    overrides=[f"batch={batch}", f"seed={seed}"],  # the preset chose the norm
                    record=record,
                    **({"norm__num_groups": 8} if preset == "group8" else {}),
                )
    build_report(root)
    return root


def _md_tables(md: str) -> list[list[str]]:
    """Each Markdown table of a report as its lines."""
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


@pytest.mark.slow
def test_group8_is_named_as_chosen_in_every_table_figure_and_claim(group8_sweep: Path) -> None:
    md = (group8_sweep / "report.md").read_text()
    # every table by norm, except test_batchstats/error: only BN has batch statistics
    norm_tables = [t for t in _md_tables(md) if t[0].startswith("| norm |") and len(t) > 3]
    assert len(norm_tables) >= 6  # results, noise, losses, gap, throughput, differences
    for table in norm_tables:
        assert any(row.startswith("| group8 |") for row in table), table
    assert "| group |" not in md and "norm=group " not in md
    assert "| norm=group8 is batch-size independent | **" in md
    assert "norm=group8 - norm=batch: " in md  # the ordering's pairs
    assert "- norm: batch, group8, layer" in md
    res = load(group8_sweep)
    bases = {"group8": "group", "batch": "batch", "layer": "layer"}
    styles = figures.norm_styles(res.runs["norm"], bases, figures.recorded_styles(res.runs, "norm"))
    assert styles["group8"].color == figures.recorded_styles(res.runs, "norm.name")["group"].color
    for fig in (
        figures.small_batch(res, styles),
        figures.loss_curves(res, styles),
        figures.grid(res.done, "train/loss", "batch", styles),
    ):
        legend = fig.axes[0].get_legend_handles_labels()[1]
        assert any(text.startswith("group8") for text in legend), legend
    tex = (group8_sweep / "report.tex").read_text()
    assert "norm=group8 is batch-size independent & INCONCLUSIVE" in tex and "\ngroup8 & " in tex


@pytest.mark.slow
def test_figures_show_each_seeds_point(group8_sweep: Path) -> None:
    res = load(group8_sweep)
    fig = figures.small_batch(res, figures.norm_styles(res.runs["norm"]))
    dots = [c for c in fig.axes[0].collections if len(c.get_offsets()) == 6]  # 3 seeds x 2 batches
    assert len(dots) == 3  # one scatter per norm, every seed's value
    values = sorted(y for c in dots for y in c.get_offsets()[:, 1])
    assert values == pytest.approx(sorted(100 * res.done["test/error"]))


@pytest.mark.slow
def test_report_marks_runs_that_did_not_learn(group8_sweep: Path) -> None:
    md = (group8_sweep / "report.md").read_text()
    results = next(t for t in _md_tables(md) if t[0].startswith("| norm | batch=2 |"))
    assert next(r for r in results if r.startswith("| batch |")).split("|")[2].strip().endswith("n=3 †")
    assert "- norm=batch, batch=2, seed=1: test accuracy within 2 points of chance" in md
    assert "| norm=batch degrades at small batch | **PASS** (counts runs that did not learn) |" in md
    # the failure rate per cell, with its own exact interval: 1 of 3 (Clopper-Pearson 0.8-90.6%)
    rates = next(t for t in _md_tables(md) if "1/3 = 33% [0.8, 90.6]" in "".join(t))
    assert (
        next(r for r in rates if r.startswith("| batch |")).split("|")[2].strip() == "1/3 = 33% [0.8, 90.6]"
    )
    assert "Clopper-Pearson" in md and "excluded by the interval?" in md


@pytest.mark.slow
def test_report_states_noise_and_interval_method_and_writes_latex(group8_sweep: Path) -> None:
    md = (group8_sweep / "report.md").read_text()
    assert "95% Student-t confidence interval of the mean" in md
    # fake runs: test size 256; BN at batch 32 about 14% error: sqrt(.14 x .86 / 256) = 2.2 points
    noise = next(t for t in _md_tables(md) if "/" in t[2] and t[0].startswith("| norm |"))
    cell = next(r for r in noise if r.startswith("| batch |")).split("|")[3].strip()
    sd, se = (float(x) for x in cell.split(" / "))
    assert se == pytest.approx(100 * math.sqrt(0.14 * 0.86 / 256), abs=0.1) and sd < se
    assert md.index("## Claims") < md.index("## What was run") < md.index("## Figures")
    tex = (group8_sweep / "report.tex").read_text()
    assert tex.count("\\begin{tabular}") == len(_md_tables(md)) and "\\toprule" in tex
    assert "\\dag{}" in tex and "95\\% CI" in tex
    for stem in ("small_batch", "loss_curves", "grid"):
        assert (group8_sweep / "figures" / f"{stem}.svg").read_bytes().count(b"<svg") == 1


@pytest.mark.slow
def test_cli_options_accept_a_norm_as_labelled(group8_sweep: Path, tmp_path: Path) -> None:
    assert main([str(group8_sweep), "--out", str(tmp_path), "--baseline", "group8", "--margin", "3"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "## Differences against norm=group8, paired by seed" in md and "| batch | " in md
    assert "margin +-3 points" in md
    by_name = markdown(differences(load(group8_sweep), Options(baseline="group")))  # its norm's name
    assert "## Differences against norm=group8, paired by seed" in by_name and "| batch | " in by_name


@pytest.mark.slow
def test_python_dash_m_normbench_report_still_works(sweep: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "normbench.report", str(sweep), "--out", str(tmp_path)],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {tmp_path / 'report.html'}"
    assert (tmp_path / "report.tex").exists()


@pytest.mark.slow
def test_html_claims_table_colours_the_verdicts(group8_sweep: Path) -> None:
    text = (group8_sweep / "report.html").read_text()
    assert '<td><strong class="pass">PASS</strong> (counts runs that did not learn)</td>' in text
    assert "**" not in text


@pytest.mark.slow
def test_differences_of_a_loss_are_in_its_units_not_points(sweep: Path) -> None:
    diff = markdown(differences(load(sweep), Options(metric="test/loss")))
    assert diff.startswith("## Differences against norm=batch")
    assert "**test/loss minus norm=batch (units of test/loss)**" in diff and "points" not in diff
