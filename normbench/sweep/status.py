"""Which cells of a sweep are done, without training anything.

    python -m normbench.sweep.status results/<name>

Reads the sweep's ``multirun.yaml``, expands its grid exactly as Hydra's basic sweeper does,
and looks up each cell's directory (named by its overrides) for a summary.json.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from normbench.run.identity import NON_RESULT_KEYS
from normbench.run.record import read_summary

# a cell's state when its summary.json gives none: started but no summary (killed, or running
# now), or never started
UNFINISHED = "unfinished"
MISSING = "missing"
DAMAGED = "damaged"  # a summary.json that is not a JSON object with a status
MISPLACED = "misplaced"  # the summary.json of another cell (directories swapped, or copied)
# status lists a grid of at most this many cells: one swept range(0,10000000) would take
# minutes to expand, and no one reads a longer listing
MAX_CELLS = 100_000


class GridTooLarge(ValueError):
    """The sweep's grid has more than MAX_CELLS cells."""


def sweep_cells(sweep_dir: Path) -> list[str]:
    """Directory names of every cell of the sweep in ``sweep_dir``, in launch order."""
    cfg = OmegaConf.load(sweep_dir / "multirun.yaml")
    sep = cfg.hydra.job.config.override_dirname
    params, overrides = cfg.hydra.sweeper.get("params"), list(cfg.hydra.overrides.task)
    check_grid_size(params, overrides)
    jobs = expand_grid(params, overrides)
    return [cell_name(job, sep.item_sep, sep.kv_sep) for job in jobs]


def check_grid_size(params: Mapping[str, Any] | None, overrides: list[str]) -> None:
    """GridTooLarge when the grid has more than MAX_CELLS cells, found without expanding it:
    each swept key's values are counted up to MAX_CELLS + 1."""
    parser = OverridesParser.create()
    given = [f"{k}={v}" for k, v in (params or {}).items()] + list(overrides)
    cells = 1
    for override in parser.parse_overrides(given):
        if override.is_sweep_override():
            values = sum(1 for _ in itertools.islice(override.sweep_string_iterator(), MAX_CELLS + 1))
            cells *= values
            if cells > MAX_CELLS:
                raise GridTooLarge(
                    f"{override.key_or_group} sweeps {values}{'+' * (values > MAX_CELLS)} values"
                )


def expand_grid(params: Mapping[str, Any] | None, overrides: list[str]) -> list[list[str]]:
    """Every job of a sweep, as its list of overrides: an experiment's ``hydra.sweeper.params``
    then the command line's, expanded as Hydra's basic sweeper does (the command line wins)."""
    parser = OverridesParser.create()
    given = [f"{k}={v}" for k, v in (params or {}).items()] + list(overrides)
    return [
        job for batch in BasicSweeper.split_arguments(parser.parse_overrides(given), None) for job in batch
    ]


def cell_name(job: list[str], item_sep: str = ",", kv_sep: str = "=") -> str:
    """A job's run directory name, as conf/config.yaml makes it (hydra.sweep.subdir)."""
    overrides = OverridesParser.create().parse_overrides(job)
    dirname = get_overrides_dirname(overrides, list(NON_RESULT_KEYS), item_sep=item_sep, kv_sep=kv_sep)
    return (dirname or "default").replace("/", "_")


def cell_status(run_dir: Path, item_sep: str = ",", kv_sep: str = "=") -> str:
    """done / diverged / failed / interrupted from summary.json; unfinished when a run
    started but wrote no summary (killed, or running now); missing when never started;
    damaged when summary.json is not the runner's (it writes it whole: temp file, rename);
    misplaced when it is the summary of another cell (its overrides name another directory)."""
    if not (run_dir / "summary.json").exists():
        return UNFINISHED if run_dir.is_dir() else MISSING
    summary = read_summary(run_dir)  # None when not JSON
    status = summary.get("status") if isinstance(summary, dict) else None
    if not isinstance(status, str):
        return DAMAGED
    overrides = summary.get("overrides")
    if isinstance(overrides, list) and all(isinstance(o, str) for o in overrides):
        try:
            own = cell_name(overrides, item_sep, kv_sep)
        except Exception:  # noqa: BLE001  overrides Hydra cannot parse: not the runner's
            return DAMAGED
        if own != run_dir.name:
            return MISPLACED
    return status


def separators(sweep_dir: Path) -> tuple[str, str]:
    """The item and key-value separators of the sweep's directory names (Hydra's defaults when
    multirun.yaml does not say)."""
    try:
        sep = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.job.config.override_dirname
        return str(sep.item_sep), str(sep.kv_sep)
    except Exception:  # noqa: BLE001  damaged: reported once, by the grid's reading
        return ",", "="


def run_dirs(sweep_dir: Path) -> list[str]:
    """The directories under ``sweep_dir`` that a run wrote into, when the grid is unknown."""
    marks = ("summary.json", "metrics.csv", ".hydra")
    return sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and any((p / m).exists() for m in marks))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory (holds multirun.yaml)")
    args = parser.parse_args(argv)
    if not (args.sweep_dir / "multirun.yaml").exists():
        print(
            f"error: {args.sweep_dir}: no multirun.yaml here; give the directory of a sweep "
            "(python run.py -m ...)",
            file=sys.stderr,
        )
        return 2
    code = 0
    try:
        cells = sweep_cells(args.sweep_dir)
    except GridTooLarge as err:
        print(
            f"error: {args.sweep_dir / 'multirun.yaml'}: the grid has more than {MAX_CELLS} cells ({err}); "
            "listing the run directories found instead",
            file=sys.stderr,
        )
        cells, code = run_dirs(args.sweep_dir), 1
    except Exception as err:  # noqa: BLE001 - malformed YAML, no hydra key, a bad override: any damage
        why = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        print(
            f"error: {args.sweep_dir / 'multirun.yaml'}: damaged, so the grid is unknown ({why}); "
            "listing the run directories found instead",
            file=sys.stderr,
        )
        cells, code = run_dirs(args.sweep_dir), 1
    seps = separators(args.sweep_dir)
    statuses = [cell_status(args.sweep_dir / cell, *seps) for cell in cells]
    width = max(map(len, cells), default=4)
    for cell, status in zip(cells, statuses, strict=True):
        print(f"{cell:{width}}  {status}")
    counts = Counter(statuses)
    print(f"{len(cells)} cells: " + ", ".join(f"{n} {s}" for s, n in counts.most_common()))
    return code


if __name__ == "__main__":
    sys.exit(main())
