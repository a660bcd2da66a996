"""Weight standardisation (Qiao et al. 2019), the usual companion of GroupNorm at small batch.

Each convolution uses W_hat = (W - mean) / (std + eps), statistics per output channel over its
fan-in (C_in/groups * kh * kw). It normalises the weights instead of the activations, so it
adds no dependence between samples; with GN it recovers most of BN's large-batch accuracy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


class StandardizeWeight(nn.Module):
    """The parametrization: W (C_out, C_in/groups, kh, kw) -> standardised per output channel.

    std is the population std over the fan-in (correction 0), so W_hat has mean 0 and std 1
    up to eps; the scale is irrelevant anyway when a norm follows the convolution.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.flatten(1)  # (C_out, fan_in)
        std, mean = torch.std_mean(flat, dim=1, keepdim=True, correction=0)
        return ((flat - mean) / (std + self.eps)).view_as(weight)


def _is_standardized(conv: nn.Module) -> bool:
    return parametrize.is_parametrized(conv, "weight") and any(
        isinstance(p, StandardizeWeight) for p in conv.parametrizations["weight"]
    )


def standardize_conv_weights(model: nn.Module, eps: float = 1e-5) -> nn.Module:
    """Register :class:`StandardizeWeight` on the weight of every ``nn.Conv2d`` of ``model``
    (in place; returned for chaining). Idempotent. The trained tensor becomes
    ``<conv>.parametrizations.weight.original`` in the state_dict, so checkpoints load only
    into a model standardised the same way."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and not _is_standardized(m)]
    for conv in convs:  # collected first: registering adds modules to the tree
        parametrize.register_parametrization(conv, "weight", StandardizeWeight(eps))
    return model
