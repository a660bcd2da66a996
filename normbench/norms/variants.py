"""Batch-norm variants that take apart BN's small-batch failure (source article 3).

- ``batch_renorm`` (Ioffe 2017): keeps BN's batch statistics for the gradient but corrects the
  output towards the running statistics, so training and inference compute the same function
  (attacks the train/inference mismatch).
- ``ghost_batch`` (Hoffer et al. 2017): BN over virtual sub-batches of ``ghost_size`` samples of
  a larger optimisation batch: statistics as noisy as at batch ``ghost_size``, gradients averaged
  over the whole batch. Sweeping ``norm.ghost_size`` at a fixed ``batch`` separates the two.

Both keep torch's buffers (running_mean, running_var, num_batches_tracked) and conventions
(momentum update with the unbiased batch variance), and in eval mode are plain BN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from normbench.errors import ConfigError
from normbench.norms.base import RunningStatsNorm, divisors, per_shard
from normbench.norms.registry import register_norm

Tensor = torch.Tensor

# Ghost batches of 8: the batch size below which BN clearly degrades (GroupNorm paper), so the
# default runs at batch 8, 16, 32, ... and the sweep over ghost_size starts from BN's good side.
GHOST_SIZE = 8


def _channel_dims(x: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """For x (N, C, *): the dims reduced by BN, and the shape broadcasting (C,) against x."""
    return (0, *range(2, x.dim())), (1, -1, *[1] * (x.dim() - 2))


class _BatchStatsNorm(RunningStatsNorm):
    """Shared by the variants: eval is plain BN; training subclasses override ``_train``."""

    def __init__(self, num_features: int, eps: float, momentum: float, affine: bool) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats=True)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        xhat = self._train(x)
        _, shape = _channel_dims(x)
        if self.weight is not None:
            xhat = xhat * self.weight.view(shape)
        return xhat if self.bias is None else xhat + self.bias.view(shape)

    def _train(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class BatchRenorm(_BatchStatsNorm):
    """Batch Renormalization: in training
    y = ((x - mu_B) / sigma_B * r + d) * weight + bias, with
    r = clip(sigma_B / sigma, 1/r_max, r_max), d = clip((mu_B - mu) / sigma, -d_max, d_max),
    r and d treated as constants in backprop, (mu, sigma^2 + eps) the running statistics before
    this step. Unclipped, the output equals eval-mode BN's. r_max=1, d_max=0 is BN.

    Warm-up, as in the paper (BN for the first 5k steps, then r_max, d_max relaxed gradually):
    for ``warmup_steps`` training steps the limits are (1, 0), i.e. plain BN while the running
    statistics become trustworthy; over the next ``warmup_steps`` steps they grow linearly to
    (r_max, d_max). The step is ``num_batches_tracked``, so a resumed run continues the ramp.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup_steps: int = 500,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine)
        self.r_max, self.d_max, self.warmup_steps = r_max, d_max, warmup_steps

    def limits(self) -> tuple[Tensor, Tensor]:
        """(r_max, d_max) at the current step, as 0-dim tensors (no host sync per step)."""
        step = self.num_batches_tracked.to(self.running_var.dtype)
        w = self.warmup_steps
        ramp = ((step - w) / w).clamp(0, 1) if w > 0 else torch.ones_like(step)
        return 1 + (self.r_max - 1) * ramp, self.d_max * ramp

    def _train(self, x: Tensor) -> Tensor:
        dims, shape = _channel_dims(x)
        count = x.numel() // self.num_features
        if count < 2:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {list(x.shape)}"
            )
        var_b, mean_b = torch.var_mean(x, dim=dims, correction=0)  # (C,)
        std_b = (var_b + self.eps).sqrt()
        std = (self.running_var + self.eps).sqrt()
        r_max, d_max = self.limits()
        r = torch.minimum(torch.maximum(std_b.detach() / std, 1 / r_max), r_max)
        d = torch.minimum(torch.maximum((mean_b.detach() - self.running_mean) / std, -d_max), d_max)
        xhat = (x - mean_b.view(shape)) / std_b.view(shape) * r.view(shape) + d.view(shape)
        self.num_batches_tracked.add_(1)
        self._update_running(mean_b.detach(), var_b.detach(), count, self.momentum)
        return xhat

    def extra_repr(self) -> str:
        limits = f"r_max={self.r_max}, d_max={self.d_max}, warmup_steps={self.warmup_steps}"
        return f"{super().extra_repr()}, {limits}"


class GhostBatchNorm(_BatchStatsNorm):
    """Batch norm in training over consecutive chunks of ``ghost_size`` samples, each chunk
    with its own statistics; the batch size must be a multiple of ``ghost_size``. The chunks are
    :func:`~normbench.norms.base.per_shard`'s shards, the mechanism of simulated devices too
    (``devices``): ghost batches of g at batch B are B/g devices of g samples each.

    Running statistics: the chunks' means and unbiased variances are averaged and applied as
    ONE momentum update per optimisation step, so the averaging horizon (in steps) does not
    change with ghost_size and only the noise of the normalising statistics does. (Updating
    once per chunk, as ``torch.cat([bn(c) for c in x.chunk(k)])`` does, would shorten the
    horizon k-fold.) The average of within-chunk unbiased variances estimates the population
    variance, which is what eval mode normalises with.
    """

    def __init__(
        self,
        num_features: int,
        ghost_size: int = GHOST_SIZE,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine)
        self.ghost_size = ghost_size

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        n, g = x.shape[0], self.ghost_size
        if n % g:
            raise ConfigError(
                "norm.ghost_size",
                g,
                f"does not divide this batch of {n} samples; "
                f"use a divisor of {n}: {divisors(n, smallest=2)} (or drop incomplete batches)",
            )
        return per_shard(self, self._batch_norm, x, n // g)

    def _batch_norm(self, x: Tensor) -> Tensor:
        """One chunk: torch's training-mode BN, one step counted."""
        self.num_batches_tracked.add_(1)
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum, self.eps
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ghost_size={self.ghost_size}"


@register_norm("batch_renorm", batch_statistics=True, impl="normbench", paper="BRN")
def make_batch_renorm(
    num_features: int,
    layout: str,
    eps: float = 1e-5,
    momentum: float = 0.1,
    affine: bool = True,
    r_max: float = 3.0,
    d_max: float = 5.0,
    warmup_steps: int = 500,
) -> nn.Module:
    if r_max < 1:
        raise ConfigError(
            "norm.r_max", r_max, "must be >= 1 (r is clipped to [1/r_max, r_max]); 1 is plain BN"
        )
    if d_max < 0:
        raise ConfigError(
            "norm.d_max", d_max, "must be >= 0 (d is clipped to [-d_max, d_max]); 0 is plain BN"
        )
    if warmup_steps < 0:
        raise ConfigError("norm.warmup_steps", warmup_steps, "must be >= 0 (0: no warm-up)")
    return BatchRenorm(num_features, eps, momentum, affine, r_max, d_max, warmup_steps)


def check_ghost_size(options: Mapping[str, Any], batch: int) -> None:
    """Before training: ``norm.ghost_size`` must divide the optimisation batch."""
    size = options.get("ghost_size", GHOST_SIZE)
    if not isinstance(size, int) or size < 2:
        raise ConfigError(
            "norm.ghost_size",
            size,
            "must be an integer >= 2: each ghost batch normalises with its own statistics",
        )
    if batch % size:
        raise ConfigError(
            "norm.ghost_size",
            size,
            f"does not divide batch={batch}; use a divisor of {batch}: {divisors(batch, smallest=2)}",
        )


@register_norm(
    "ghost_batch", batch_statistics=True, check=check_ghost_size, impl="normbench", paper="GhostBN"
)
def make_ghost_batch(
    num_features: int,
    layout: str,
    ghost_size: int = GHOST_SIZE,
    eps: float = 1e-5,
    momentum: float = 0.1,
    affine: bool = True,
) -> nn.Module:
    return GhostBatchNorm(num_features, ghost_size, eps, momentum, affine)
