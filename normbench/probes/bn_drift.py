"""How far BN's running statistics are from a training batch's (split ``bn_drift``, averaged
over layers: ``mean`` shift in running stds, ``var`` as |log ratio|), for models whose norms
keep running statistics."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig
from torch import nn

from normbench.norms import batch_statistics_modules, running_stats_drift
from normbench.probes.base import Point, Probe, first_batches
from normbench.run.sinks import Row


class BNDrift(Probe):
    def __init__(self, batch: int) -> None:
        self.batch = batch

    def at_epoch(self, at: Point) -> list[Row]:
        x = first_batches(at.trainer.data, self.batch, self.batch)[0]
        drift = running_stats_drift(at.trainer.model, x)
        rows: list[Row] = []
        for kind in ("mean", "var"):
            values = [v for k, v in drift.items() if k.endswith(f"/{kind}")]
            if values:
                rows.append((at.step, at.epoch, "bn_drift", kind, sum(values) / len(values)))
        return rows


def make(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> Probe | None:
    return BNDrift(cfg.batch) if batch_statistics_modules(model) else None
