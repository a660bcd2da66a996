"""The report and its loader accept any results tree (issue 15, cases 13 and 16): one line,
never a traceback, nothing half-written left behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fake_results import write_run, write_sweep

from normbench.analysis import load
from normbench.report import main


def failed_copy(done: Path, run_dir: Path, **config: object) -> None:
    """A failed run beside ``done``: its summary with other config values, no metrics."""
    summary = json.loads((done / "summary.json").read_text())
    summary.update(status="failed", final={}, error="refused")
    summary["config"].update(config)
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(summary))


def test_a_text_value_in_a_numeric_column_is_kept_as_text(tmp_path, capsys):
    # python run.py -m batch=8,l6: the l6 cell fails, its batch is the text "l6"
    sweep = write_sweep(tmp_path / "s", norms=("batch", "group"), batches=(8, 32), seeds=(0, 1))
    failed_copy(sweep / "batch=8,norm=batch,seed=0", sweep / "batch=l6,norm=batch,seed=0", batch="l6")
    runs = load(sweep).runs
    assert sorted(runs["batch"].unique()) == ["32", "8", "l6"]
    assert main([str(sweep)]) == 0, capsys.readouterr().err
    md = (sweep / "report.md").read_text()
    assert "norm=batch, batch=l6: 0 of 2 seeds finished, 1 failed" in md


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


def test_markdown_carries_no_html_from_a_name(tmp_path, capsys):
    for seed in (0, 1):
        write_run(tmp_path / f"seed={seed}", "batch", 8, seed, name="<script>alert(1)</script>")
    assert main([str(tmp_path)]) == 0, capsys.readouterr().err
    md = (tmp_path / "report.md").read_text()
    assert not re.search(r"(?<!\\)<[a-z/]", md)  # no tag opens
    assert "# normbench report: \\<script>alert(1)\\</script>" in md
    assert "<script" not in (tmp_path / "report.html").read_text()
