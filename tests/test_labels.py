"""A run records its norm's label, preset and properties in summary.json, and the analysis
names runs from that record alone: a results tree copied to a machine without conf/ reports the
same (docs/design.md §1)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from conftest import TINY

from normbench.analysis import load
from normbench.analysis.controls import ghost_runs
from normbench.analysis.stats import NORM_PAPER_KEY
from normbench.config import presets
from normbench.run.record import NORM_RECORD, parse_summary

LABEL_COLUMNS = ["run_id", "norm", "norm_choice", "norm_options"]


@pytest.fixture
def no_conf(tmp_path, monkeypatch):
    """The analysis on a machine without this checkout's conf/norm."""
    empty = tmp_path / "no_conf"
    empty.mkdir()
    monkeypatch.setattr(presets, "NORM_CONF_DIR", empty)
    presets.norm_defaults.cache_clear()
    yield
    presets.norm_defaults.cache_clear()


def _labels(root):
    return load(root).runs.sort_values("run_id")[LABEL_COLUMNS].reset_index(drop=True)


def test_a_copied_tree_without_conf_reports_the_same_labels(cli, tmp_path, request):
    results = tmp_path / "results"
    run = cli("-m", "model=mlp", "norm=group8,ghost2", "norm.eps=1e-3", *TINY, results=results)
    assert run.returncode == 0, run.stderr[-2000:]
    here = _labels(results)
    assert sorted(here["norm"]) == ["ghost2(eps=0.001)", "group8(eps=0.001)"]
    copied = shutil.copytree(results, tmp_path / "elsewhere")
    request.getfixturevalue("no_conf")
    assert _labels(copied).equals(here)
    runs = load(copied).runs
    assert set(runs["norm_property.batch_statistics"]) == {True, False}
    assert set(runs[NORM_PAPER_KEY]) == {"GN", "GhostBN"}


def test_a_run_records_its_norm(cli, tmp_path):
    run = cli("model=mlp", "norm=group8", *TINY)
    assert run.returncode == 0, run.stderr[-2000:]
    (path,) = tmp_path.rglob("summary.json")
    block = json.loads(path.read_text())[NORM_RECORD]
    assert block["label"] == "group8" and block["name"] == "group"
    assert block["preset"]["num_groups"] == 8
    assert block["properties"]["batch_statistics"] is False
    assert block["properties"]["paper"] == "GN"  # what published numbers go by


def test_a_record_from_before_papers_were_recorded_gets_the_registrys(cli, tmp_path):
    run = cli("model=mlp", "norm=group8", *TINY)
    assert run.returncode == 0, run.stderr[-2000:]
    (path,) = tmp_path.rglob("summary.json")
    summary = json.loads(path.read_text())
    del summary[NORM_RECORD]["properties"]["paper"]
    path.write_text(json.dumps(summary))
    assert load(tmp_path).runs[NORM_PAPER_KEY].tolist() == ["GN"]


def test_an_older_tree_is_labelled_by_its_choice_without_reading_conf(cli, tmp_path, request):
    # a tree from before the record: its choice names it; options it changed from the preset
    # are not looked up in a checkout's conf/norm (the analysis reads only the results tree)
    run = cli("model=mlp", "norm=group8", "norm.eps=1e-3", *TINY)
    assert run.returncode == 0, run.stderr[-2000:]
    (path,) = tmp_path.rglob("summary.json")
    summary = json.loads(path.read_text())
    del summary[NORM_RECORD]
    path.write_text(json.dumps(summary))
    request.getfixturevalue("no_conf")
    assert load(tmp_path).runs["norm"].tolist() == ["group8"]


GOOD = {
    "label": "group8",
    "name": "group",
    "preset": {"num_groups": 8},
    "properties": {"batch_statistics": False},
}


@pytest.mark.parametrize(
    "damage",
    [
        {"label": 8},
        {"label": ""},
        {"label": "x" * 10_000},
        {"name": None},
        {"preset": ["num_groups"]},
        {"preset": {"num_groups": {"deep": 1}}},
        {"preset": {str(i): i for i in range(1000)}},
        {"properties": "batch"},
        {"properties": {"batch_statistics": [[True]]}},
    ],
)
def test_a_damaged_norm_record_is_dropped_not_fatal(damage):
    summary = parse_summary(json.dumps({"status": "done", NORM_RECORD: {**GOOD, **damage}}))
    assert summary == {"status": "done"}


def test_a_valid_norm_record_is_kept_as_plain_strings():
    block = {**GOOD, "label": "<b>$\\x$</b>"}
    assert parse_summary(json.dumps({NORM_RECORD: block}))[NORM_RECORD] == block


def test_the_ghost_control_finds_ghost_norms_by_their_option_not_their_name():
    done = pd.DataFrame(
        {
            "norm": ["batch", "mine", "ghost2"],
            "norm.name": ["batch", "custom", "ghost_batch"],
            "norm.ghost_size": [None, 4, 2],
        }
    )
    assert ghost_runs(done)["norm"].tolist() == ["mine", "ghost2"]


def test_a_run_records_its_norms_figure_style_and_a_damaged_one_is_dropped_alone(make_cfg, tmp_path) -> None:
    from normbench.analysis import figures
    from normbench.run import record
    from normbench.run.runner import run

    summary = run(
        make_cfg(
            "model=mlp",
            "norm=group",
            "data.train_size=32",
            "data.test_size=16",
            "epochs=1",
            "batch=8",
            "progress=false",
            "threads=1",
        ),
        tmp_path / "run",
    )
    style = summary[record.NORM_RECORD]["style"]
    assert style == {"color": "#D55E00", "dashes": [6.4, 1.6, 1.0, 1.6], "marker": "D"}
    assert figures.Style.recorded(("#D55E00", (6.4, 1.6, 1.0, 1.6), "D")).linestyle == (
        0,
        (6.4, 1.6, 1.0, 1.6),
    )
    for bad in (
        {"color": "red", "dashes": [], "marker": "o"},
        {"color": "#000000", "dashes": [1e9], "marker": "o"},
        {"color": "#000000", "dashes": [], "marker": ["o"]},
        "#000000",
    ):
        block = {**summary[record.NORM_RECORD], "style": bad}
        kept = record.valid_norm_record(block)
        assert kept is not None and kept["style"] is None and kept["label"] == "group"
