"""Stops the run as diverged when the training or test loss is not finite. It sits after the
evaluations and before the other probes: what a diverged epoch measured so far is kept."""

from __future__ import annotations

import math
from collections.abc import Callable

from omegaconf import DictConfig
from torch import nn

from normbench.probes.base import Diverged, Point, Probe
from normbench.run.sinks import Row


class DivergenceGuard(Probe):
    def at_epoch(self, at: Point) -> list[Row]:
        # the outputs can overflow (inf test loss) while the training loss stays finite
        for loss in ("train/loss", "test/loss"):
            if not math.isfinite(at.final.get(loss, 0.0)):
                raise Diverged(f"the {loss} is not finite")
        return []


def make(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> Probe:
    return DivergenceGuard()
