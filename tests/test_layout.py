"""The folders show the architecture (docs/design.md §1): a run's lifecycle under normbench/run/,
a sweep's under normbench/sweep/, and imports that go one way. Read from the source (AST), so
an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "normbench"

# the analysis and the report read only the results tree: no run, no sweep, and not
# normbench.config, which reads conf/
RESULTS_TREE_ONLY = (
    "normbench.run.runner",
    "normbench.run.train",
    "normbench.sweep",
    "normbench.task",
    "normbench.config",
)
# folder -> packages its modules must never import
NEVER = {
    "run": ("normbench.sweep", "normbench.analysis", "normbench.report", "normbench.task"),
    "config": ("normbench.sweep", "normbench.analysis", "normbench.report", "normbench.task"),
    "sweep": ("normbench.analysis", "normbench.task"),  # the report only through its CLI entry
    "analysis": RESULTS_TREE_ONLY,
    "report": RESULTS_TREE_ONLY,
}
LIFECYCLE = {"runner", "train", "checkpoint", "rundir", "record", "identity", "sinks"}
SWEEP = {"launchers", "callbacks", "status", "fused_sweeper", "fused_job"}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("folder", sorted(NEVER))
def test_imports_go_one_way(folder):
    wrong = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for name in sorted(imported(path))
        if name.startswith(NEVER[folder])
    ]
    assert not wrong, "\n".join(wrong)


def test_a_runs_lifecycle_and_a_sweeps_live_in_their_own_folders():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert not top & (LIFECYCLE | SWEEP), "a lifecycle or sweep module is back at the top level"
    assert {p.stem for p in (PACKAGE / "run").glob("*.py")} >= LIFECYCLE
    assert {p.stem for p in (PACKAGE / "sweep").glob("*.py")} >= SWEEP
    assert (PACKAGE / "run" / "fused" / "stepper.py").is_file()  # the fused path steps inside run/


def test_the_hydra_targets_name_modules_that_exist():
    import importlib

    import yaml

    root = PACKAGE.parent / "conf"
    targets = [
        value
        for path in root.rglob("*.yaml")
        for value in _target_values(yaml.safe_load(path.read_text()))
        if isinstance(value, str)
    ]
    assert any(t.startswith("normbench.sweep.") for t in targets)
    for target in targets:
        module, _, name = target.rpartition(".")
        assert hasattr(importlib.import_module(module), name), target


def _target_values(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                yield value
            else:
                yield from _target_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from _target_values(value)
