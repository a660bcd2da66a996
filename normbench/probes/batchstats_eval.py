"""Test loss and accuracy with batch statistics instead of running ones (split
test_batchstats), for models whose norms keep running statistics; on the epochs the test
evaluation runs (``eval_every``, see :func:`.evaluation.due`)."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig
from torch import nn

from normbench.norms import batch_statistics_modules
from normbench.probes.base import Point, Probe, scores
from normbench.probes.evaluation import due, score_rows, trained_finitely
from normbench.run.sinks import Row
from normbench.run.train import evaluate_batch_statistics


class BatchStatsEval(Probe):
    metrics = scores("test_batchstats", "the test set normalised with batch statistics", table=True)

    def __init__(self, batch: int, every: int, epochs: int) -> None:
        self.batch, self.every, self.epochs = batch, every, epochs

    def at_epoch(self, at: Point) -> list[Row]:
        if not trained_finitely(at) or not due(at.epoch, self.every, self.epochs):
            return []
        scores = evaluate_batch_statistics(at.trainer.model, at.trainer.data, self.batch)
        return score_rows(at, "test_batchstats", *scores)


def make(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> Probe | None:
    return BatchStatsEval(cfg.batch, cfg.eval_every, cfg.epochs) if batch_statistics_modules(model) else None
