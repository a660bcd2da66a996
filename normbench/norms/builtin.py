"""The standard normalizations, backed by torch's modules.

Semantics (Wu & He 2018, Fig. 2), for images (N, C, H, W) and vectors (N, C):
- batch: per channel over (N, H, W) / over N; running statistics for eval;
- layer: per sample over (C, H, W) (GroupNorm with one group, per-channel affine, as in
  the GroupNorm paper) / over C;
- instance: per sample and channel over (H, W); undefined for vectors;
- group: per sample over groups of channels;
- none: identity.

The make functions are written once, over a library of classes (:func:`standard_makers`):
``torch.nn`` here, and the hand-written :mod:`normbench.norms.reference` for
``norm.impl=reference``, whose classes have torch's names and constructor arguments. So both
implementations take the same options and refuse the same settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from normbench.norms.base import divisors
from normbench.norms.registry import InvalidNorm, register_norm


def group_count(
    num_features: int, layout: str, num_groups: int | None, channels_per_group: int | None
) -> int | InvalidNorm:
    """Number of groups for a layer, or an :class:`InvalidNorm` saying why the options do not
    fit it (the model still builds; the runner then names the layer). ``channels_per_group``
    wins when set; otherwise ``num_groups`` capped to the channels."""
    # groups of one vector feature normalise a single value (always to zero): refused below,
    # so the divisors offered for vectors leave them out
    one_per_group = layout != "image" and num_features > 1
    if channels_per_group is not None:
        key, value = "norm.channels_per_group", channels_per_group
        ok = channels_per_group >= 1 and num_features % channels_per_group == 0
        groups = num_features // channels_per_group if ok else 0
        offer = divisors(num_features, smallest=2 if one_per_group else 1)
    else:
        key, value = "norm.num_groups", num_groups
        groups = min(num_groups or 32, num_features)
        ok = groups >= 1 and num_features % groups == 0
        offer = divisors(num_features, largest=num_features - 1 if one_per_group else None)
    if not ok:
        hint = "" if channels_per_group is not None else ", or set norm.channels_per_group"
        return InvalidNorm(
            key,
            value,
            f"does not divide the {num_features} channels; use a divisor of {num_features}: {offer}{hint}",
        )
    if one_per_group and groups == num_features:
        return InvalidNorm(
            key,
            value,
            (
                f"makes groups of one feature on {num_features} vector features, which normalise to "
                f"zero; use at least 2 features per group (norm.num_groups<={num_features // 2})"
            ),
        )
    return groups


def standard_makers(lib: Any) -> dict[str, Callable[..., nn.Module]]:
    """``make(num_features, layout, **options)`` of each standard norm, building the classes of
    ``lib`` (a namespace with BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm, InstanceNorm2d)."""

    def make_none(num_features: int, layout: str) -> nn.Module:
        return nn.Identity()

    def make_batch(
        num_features: int, layout: str, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True
    ) -> nn.Module:
        cls = lib.BatchNorm2d if layout == "image" else lib.BatchNorm1d
        return cls(num_features, eps=eps, momentum=momentum, affine=affine)

    def make_layer(num_features: int, layout: str, eps: float = 1e-5, affine: bool = True) -> nn.Module:
        if layout == "image":  # over (C, H, W) with a per-channel affine
            return lib.GroupNorm(1, num_features, eps=eps, affine=affine)
        return lib.LayerNorm(num_features, eps=eps, elementwise_affine=affine)

    def make_instance(num_features: int, layout: str, eps: float = 1e-5, affine: bool = True) -> nn.Module:
        return lib.InstanceNorm2d(num_features, eps=eps, affine=affine, track_running_stats=False)

    def make_group(
        num_features: int,
        layout: str,
        num_groups: int | None = 32,
        channels_per_group: int | None = None,
        eps: float = 1e-5,
        affine: bool = True,
    ) -> nn.Module:
        groups = group_count(num_features, layout, num_groups, channels_per_group)
        if isinstance(groups, InvalidNorm):
            return groups
        return lib.GroupNorm(groups, num_features, eps=eps, affine=affine)

    return {
        "none": make_none,
        "batch": make_batch,
        "layer": make_layer,
        "instance": make_instance,
        "group": make_group,
    }


_TORCH = standard_makers(nn)
# Figure styles (colour-blind-safe colours; matplotlib's dashed, dotted and dash-dot patterns)
register_norm("none", style=("#000000", (1.0, 1.0), "x"))(_TORCH["none"])
register_norm("batch", batch_statistics=True, style=("#0072B2", (), "o"), paper="BN")(_TORCH["batch"])
register_norm("layer", style=("#E69F00", (3.7, 1.6), "s"), paper="LN")(_TORCH["layer"])
register_norm(
    "instance",
    layouts=("image",),
    why_not="instance norm normalises each channel of each sample over its spatial positions, "
    "and vector features have none (one value per channel and sample)",
    style=("#009E73", (1.0, 1.65), "^"),
    paper="IN",
)(_TORCH["instance"])
register_norm("group", style=("#D55E00", (6.4, 1.6, 1.0, 1.6), "D"), paper="GN")(_TORCH["group"])
