"""Per-layer activation std on the first training batch, at step 0 and after every epoch
(``activations=true``): split ``activations``, metric ``std/<layer>`` counting from 1, and
the first layer where it is NaN or inf in ``final``."""

from __future__ import annotations

import math
from collections.abc import Callable

from omegaconf import DictConfig
from torch import nn

from normbench.config.rules import FLAG
from normbench.probes.base import Metric, Point, Probe
from normbench.run.sinks import Row
from normbench.run.train import activation_stds


class Activations(Probe):
    metrics = (
        Metric(
            "activations/first_nonfinite_layer",
            "layer",
            False,
            "the first layer whose activations are not finite",
        ),
    )

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def at_start(self, at: Point) -> list[Row]:
        return self.at_epoch(at)

    def at_epoch(self, at: Point) -> list[Row]:
        data = at.trainer.data
        x = data.x_train[: self.batch]
        if data.prepare is not None:
            x = data.prepare(x)
        stds = activation_stds(at.trainer.model, x)
        bad = [i for i, s in enumerate(stds, 1) if not math.isfinite(s)]
        at.final["activations/first_nonfinite_layer"] = bad[0] if bad else float("nan")
        return [(at.step, at.epoch, "activations", f"std/{i}", s) for i, s in enumerate(stds, 1)]


# the config key this probe reads, with the values it takes (checks.all_rules)
CONFIG = {"activations": FLAG}


def make(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> Probe | None:
    return Activations(cfg.batch) if cfg.activations else None
