"""The share of weight-matrix entries near zero (L1's sparsity, source article 2) and their
mean |w| (what L2 shrinks), split ``weights``; once per epoch, one sync."""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from normbench.optim import weight_matrices
from normbench.probes.base import Metric, Point, Probe
from normbench.run.sinks import Row

# |w| below this counts as pruned: L1 with (sub)gradient steps makes weights hover around 0
# rather than hit it exactly, so an exact-zero count would read 0 under any L1 strength.
NEAR_ZERO = 1e-3
NEAR_ZERO_NOTE = f"share of weight-matrix entries with |w| < {NEAR_ZERO:g} (sparsity: L1)"


class Weights(Probe):
    metrics = (
        Metric("weights/near_zero", "fraction", False, NEAR_ZERO_NOTE, table=True),
        Metric("weights/abs_mean", "", False, "mean |w| of the weight matrices (what L2 shrinks)"),
    )

    @torch.no_grad()
    def at_epoch(self, at: Point) -> list[Row]:
        flat = torch.cat([w.abs().flatten() for w in weight_matrices(at.trainer.model)])
        near_zero, abs_mean = torch.stack([(flat < NEAR_ZERO).float().mean(), flat.mean()]).tolist()
        at.final.update({"weights/near_zero": near_zero, "weights/abs_mean": abs_mean})
        return [
            (at.step, at.epoch, "weights", "near_zero", near_zero),
            (at.step, at.epoch, "weights", "abs_mean", abs_mean),
        ]


def make(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> Probe:
    return Weights()
