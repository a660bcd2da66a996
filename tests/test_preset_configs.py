"""The presets compute what they computed before the defaults were piloted.

Their committed reference reports come from them, so a change of the top-level, model, optim
or sched defaults must not reach them. tests/fixtures/preset_configs.json holds every cell of
every preset's grid (seeds aside: a seed changes nothing else), resolved from the config tree
before the defaults were piloted; each cell must still resolve to the same values. Keys
added since may appear.
The fast tier checks each preset alone and that the runner takes its values (a Hydra compose
costs ~0.25 s, and the grids have 94 cells); the suite checks every cell of every grid.
Regenerate only when a preset is meant to change:

    python tests/test_preset_configs.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "preset_configs.json"
REPO = Path(__file__).resolve().parents[1]


def cells() -> dict[str, list[str]]:
    """Cell id -> its overrides: each preset alone, then every job of its grid minus seeds."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from normbench.run.identity import register_resolvers

    register_resolvers()
    out: dict[str, list[str]] = {}
    for preset in sorted(p.stem for p in (REPO / "experiments").glob("*.yaml")):
        base = [f"experiment={preset}"]
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=base, return_hydra_config=True)
        params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items() if k != "seed"]
        parsed = OverridesParser.create().parse_overrides(params)
        out[" ".join(base)] = base
        for batch in BasicSweeper.split_arguments(parsed, None):
            for job in batch:
                out[" ".join([*base, *job])] = [*base, *job]
    return out


def resolve(overrides: list[str]) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir

    from normbench.run.identity import register_resolvers, resolved_config

    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return resolved_config(compose(config_name="config", overrides=overrides))


ABSENT = "<absent>"


def missing_or_changed(old: Any, new: Any, path: str = "") -> list[str]:
    """Where ``new`` lost or changed a value of ``old``; keys only in ``new`` are fine."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k, v in old.items() for d in missing_or_changed(v, new.get(k, ABSENT), f"{path}{k}.")]
    return [] if old == new else [f"{path.rstrip('.')}: {old!r} -> {new!r}"]


EXPECTED: dict[str, Any] = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}


@pytest.mark.slow
def test_the_fixture_covers_every_preset_cell():
    assert set(cells()) == set(EXPECTED), "a preset or its grid changed: regenerate the fixture on purpose"


def fast_cells(expected: dict[str, Any]) -> set[str]:
    """Each preset alone (its own cell, without a grid override)."""
    return {cell for cell in expected if len(cell.split()) == 1}


FAST = fast_cells(EXPECTED)


def assert_resolves_as_before(cell: str) -> None:
    from normbench.config.checks import check_keys

    resolved = resolve(cell.split())
    assert missing_or_changed(EXPECTED[cell], resolved) == []
    assert resolved["name"] == cell.split()[0].removeprefix("experiment="), "a preset names its folder"
    check_keys(resolved)  # every value is one the runner takes


@pytest.mark.parametrize("cell", sorted(FAST))
def test_a_preset_cell_resolves_as_before(cell):
    assert_resolves_as_before(cell)


@pytest.mark.slow
@pytest.mark.parametrize("cell", sorted(set(EXPECTED) - FAST))
def test_every_other_preset_cell_resolves_as_before(cell):
    assert_resolves_as_before(cell)


def test_the_fast_cells_are_every_preset_alone():
    presets = {f"experiment={p.stem}" for p in (REPO / "experiments").glob("*.yaml")}
    assert FAST == presets & set(EXPECTED) == presets


def test_the_comparison_sees_a_changed_and_a_lost_value():
    old = {"optim": {"lr": 0.1, "linear_scaling": False}, "epochs": 5}
    new = {"optim": {"lr": 0.1, "linear_scaling": True, "extra": 1}}
    assert missing_or_changed(old, new) == ["optim.linear_scaling: False -> True", "epochs: 5 -> '<absent>'"]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    sys.path.insert(0, str(REPO))
    FIXTURE.parent.mkdir(exist_ok=True)
    table = {cell: resolve(overrides) for cell, overrides in cells().items()}
    FIXTURE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"{len(table)} cells -> {FIXTURE}")
