"""The switch: ``hydra/sweeper=fused`` (conf/hydra/sweeper/fused.yaml), Hydra's basic sweeper
whose jobs that differ only in ``seed`` become one job, ``seed=<first> +fused_seeds=[...]``,
that trains them together (normbench.sweep.fused_job). Jobs the plan says not to fuse
(normbench.run.fused.plan: compile, channels_last, batches where fused is slower) stay separate,
with one log line per cell. Everything else (params, presets' grids, launchers, the sweep
report) is the basic sweeper's. Imported at Hydra's start-up: no torch here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from normbench.run.fused import FUSED_KEY

log = logging.getLogger("normbench")

SEED = "seed"


class FusedSweeper(BasicSweeper):
    def get_job_batch(self) -> Sequence[Sequence[str]]:
        return fuse_jobs(super().get_job_batch(), self._why_not)

    def _why_not(self, job: Sequence[str], seeds: int) -> str | None:
        from normbench.run.fused import plan  # imports torch: only once a sweep runs

        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
        return plan.why_not(cfg, seeds)


def fuse_jobs(
    jobs: Sequence[Sequence[str]], why_not: Callable[[Sequence[str], int], str | None]
) -> list[list[str]]:
    """Jobs (lists of overrides) that differ only in an int ``seed=`` merged into one, in the
    order of their first job: that job's overrides plus ``+fused_seeds=[...]``."""
    cells: dict[tuple[str, ...], list[Sequence[str]]] = {}
    for job in jobs:
        cells.setdefault(tuple(o for o in job if override_key(o) != SEED), []).append(job)
    fused: list[list[str]] = []
    for cell in cells.values():
        seeds = [seed_of(job) for job in cell]
        if len(cell) < 2 or None in seeds or len(set(seeds)) < len(seeds):
            fused += [list(job) for job in cell]
            continue
        why = why_not(cell[0], len(cell))
        if why:
            log.info("seeds %s of %s run unfused: %s", seeds, " ".join(cell[0]), why)
            fused += [list(job) for job in cell]
            continue
        fused.append([*cell[0], f"+{FUSED_KEY}=[{','.join(str(s) for s in seeds)}]"])
    return fused


def override_key(override: str) -> str:
    """``+a.b=1`` -> ``a.b``."""
    return override.split("=", 1)[0].lstrip("+~")


def seed_of(job: Sequence[str]) -> int | None:
    """The job's seed, when Hydra reads it as an integer: the basic sweeper writes those in
    their plain form, so ``seed=007`` is text (which the run refuses), not seed 7."""
    values = [o.split("=", 1)[1] for o in job if override_key(o) == SEED and "=" in o]
    try:
        seed = int(values[0]) if len(values) == 1 else None
    except ValueError:
        return None
    return seed if seed is not None and str(seed) == values[0] else None
