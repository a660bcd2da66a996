"""The report and its loader accept any results tree (damaged, foreign or empty): one line,
never a traceback, nothing half-written left behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fake_results import write_run, write_sweep

from normbench.analysis import evaluate, load
from normbench.report import main


def failed_copy(done: Path, run_dir: Path, **config: object) -> None:
    """A failed run beside ``done``: its summary with other config values, no metrics."""
    summary = json.loads((done / "summary.json").read_text())
    summary.update(status="failed", final={}, error="refused")
    summary["config"].update(config)
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(summary))


@pytest.mark.slow
def test_a_config_key_named_like_a_summary_field_gets_a_config_prefix(tmp_path, capsys):
    # python run.py -m device=auto,cpu: the config's device (asked) and the summary's (used)
    for device in ("auto", "cpu"):
        for seed in (0, 1):
            write_run(tmp_path / f"device={device},seed={seed}", "batch", 8, seed, device=device)
    res = load(tmp_path)
    assert res.runs.columns.is_unique
    assert sorted(res.runs["config.device"].unique()) == ["auto", "cpu"]
    assert set(res.runs["device"]) == {"cpu"} and "config.device" in res.swept
    assert main([str(tmp_path)]) == 0, capsys.readouterr().err
    assert "config.device=auto" in (tmp_path / "report.md").read_text()


@pytest.mark.slow  # a whole report (~1 s); CI runs it
def test_a_failed_report_is_one_line_and_leaves_no_figures_behind(tmp_path, capsys):
    sweep = write_sweep(tmp_path / "s", norms=("batch", "group"), batches=(8, 32), seeds=(0, 1))
    (sweep / "report.md").mkdir()  # the last files cannot be written, after the figures were
    assert main([str(sweep)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: results_dir={sweep}: IsADirectoryError: ")
    assert not (sweep / "figures").exists()


def test_a_directory_without_runs_is_an_error_not_a_report_of_none(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"error: results_dir={tmp_path}: no runs under it (no summary.json or metrics.csv); " + (
        "pass a run or sweep directory"
    )
    assert not (tmp_path / "report.md").exists()


@pytest.mark.slow
def test_markdown_carries_no_html_from_a_name(tmp_path, capsys):
    for seed in (0, 1):
        write_run(tmp_path / f"seed={seed}", "batch", 8, seed, name="<script>alert(1)</script>")
    assert main([str(tmp_path)]) == 0, capsys.readouterr().err
    md = (tmp_path / "report.md").read_text()
    assert not re.search(r"(?<!\\)<[a-z/]", md)  # no tag opens
    assert "# normbench report: \\<script>alert(1)\\</script>" in md
    assert "<script" not in (tmp_path / "report.html").read_text()


@pytest.mark.slow  # a whole report (~1 s); CI runs it
def test_a_summary_with_fields_of_the_wrong_type_still_gives_a_report(tmp_path, capsys):
    # hand-edited or damaged summaries: versions not a mapping, a timestamp as a number, a done
    # run whose batch is text; each made the report fail with one line and no report
    sweep = write_sweep(tmp_path / "s", norms=("batch", "group"), batches=(8, 32), seeds=(0, 1))
    damage = {
        "batch=8,norm=batch,seed=0": {"versions": "x"},
        "batch=8,norm=batch,seed=1": {"started": 12},
        "batch=32,norm=group,seed=0": {"config": "batch"},
    }
    for run, fields in damage.items():
        path = sweep / run / "summary.json"
        summary = json.loads(path.read_text())
        if fields.get("config") == "batch":
            summary["config"]["batch"] = "abc"
        else:
            summary.update(fields)
        path.write_text(json.dumps(summary))
    assert main([str(sweep)]) == 0, capsys.readouterr().err
    md = (sweep / "report.md").read_text()
    assert "- batch: 32, 8, abc" in md and "- started 12, finished 20" in md


def _rewrite(sweep: Path, change) -> None:
    for path in sweep.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        change(summary)
        path.write_text(json.dumps(summary))


def test_a_sweep_where_every_run_diverged_gets_a_report(tmp_path, capsys):
    # no run measured test/error: the claims were a KeyError, exit 1 and no report
    sweep = write_sweep(tmp_path / "s", norms=("batch", "group"), batches=(8, 32), seeds=(0, 1))
    _rewrite(sweep, lambda s: s.update(status="diverged", final={"train/loss": float("nan")}))
    assert main([str(sweep)]) == 0, capsys.readouterr().err
    md = (sweep / "report.md").read_text()
    assert "No finished runs" in md
    assert "| norm=batch degrades at small batch | **INCONCLUSIVE** (missing data) |" in md


@pytest.mark.slow
def test_runs_without_the_default_metric_get_a_report_of_what_they_have(tmp_path, capsys):
    sweep = write_sweep(tmp_path / "s", norms=("batch", "group"), batches=(8, 32), seeds=(0, 1))
    _rewrite(sweep, lambda s: s.update(final={"train/loss": s["final"]["train/loss"]}))
    assert main([str(sweep)]) == 0, capsys.readouterr().err
    md = (sweep / "report.md").read_text()
    assert "**train/loss**" in md and "test/error (%)" not in md
    assert main([str(sweep), "--metric", "test/loss"]) == 2  # asked for by name: a typo or a mix-up
    err = capsys.readouterr().err
    assert "error: --metric=test/loss: no finished run has it; use one of train/loss" in err


@pytest.mark.slow  # a whole report (~1 s); CI runs it
def test_a_text_batch_value_is_kept_as_text_and_does_not_reorder_the_batch_sizes(tmp_path, capsys):
    # -m batch=8,32,l6: the l6 run fails and the batch column becomes the text "l6", where
    # "32" < "8"; "BN degrades" compared batch 32 with batch 8 (FAIL) and the ordering judged batch 8
    sweep = write_sweep(tmp_path / "s", norms=("batch", "group", "layer"), batches=(8, 32), seeds=(0, 1, 2))
    clean = {c.name: (c.verdict, c.effect) for c in evaluate(load(sweep))}
    failed_copy(sweep / "batch=8,norm=batch,seed=0", sweep / "batch=l6,norm=batch,seed=0", batch="l6")
    runs = load(sweep).runs
    assert sorted(runs["batch"].unique()) == ["32", "8", "l6"]
    assert {c.name: (c.verdict, c.effect) for c in evaluate(load(sweep))} == clean
    assert clean["norm=batch degrades at small batch"][1].startswith("batch=8 - batch=32: ")
    assert main([str(sweep)]) == 0, capsys.readouterr().err
    md = (sweep / "report.md").read_text()
    assert "| norm | batch=8 | batch=32 |" in md
    assert "norm=batch, batch=l6: 0 of 3 seeds finished, 1 failed" in md


@pytest.mark.slow
def test_a_newline_in_a_name_neither_splits_the_title_nor_reaches_latex_live(tmp_path, capsys):
    name = "x\n\\immediate\\write18{touch /tmp/p}\\input{/etc/hostname} y\n\n[a](javascript:alert(1))"
    for seed in (0, 1):
        write_run(tmp_path / f"seed={seed}", "batch", 8, seed, name=name)
    assert main([str(tmp_path)]) == 0, capsys.readouterr().err
    tex = (tmp_path / "report.tex").read_text()
    # every backslash the name brought is a printed one; the title stays in its comment
    assert "\\immediate" not in tex.replace("\\textbackslash{}immediate", "")
    assert "\\input{" not in tex.replace("\\textbackslash{}input", "")
    assert tex.splitlines()[0].startswith("% normbench report: x \\textbackslash{}immediate")
    md = (tmp_path / "report.md").read_text()
    title = md.splitlines()[0]
    assert title.startswith("# normbench report: x \\immediate\\write18")
    assert title.endswith("y [a\\](javascript:alert(1))")
    assert "](javascript" not in md.replace("\\](javascript", "")


@pytest.mark.slow
def test_a_name_that_is_not_text_in_a_summary_still_gives_a_report(tmp_path, capsys):
    for seed in (0, 1):
        write_run(tmp_path / f"seed={seed}", "batch", 8, seed, record={"name": ["a", "b"]})
    assert main([str(tmp_path)]) == 0, capsys.readouterr().err
    assert (tmp_path / "report.md").read_text().startswith('# normbench report: ["a", "b"]')


@pytest.mark.parametrize(
    ("option", "value", "line"),
    [
        ("--bn", "batchh", "error: --bn=batchh: no finished run has that norm; use one of batch, group"),
        (
            "--group-norm",
            "gruop",
            "error: --group-norm=gruop: no finished run has that norm; use one of batch, group",
        ),
        (
            "--grid-x",
            "bacth",
            "error: --grid-x=bacth: is not a key of these runs; use a swept one: norm.name, batch, seed",
        ),
    ],
)
def test_an_option_naming_what_the_runs_lack_is_one_line_not_a_dropped_claim(
    tmp_path, capsys, option, value, line
):
    sweep = write_sweep(tmp_path / "s", norms=("batch", "group"), batches=(8, 32), seeds=(0, 1))
    assert main([str(sweep), option, value]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [line]
    assert not (sweep / "report.md").exists() and not (sweep / "figures").exists()


def test_out_at_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    write_run(tmp_path / "run", "batch", 8, 0)
    (tmp_path / "taken").write_text("mine")
    assert main([str(tmp_path / "run"), "--out", str(tmp_path / "taken")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: --out={tmp_path / 'taken'}: cannot be the report's folder (")
    assert (tmp_path / "taken").read_text() == "mine"


def edit_final(run_dir: Path, **final: object) -> None:
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    summary["final"].update({k.replace("__", "/"): v for k, v in final.items()})
    path.write_text(json.dumps(summary))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("value", "why"),
    [
        (-5, "final test/accuracy=-5 is outside [0, 1] (status was done)"),
        (float("inf"), "final test/accuracy=inf is outside [0, 1] (status was done)"),
        (True, "final test/accuracy=true is not a number (status was done)"),
    ],
)
def test_an_impossible_value_in_a_summary_leaves_that_run_out_with_the_reason(tmp_path, capsys, value, why):
    for seed in (0, 1, 2):
        write_run(tmp_path / f"seed={seed}", "batch", 8, seed)
    edit_final(tmp_path / "seed=2", test__accuracy=value)
    res = load(tmp_path)
    assert res.runs.set_index("run_id").loc["seed=2", ["status", "error"]].tolist() == [
        "damaged summary",
        why,
    ]
    assert sorted(res.done["run_id"]) == ["seed=0", "seed=1"]
    assert main([str(tmp_path)]) == 0, capsys.readouterr().err
    md = (tmp_path / "report.md").read_text()
    assert f"| seed=2 | damaged summary | {why} |" in md
    assert "n=2" in md and "n=3" not in md


@pytest.mark.slow
def test_a_copied_run_or_a_repeated_seed_counts_once_and_is_named(tmp_path, capsys):
    import shutil

    for seed in (0, 1):
        write_run(tmp_path / f"batch=8,seed={seed}", "batch", 8, seed)
    shutil.copytree(tmp_path / "batch=8,seed=1", tmp_path / "copy")
    for i in range(3):  # three runs of another cell, all labelled seed 0
        write_run(tmp_path / f"b32/run{i}", "batch", 32, 0)
    res = load(tmp_path)
    runs = res.runs.set_index("run_id")
    assert runs.loc["copy", "status"] == "duplicate"
    assert runs.loc["copy", "error"] == "same cell and seed as batch=8,seed=1, which is counted"
    assert (
        runs.loc[["b32/run1", "b32/run2"], "error"].tolist()
        == ["same cell and seed as b32/run0, which is counted"] * 2
    )
    assert sorted(res.done["run_id"]) == ["b32/run0", "batch=8,seed=0", "batch=8,seed=1"]
    assert main([str(tmp_path)]) == 0, capsys.readouterr().err
    md = (tmp_path / "report.md").read_text()
    assert "| copy | duplicate | same cell and seed as batch=8,seed=1, which is counted |" in md


def test_a_summary_nested_thousands_deep_is_listed_as_corrupt(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path / f"seed={seed}", "batch", 8, seed)
    (tmp_path / "seed=1" / "summary.json").write_text('{"final": ' + "[" * 100_000 + "]" * 100_000 + "}")
    runs = load(tmp_path).runs.set_index("run_id")
    assert (
        runs.loc["seed=1", "status"] == "corrupt summary: ValueError (nested 100001 levels deep (at most 32))"
    )
    assert runs.loc["seed=0", "status"] == "done"
