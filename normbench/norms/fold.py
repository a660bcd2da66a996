"""Fold BatchNorm into the preceding Conv/Linear for inference (source article 3).

In eval mode a BN is a per-channel affine map with frozen statistics, so after a Conv or
Linear it can be absorbed into that layer: per output channel c,
    W'_c = W_c * s_c,   b'_c = (b_c - mu_c) * s_c + beta_c,   s_c = gamma_c / sqrt(var_c + eps).
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn
from torch.nn.utils import parametrize

from normbench.norms.diagnostics import has_population_statistics

# layers whose weight has the output channels first, as BN's per-channel affine needs
_FOLDABLE_INTO = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def is_batchnorm_like(module: nn.Module) -> bool:
    """A module that in eval mode computes (x - running_mean) / sqrt(running_var + eps)
    * weight + bias per channel: torch's and the reference BatchNorms, and the variants
    (batch renorm, ghost batch) whose eval mode is plain BN. Duck-typed on the attributes;
    instance norm with running statistics uses them in eval too, but it is no BN."""
    return (
        has_population_statistics(module)
        and isinstance(getattr(module, "eps", None), float)
        and hasattr(module, "weight")
        and hasattr(module, "bias")
        and getattr(module, "track_running_stats", True)
        # a norm with BN's buffers whose eval is another function (EvoNorm-B0) says so
        and getattr(module, "folds_as_batch_norm", True)
    )


class _NormLeafTracer(fx.Tracer):
    """Keeps every BN-like module and every normbench norm as one node: their forward
    branches on the input's shape, which symbolic tracing cannot follow."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return (
            is_batchnorm_like(m)
            or type(m).__module__.startswith("normbench.norms")
            or super().is_leaf_module(m, qualname)
        )


def foldable_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(layer, bn) qualified names where the BN's only input is the layer's output and
    nothing else reads that output; each module called exactly once in the traced graph."""
    try:
        graph = _NormLeafTracer().trace(model)
    except Exception as err:  # fx raises various types for untraceable code
        raise TypeError(f"fold_batchnorm needs a model torch.fx can trace: {err}") from err
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not is_batchnorm_like(modules[node.target]):
            continue
        src = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if not isinstance(src, fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        layer, bn = modules[src.target], modules[node.target]
        if (
            isinstance(layer, _FOLDABLE_INTO)
            and not parametrize.is_parametrized(layer)
            and calls[src.target] == calls[node.target] == 1
            and layer.weight.shape[0] == bn.running_mean.numel()
        ):
            pairs.append((src.target, node.target))
    return pairs


@torch.no_grad()
def fold_into(layer: nn.Module, bn: nn.Module) -> None:
    """Absorb eval-mode ``bn`` into ``layer`` in place (computed in float64, stored back)."""
    weight = layer.weight.double()  # (C_out, ...)
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)  # (C_out,)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    bias = layer.bias.double() if layer.bias is not None else torch.zeros_like(scale)
    new_bias = (bias - bn.running_mean.double()) * scale
    if bn.bias is not None:
        new_bias = new_bias + bn.bias.double()
    layer.weight.copy_(weight * scale.view(-1, *[1] * (weight.dim() - 1)))
    if layer.bias is None:
        layer.bias = nn.Parameter(layer.weight.new_empty(weight.shape[0]))
    layer.bias.copy_(new_bias)


def _set_submodule(model: nn.Module, qualname: str, module: nn.Module) -> None:
    parent_name, _, child = qualname.rpartition(".")
    setattr(model.get_submodule(parent_name), child, module)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode deep copy of ``model`` in which every BatchNorm that directly follows a
    Conv1d/2d/3d or Linear (whose output feeds nothing else) is folded into that layer and
    replaced by ``nn.Identity``. Everything else is untouched; ``model`` is not modified.

    The model must be traceable by torch.fx. A Linear -> BatchNorm1d pair is folded on the
    assumption that the BN normalises the Linear's output features, i.e. input (N, F)
    (a BatchNorm1d on (N, C, L) after a Linear over L with C == out_features would be wrong).
    """
    folded = copy.deepcopy(model).eval()
    modules = dict(folded.named_modules())
    for layer_name, bn_name in foldable_pairs(folded):
        fold_into(modules[layer_name], modules[bn_name])
        _set_submodule(folded, bn_name, nn.Identity())
    return folded
