"""A probe declares its metrics; each run records its probes' declarations (summary.json
``metrics``) and the report tables what the runs declared: a new measurement reaches the
report from its own module and the PROBES list, nothing else."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import TINY
from fake_results import write_sweep

from normbench import probes
from normbench.analysis import load
from normbench.config.checks import check_keys
from normbench.errors import ConfigError
from normbench.report import Options, build_report
from normbench.report.sections import UNDECLARED_TABLES, table_metrics
from normbench.run import record
from normbench.run.runner import run

TOY_PROBE = """
from normbench.probes.base import Metric, Probe
from normbench.config.rules import Rule

CONFIG = {"toy_wobble_rate": Rule(float, lo=0, note="how fast the toy wobbles")}


class Toy(Probe):
    metrics = (Metric("toy/wobble", "units", False, "how much the toy wobbles", table=True),)

    def at_epoch(self, at):
        at.final["toy/wobble"] = 0.25 * at.epoch
        return [(at.step, at.epoch, "toy", "wobble", 0.25 * at.epoch)]


def make(cfg, model, lr_at):
    return Toy()
"""


@pytest.fixture
def toy_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A probe module written to a temporary package and listed in PROBES."""
    (tmp_path / "toypkg").mkdir()
    (tmp_path / "toypkg" / "__init__.py").write_text("")
    (tmp_path / "toypkg" / "toy_probe.py").write_text(textwrap.dedent(TOY_PROBE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module("toypkg.toy_probe")
    monkeypatch.setattr(probes, "PROBES", (*probes.PROBES, module))
    yield module
    sys.modules.pop("toypkg.toy_probe", None)
    sys.modules.pop("toypkg", None)


def test_a_run_records_what_its_probes_declare(make_cfg, tmp_path: Path) -> None:
    summary = run(make_cfg(*TINY, "model=mlp", "norm=batch"), tmp_path / "run")
    declared = summary[record.METRICS_RECORD]
    assert declared["test/accuracy"] == {
        "unit": "fraction",
        "higher_is_better": True,
        "note": "accuracy, the test set in eval mode",
        "table": True,
    }
    assert declared["train/loss"]["table"] and not declared["test_batchstats/loss"]["table"]
    assert list(declared)[-1] == "train_samples_per_s"  # the runner's own, after the probes'
    # without batch-statistics norms there is no batch-statistics evaluation to declare
    plain = run(make_cfg(*TINY, "model=mlp", "norm=layer"), tmp_path / "layer")
    assert "test_batchstats/accuracy" not in plain[record.METRICS_RECORD]
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved[record.METRICS_RECORD] == declared


@pytest.mark.slow
def test_a_toy_probe_from_its_own_module_gets_its_table_and_note(make_cfg, tmp_path: Path, toy_probe) -> None:
    sweep = tmp_path / "sweep"
    for norm in ("batch", "layer"):
        for batch in (4, 8):
            overrides = [*TINY, "model=mlp", f"norm={norm}", f"batch={batch}"]
            run(make_cfg(*overrides), sweep / f"batch={batch},norm={norm}")
    res = load(sweep)
    metrics, notes = table_metrics(res, "test/error")
    assert metrics[-2:] == ["toy/wobble", "train_samples_per_s"]
    assert notes["toy/wobble"] == ": how much the toy wobbles"
    md = (Path(build_report(sweep, options=Options())).parent / "report.md").read_text()
    assert "toy/wobble: how much the toy wobbles" in md


def test_a_toy_probes_config_key_is_checked_from_its_own_module(toy_probe) -> None:
    # its key is a key of the config, checked by the rule beside the probe, like the run's own
    check_keys({"toy_wobble_rate": 0.5})
    with pytest.raises(
        ConfigError, match=r"toy_wobble_rate=-1: is below 0; use a finite number >= 0 \(how fast"
    ):
        check_keys({"toy_wobble_rate": -1})
    with pytest.raises(ConfigError, match="toy_wobble_rat=1: is not a key of the config; .*toy_wobble_rate"):
        check_keys({"toy_wobble_rat": 1})


def test_a_tree_without_declarations_gets_the_tables_of_before(tmp_path: Path) -> None:
    res = load(write_sweep(tmp_path / "old", norms=("batch", "group"), batches=(2, 8)))
    assert res.declared == {}
    metrics, _ = table_metrics(res, "test/error")
    assert metrics[0] == "test/error" and metrics[-len(UNDECLARED_TABLES) :] == list(UNDECLARED_TABLES)


@pytest.mark.parametrize(
    "block",
    [
        "not a mapping",
        {"test/accuracy": {"unit": "fraction"}},  # fields missing
        {"test/accuracy": {"unit": 1, "higher_is_better": True, "note": "", "table": True}},
        {"test/accuracy": {"unit": "%", "higher_is_better": "yes", "note": "", "table": True}},
        {"x" * 500: {"unit": "%", "higher_is_better": True, "note": "", "table": True}},
        {f"m{i}": {"unit": "", "higher_is_better": True, "note": "", "table": True} for i in range(100)},
    ],
)
def test_a_damaged_metrics_record_is_dropped_and_the_numbers_kept(tmp_path: Path, block) -> None:
    root = write_sweep(tmp_path / "tree", norms=("batch",), batches=(2, 8), seeds=(1,))
    path = next(root.rglob("summary.json"))
    summary = json.loads(path.read_text())
    summary[record.METRICS_RECORD] = block
    path.write_text(json.dumps(summary))
    parsed = record.parse_summary(path.read_text())
    assert record.METRICS_RECORD not in parsed and parsed["final"] == summary["final"]
    assert load(root).declared == {}
