"""The small-batch remedies that drop BN's batch statistics (or keep only their variance),
written from their papers' equations (x: (N, C, H, W) unless said; statistics biased):

- ``frn``: Filter Response Normalization + TLU (Singh & Krishnan 2020), per sample and channel:
  nu2 = mean_{H,W} x^2, y = gamma * x / sqrt(nu2 + eps) + beta, z = max(y, tau) with a learned
  tau per channel. No mean subtraction, no batch dependence. ``learned_eps``: eps = eps0 + |e|
  with e learned (one per layer), the paper's fix for small feature maps.
- ``evonorm_b0`` (Liu et al. 2020): y = x / max(sqrt(s2_B + eps), v * x + sqrt(s2_I + eps))
  * gamma + beta; s2_B the per-channel variance over (N, H, W) (its running average in eval),
  s2_I the per-sample, per-channel variance over (H, W).
- ``evonorm_s0``: y = x * sigmoid(v * x) / sqrt(s2_G + eps) * gamma + beta, s2_G the per-sample
  variance over a group of channels (and H, W), GroupNorm's groups.
- ``rms``: RMSNorm (Zhang & Sennrich 2019), y = x / sqrt(mean_C x^2 + eps) * g over a feature
  vector: torch's ``nn.RMSNorm``.

FRN+TLU and EvoNorm were designed to replace a norm AND the ReLU after it; the models here keep
their ReLU after each norm (and after the residual sum), so where one follows, TLU computes
max(y, tau, 0) and EvoNorm's output is rectified too. That is what this harness measures.
"""

from __future__ import annotations

import torch
from torch import nn

from normbench.norms.base import RunningStatsNorm
from normbench.norms.builtin import group_count
from normbench.norms.registry import InvalidNorm, register_norm

Tensor = torch.Tensor
SPATIAL = (2, 3)
# FRN's learned epsilon starts here (the paper learns |e| on top of a fixed eps0)
LEARNED_EPS_INIT = 1e-4


def _channels(p: Tensor, x: Tensor) -> Tensor:
    """A per-channel (C,) tensor shaped to broadcast against x (N, C, *)."""
    return p.view(1, -1, *[1] * (x.dim() - 2))


class FilterResponseNorm(nn.Module):
    """FRN followed by TLU (``tlu=False``: FRN alone). Images only: on vectors nu2 = x^2 and
    FRN is x / sqrt(x^2 + eps), a smoothed sign function."""

    def __init__(
        self, num_features: int, eps: float = 1e-6, learned_eps: bool = False, tlu: bool = True
    ) -> None:
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.tau = nn.Parameter(torch.zeros(num_features)) if tlu else None
        self.eps_learned = nn.Parameter(torch.tensor(LEARNED_EPS_INIT)) if learned_eps else None

    def forward(self, x: Tensor) -> Tensor:
        eps = self.eps if self.eps_learned is None else self.eps + self.eps_learned.abs()
        nu2 = x.square().mean(dim=SPATIAL, keepdim=True)
        y = x * torch.rsqrt(nu2 + eps) * _channels(self.weight, x) + _channels(self.bias, x)
        return y if self.tau is None else torch.maximum(y, _channels(self.tau, x))

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, learned_eps={self.eps_learned is not None}, "
            f"tlu={self.tau is not None}"
        )


class EvoNormB0(RunningStatsNorm):
    """EvoNorm-B0. Keeps BN's buffers (running_mean too, unused by its eval but read by the
    running-statistics diagnostics and Precise BN, which set running_var to the population
    variance that eval divides by), with torch's momentum convention and unbiased update.
    Its eval is not BN's affine map, so it must never be folded into a convolution."""

    folds_as_batch_norm = False  # read by normbench.norms.fold

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__(num_features, eps, momentum, affine=True, track_running_stats=True)
        self.v = nn.Parameter(torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            dims = (0, *SPATIAL)
            var_b, mean_b = torch.var_mean(x, dim=dims, correction=0)
            self.num_batches_tracked.add_(1)
            self._update_running(mean_b.detach(), var_b.detach(), x.numel() // x.shape[1], self.momentum)
        else:
            var_b = self.running_var
        var_i = x.var(dim=SPATIAL, keepdim=True, correction=0)
        left = _channels((var_b + self.eps).sqrt(), x)
        right = _channels(self.v, x) * x + (var_i + self.eps).sqrt()
        return x / torch.maximum(left, right) * _channels(self.weight, x) + _channels(self.bias, x)


class EvoNormS0(nn.Module):
    """EvoNorm-S0 over ``groups`` groups of channels (vectors: of features)."""

    def __init__(self, num_features: int, groups: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features, self.groups, self.eps = num_features, groups, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.v = nn.Parameter(torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        grouped = x.reshape(x.shape[0], self.groups, -1)
        var = grouped.var(dim=-1, keepdim=True, correction=0)
        std = (var + self.eps).sqrt().expand_as(grouped).reshape(x.shape)
        y = x * torch.sigmoid(_channels(self.v, x) * x) / std
        return y * _channels(self.weight, x) + _channels(self.bias, x)

    def extra_repr(self) -> str:
        return f"{self.num_features}, groups={self.groups}, eps={self.eps}"


@register_norm(
    "frn",
    layouts=("image",),
    impl="normbench",
    why_not="FRN normalises each channel by its mean square over the spatial positions, and "
    "vector features have one value there (FRN would be a sign function)",
    paper="FRN",
)
def make_frn(
    num_features: int, layout: str, eps: float = 1e-6, learned_eps: bool = False, tlu: bool = True
) -> nn.Module:
    return FilterResponseNorm(num_features, eps, learned_eps, tlu)


@register_norm(
    "evonorm_b0",
    layouts=("image",),
    batch_statistics=True,
    impl="normbench",
    why_not="EvoNorm-B0 divides by a per-sample variance over the spatial positions, and vector "
    "features have one value there",
    paper="EvoNorm-B0",
)
def make_evonorm_b0(num_features: int, layout: str, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    return EvoNormB0(num_features, eps, momentum)


@register_norm("evonorm_s0", impl="normbench", paper="EvoNorm-S0")
def make_evonorm_s0(
    num_features: int,
    layout: str,
    num_groups: int | None = 32,
    channels_per_group: int | None = None,
    eps: float = 1e-5,
) -> nn.Module:
    groups = group_count(num_features, layout, num_groups, channels_per_group)
    if isinstance(groups, InvalidNorm):
        return groups
    return EvoNormS0(num_features, groups, eps)


@register_norm(
    "rms",
    layouts=("vector",),
    why_not="RMSNorm normalises a feature vector (a Linear layer's or a recurrent step's); for "
    "images without the mean use frn",
    paper="RMSNorm",
)
def make_rms(num_features: int, layout: str, eps: float = 1e-5, affine: bool = True) -> nn.Module:
    return nn.RMSNorm(num_features, eps=eps, elementwise_affine=affine)
