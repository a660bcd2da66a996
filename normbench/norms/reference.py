"""Hand-written normalizations: forward and backward written out, checked against torch's.

These are the derivations of the source articles (3, 5) made executable. Each class has the
constructor arguments and state_dict keys of its torch namesake, so a checkpoint loads into
either; ``norm.impl=reference`` runs any experiment on them. The maths is in two
``torch.autograd.Function`` s with closed-form gradients:

- :class:`_Normalize`: statistics from the input itself (BN in training; LN, GN, IN always).
  With xhat = (x - mean) / sqrt(var + eps) over a set of M values and g = dL/dxhat,
  dL/dx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps)   (means over the set),
  because every x of the set moves the mean and the variance.
- :class:`_NormalizeWith`: given statistics (BN in eval), an affine map:
  dL/dx = g / sqrt(var + eps).

Running statistics follow torch: running = (1 - momentum) * running + momentum * batch, with
the unbiased batch variance (M / (M - 1)); ``momentum=None`` is the cumulative average.

All tensors go through one layout, (N, C, L): channels second, everything after flattened.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from normbench.norms.base import RunningStatsNorm
from normbench.norms.builtin import standard_makers
from normbench.norms.registry import register_impl

Tensor = torch.Tensor


def _stat_view(x: Tensor, groups: int) -> tuple[Tensor, tuple[int, ...]]:
    """The view of x (N, C, L) whose reduced dims hold one statistics set each.

    groups == 0: batch norm, per channel over (N, L): x itself, dims (0, 2).
    groups >= 1: per sample over C // groups channels: (N, G, C // G * L), dim 2.
    """
    if groups == 0:
        return x, (0, 2)
    return x.reshape(x.shape[0], groups, -1), (2,)


def _affine(xhat: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    """xhat (N, C, L) * weight (C,) + bias (C,)."""
    y = xhat if weight is None else xhat * weight.view(1, -1, 1)
    return y if bias is None else y + bias.view(1, -1, 1)


def _affine_grads(ctx: Any, dy: Tensor, xhat: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """dL/dweight and dL/dbias (C,), for the inputs at positions 1 and 2 of ``ctx``."""
    dw = (dy * xhat).sum((0, 2)) if ctx.needs_input_grad[1] else None
    db = dy.sum((0, 2)) if ctx.needs_input_grad[2] else None
    return dw, db


class _Normalize(torch.autograd.Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias with x (N, C, L) and the statistics
    of x itself (see :func:`_stat_view` for ``groups``). Returns (y, mean, var), var biased;
    mean and var carry no gradient: they only feed the running averages."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, groups: int, eps: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        xs, dims = _stat_view(x, groups)
        mean = xs.mean(dims, keepdim=True)
        var = (xs - mean).square().mean(dims, keepdim=True)  # two passes: no cancellation
        invstd = torch.rsqrt(var + eps)
        xhat = ((xs - mean) * invstd).reshape(x.shape)  # (N, C, L)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.groups = groups
        shape = (-1,) if groups == 0 else (x.shape[0], groups)  # (C,) or (N, G)
        mean, var = mean.reshape(shape), var.reshape(shape)
        ctx.mark_non_differentiable(mean, var)
        return _affine(xhat, weight, bias), mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: Tensor, _dmean: Tensor, _dvar: Tensor) -> tuple[Tensor | None, ...]:
        xhat, invstd, weight = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            g = dy if weight is None else dy * weight.view(1, -1, 1)  # dL/dxhat, (N, C, L)
            gs, dims = _stat_view(g, ctx.groups)
            xs, _ = _stat_view(xhat, ctx.groups)
            proj = (gs * xs).mean(dims, keepdim=True)
            dx = (invstd * (gs - gs.mean(dims, keepdim=True) - xs * proj)).reshape(dy.shape)
        return (dx, *_affine_grads(ctx, dy, xhat), None, None)


class _NormalizeWith(torch.autograd.Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias with given per-channel statistics
    mean, var (C,) (BN in eval): no dependence between samples, so dL/dx is elementwise."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        mean: Tensor,
        var: Tensor,
        eps: float,
    ) -> Tensor:
        invstd = torch.rsqrt(var + eps)
        xhat = (x - mean.view(1, -1, 1)) * invstd.view(1, -1, 1)  # (N, C, L)
        ctx.save_for_backward(xhat, invstd, weight)
        return _affine(xhat, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        xhat, invstd, weight = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            scale = invstd if weight is None else weight * invstd
            dx = dy * scale.view(1, -1, 1)
        return (dx, *_affine_grads(ctx, dy, xhat), None, None, None)


class _BatchNorm(RunningStatsNorm):
    """Batch norm: per channel over (N, *); batch statistics in training (and whenever no
    running statistics are kept), running statistics in eval."""

    def _check_input_dim(self, x: Tensor) -> None:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        x3 = x.reshape(x.shape[0], self.num_features, -1)  # (N, C, L)
        if not self.training and self.running_mean is not None:
            return _NormalizeWith.apply(
                x3, self.weight, self.bias, self.running_mean, self.running_var, self.eps
            ).reshape(x.shape)
        count = x3.shape[0] * x3.shape[2]
        if self.training and count < 2:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {list(x.shape)}"
            )
        y, mean, var = _Normalize.apply(x3, self.weight, self.bias, 0, self.eps)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self._update_running(mean, var, count, factor)
        return y.reshape(x.shape)


class BatchNorm1d(_BatchNorm):
    """torch.nn.BatchNorm1d by hand: input (N, C) or (N, C, L)."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {x.dim()}D input)")


class BatchNorm2d(_BatchNorm):
    """torch.nn.BatchNorm2d by hand: input (N, C, H, W)."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"expected 4D input (got {x.dim()}D input)")


class InstanceNorm2d(RunningStatsNorm):
    """torch.nn.InstanceNorm2d by hand: per sample and channel over (H, W); input (N, C, H, W)
    or (C, H, W). With ``track_running_stats`` the running averages take the per-instance
    statistics averaged over the batch, and ``momentum=None`` means no update, as in torch."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in (3, 4):
            raise ValueError(f"expected 3D or 4D input (got {x.dim()}D input)")
        if x.dim() == 3:  # unbatched (C, H, W)
            return self.forward(x.unsqueeze(0)).squeeze(0)
        x3 = x.reshape(x.shape[0], self.num_features, -1)  # (N, C, L)
        if not self.training and self.track_running_stats:
            return _NormalizeWith.apply(
                x3, self.weight, self.bias, self.running_mean, self.running_var, self.eps
            ).reshape(x.shape)
        if self.training and x3.shape[2] < 2:
            raise ValueError(
                f"Expected more than 1 spatial element when training, got input size {list(x.shape)}"
            )
        y, mean, var = _Normalize.apply(x3, self.weight, self.bias, self.num_features, self.eps)
        if self.training and self.track_running_stats:
            # mean, var: (N, C); torch averages the per-instance updates over the batch
            self._update_running(mean.mean(0), var.mean(0), x3.shape[2], self.momentum or 0.0)
        return y.reshape(x.shape)


class GroupNorm(nn.Module):
    """torch.nn.GroupNorm by hand: per sample over groups of channels; input (N, C, *)."""

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if num_channels % num_groups:
            raise ValueError("num_channels must be divisible by num_groups")
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups,
            num_channels,
            eps,
            affine,
        )
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels, device=device, dtype=dtype))
            self.bias = nn.Parameter(torch.zeros(num_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        x3 = x.reshape(x.shape[0], self.num_channels, -1)  # (N, C, L)
        y, _, _ = _Normalize.apply(x3, self.weight, self.bias, self.num_groups, self.eps)
        return y.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LayerNorm(nn.Module):
    """torch.nn.LayerNorm by hand: per sample over the last dims ``normalized_shape``, with an
    elementwise affine. It is group norm with one group on (N', F, 1), F = prod(normalized_shape),
    each feature its own 'channel' for the affine."""

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        factory = {"device": device, "dtype": dtype}
        weight = nn.Parameter(torch.ones(shape, **factory)) if elementwise_affine else None
        self.register_parameter("weight", weight)
        self.register_parameter(
            "bias",
            nn.Parameter(torch.zeros(shape, **factory)) if elementwise_affine and bias else None,
        )

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[x.dim() - len(self.normalized_shape) :]) != self.normalized_shape:
            raise ValueError(
                f"expected input with shape [*, {', '.join(map(str, self.normalized_shape))}], "
                f"got {list(x.shape)}"
            )
        features = math.prod(self.normalized_shape)
        x3 = x.reshape(-1, features, 1)  # (N', F, 1)
        weight = None if self.weight is None else self.weight.reshape(features)
        bias = None if self.bias is None else self.bias.reshape(features)
        y, _, _ = _Normalize.apply(x3, weight, bias, 1, self.eps)
        return y.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


# Registry entries for norm.impl=reference: the standard norms' make functions (builtin.py) over
# the classes above, which have torch's names and constructor arguments. ``none`` is the identity
# in both implementations: there is nothing to write by hand.
_CLASSES = SimpleNamespace(
    BatchNorm1d=BatchNorm1d,
    BatchNorm2d=BatchNorm2d,
    LayerNorm=LayerNorm,
    GroupNorm=GroupNorm,
    InstanceNorm2d=InstanceNorm2d,
)
for _name, _make in standard_makers(_CLASSES).items():
    register_impl(_name, "reference")(_make)
