"""python -m normbench.sweep.status on damaged sweeps: listed, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

from normbench.sweep import status

MULTIRUN = """
hydra:
  overrides:
    task: ['norm=batch,layer,group']
  sweeper:
    params: null
  job:
    config:
      override_dirname: {kv_sep: '=', item_sep: ',', exclude_keys: []}
"""


@pytest.fixture
def sweep(tmp_path):
    (tmp_path / "multirun.yaml").write_text(MULTIRUN)
    for norm, summary in (("batch", {"status": "done"}), ("layer", ["done"])):
        (tmp_path / f"norm={norm}").mkdir()
        (tmp_path / f"norm={norm}" / "summary.json").write_text(json.dumps(summary))
    return tmp_path


def listing(capsys) -> tuple[dict[str, str], str, str]:
    out, err = capsys.readouterr()
    lines = out.splitlines()
    return dict(line.rsplit(None, 1) for line in lines[:-1]), lines[-1], err


def test_a_summary_that_is_a_json_list_or_not_json_is_listed_as_damaged(sweep, capsys):
    (sweep / "norm=group").mkdir()
    (sweep / "norm=group" / "summary.json").write_bytes(b"\xff{half")
    assert status.main([str(sweep)]) == 0
    cells, total, _ = listing(capsys)
    assert cells == {"norm=batch": "done", "norm=layer": "damaged", "norm=group": "damaged"}
    assert total == "3 cells: 2 damaged, 1 done"


@pytest.mark.parametrize(
    "text, why",
    [("hydra: [unclosed\n", "ParserError"), ("sweep: 1\n", "hydra"), ("- a list\n", "")],
)
def test_a_damaged_multirun_yaml_is_one_line_then_the_runs_found(sweep, capsys, text, why):
    (sweep / "multirun.yaml").write_text(text)
    assert status.main([str(sweep)]) == 1
    cells, total, err = listing(capsys)
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: {sweep / 'multirun.yaml'}: damaged, so the grid is unknown (")
    assert why in line
    assert line.endswith("; listing the run directories found instead")
    assert cells == {"norm=batch": "done", "norm=layer": "damaged"} and total == "2 cells: 1 done, 1 damaged"


def test_on_the_command_line_no_traceback(sweep):
    (sweep / "multirun.yaml").write_text("hydra: 3\n")
    done = subprocess.run(
        [sys.executable, "-m", "normbench.sweep.status", str(sweep)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_summary_nested_thousands_deep_is_damaged_not_a_recursion_error(sweep, capsys):
    (sweep / "norm=group").mkdir()
    (sweep / "norm=group" / "summary.json").write_text(
        '{"status": "done", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    assert status.main([str(sweep)]) == 0
    cells, total, _ = listing(capsys)
    assert cells["norm=group"] == "damaged"
