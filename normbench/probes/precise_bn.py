"""Precise BN (Wu & Johnson 2021) after the last epoch (``norm.precise_bn_samples``): with the
weights frozen, recompute the running statistics over that many training samples in batches
of the training size, then score the test set with them (split ``test_precise``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from omegaconf import DictConfig
from torch import nn

from normbench.norms import batch_statistics_modules, precise_bn_
from normbench.probes.base import Point, Probe, first_batches, scores
from normbench.probes.evaluation import score_rows
from normbench.run.sinks import Row
from normbench.run.train import evaluate

log = logging.getLogger("normbench")


class PreciseBN(Probe):
    metrics = scores("test_precise", "the test set with Precise BN's population statistics", table=True)

    def __init__(self, samples: int, batch: int) -> None:
        self.samples, self.batch = samples, batch

    def at_end(self, at: Point) -> list[Row]:
        model, data = at.trainer.model, at.trainer.data
        batches = first_batches(data, self.batch, self.samples)
        precise_bn_(model, batches)
        loss, accuracy = evaluate(model, data)
        used = sum(x.shape[0] for x in batches)  # fewer than asked when the training set is smaller
        log.info(f"precise BN over {used} samples: test loss {loss:.4f}  test acc {100 * accuracy:.2f}%")
        return score_rows(at, "test_precise", loss, accuracy)


def make(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> Probe | None:
    samples = cfg.norm.get("precise_bn_samples")
    return PreciseBN(samples, cfg.batch) if samples and batch_statistics_modules(model) else None
