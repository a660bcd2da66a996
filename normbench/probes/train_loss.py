"""The training loss over windows of ``log_every`` steps, and the learning rate (split train)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from normbench.probes.base import Metric, Point, Probe
from normbench.run.sinks import Row


class TrainLoss(Probe):
    metrics = (
        Metric("train/loss", "nats", False, "mean training loss of the last epoch's steps", table=True),
    )

    def __init__(self, every: int, lr_at: Callable[[int], float]) -> None:
        self.every, self.lr_at = every, lr_at

    def at_epoch(self, at: Point) -> list[Row]:
        assert at.losses is not None
        rows = train_rows(at.losses, at.epoch, at.step - at.trainer.steps_per_epoch, self.every, self.lr_at)
        at.final["train/loss"] = at.losses.mean().item()
        return rows


def train_rows(
    losses: torch.Tensor, epoch: int, step0: int, every: int, lr_at: Callable[[int], float]
) -> list[Row]:
    """Mean training loss over windows of ``every`` steps (the last one may be shorter),
    stamped with the global step count at the window's end, plus the lr in use there."""
    rows: list[Row] = []
    for start in range(0, len(losses), every):
        end = min(start + every, len(losses))
        step = step0 + end
        rows.append((step, epoch, "train", "loss", losses[start:end].mean().item()))
        rows.append((step, epoch, "train", "lr", lr_at(step - 1)))
    return rows


def make(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> Probe:
    return TrainLoss(cfg.log_every, lr_at)
