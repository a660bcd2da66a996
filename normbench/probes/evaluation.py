"""Test loss and accuracy in eval mode (split test); skipped when the training loss is not finite.

With ``eval_every`` N > 1 the test set is scored every N epochs and always at the last one
(:func:`due`), so summary.json's ``final`` holds the last epoch's numbers whatever N is. The
batch-statistics evaluation (:mod:`.batchstats_eval`) follows the same epochs; the cheap
probes (train loss, train_eval, activations, BN drift, weights) still look every epoch, and
Precise BN after the last is unaffected."""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from normbench.config.rules import Rule
from normbench.probes.base import Point, Probe, scores
from normbench.run.sinks import Row
from normbench.run.train import evaluate


def score_rows(at: Point, split: str, loss: float, accuracy: float) -> list[Row]:
    """A (loss, accuracy) pair as rows of ``split``, and into ``final``."""
    rows: list[Row] = []
    for metric, value in (("loss", loss), ("accuracy", accuracy)):
        rows.append((at.step, at.epoch, split, metric, value))
        at.final[f"{split}/{metric}"] = value
    return rows


def trained_finitely(at: Point) -> bool:
    """Evaluating a model whose training loss went NaN or inf tells nothing."""
    return at.losses is not None and bool(torch.isfinite(at.losses).all())


def due(epoch: int, every: int, epochs: int) -> bool:
    """Whether the test set is scored after ``epoch``: every ``every`` epochs and at the last."""
    return epoch % every == 0 or epoch == epochs


class Evaluation(Probe):
    metrics = scores("test", "the test set in eval mode", table=True)

    def __init__(self, every: int, epochs: int) -> None:
        self.every, self.epochs = every, epochs

    def at_epoch(self, at: Point) -> list[Row]:
        if not trained_finitely(at) or not due(at.epoch, self.every, self.epochs):
            return []
        return score_rows(at, "test", *evaluate(at.trainer.model, at.trainer.data))


# the config key this probe reads, with the values it takes (checks.all_rules)
CONFIG = {"eval_every": Rule(int, lo=1, note="test evaluation every N epochs and at the last")}


def make(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> Probe:
    return Evaluation(cfg.eval_every, cfg.epochs)
