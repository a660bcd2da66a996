"""Test loss and accuracy with batch statistics instead of running ones (split
test_batchstats), for models whose norms keep running statistics."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig
from torch import nn

from normbench.norms import batch_statistics_modules
from normbench.probes.base import Point, Probe
from normbench.probes.evaluation import score_rows, trained_finitely
from normbench.sinks import Row
from normbench.train import evaluate_batch_statistics


class BatchStatsEval(Probe):
    def __init__(self, batch: int) -> None:
        self.batch = batch

    def at_epoch(self, at: Point) -> list[Row]:
        if not trained_finitely(at):
            return []
        scores = evaluate_batch_statistics(at.trainer.model, at.trainer.data, self.batch)
        return score_rows(at, "test_batchstats", *scores)


def make(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> Probe | None:
    return BatchStatsEval(cfg.batch) if batch_statistics_modules(model) else None
