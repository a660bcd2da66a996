"""Batch-statistics noise of the trained model (split ``bn_noise``), after the last epoch: per
BN-like layer, how far the statistics of one per-device batch sit from the population's
(``{layer}/mean``: the mean shift in population SDs; ``{layer}/var``: the |log variance
ratio|; :func:`normbench.norms.batch_noise`), over the first training samples in batches of
the per-device batch ``batch``: the noise BN trained with. It runs with ``bn_noise=true``
(a few seconds a run at batch 2: off unless a study reports it) on a model with batch
statistics, over at most :data:`SAMPLES` of the precise-BN samples
(``norm.precise_bn_samples``); ``scripts/calibrate.py`` measures the same for the untrained
model on photographs."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig
from torch import nn

from normbench.config.rules import FLAG
from normbench.norms import batch_noise, batch_statistics_modules
from normbench.probes.base import Point, Probe, first_batches
from normbench.run.sinks import Row

# the config key this probe reads, with the values it takes (checks.all_rules)
CONFIG = {"bn_noise": FLAG}
SPLIT = "bn_noise"
SAMPLES = 512  # 256 batches at batch 2, 16 at 32: a few seconds of forward passes


class BNNoise(Probe):
    def __init__(self, samples: int, batch: int) -> None:
        self.samples, self.batch = samples, batch

    def at_end(self, at: Point) -> list[Row]:
        batches = first_batches(at.trainer.data, self.batch, self.samples)
        noise = batch_noise(at.trainer.model, batches)
        return [(at.step, at.epoch, SPLIT, key, value) for key, value in noise.items()]


def make(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> Probe | None:
    if not cfg.bn_noise:
        return None
    samples = min(cfg.norm.get("precise_bn_samples") or 0, SAMPLES)
    return BNNoise(samples, cfg.batch) if samples and batch_statistics_modules(model) else None
