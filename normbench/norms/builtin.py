"""The standard normalizations, backed by torch's modules.

Semantics (Wu & He 2018, Fig. 2), for images (N, C, H, W) and vectors (N, C):
- batch: per channel over (N, H, W) / over N; running statistics for eval;
- layer: per sample over (C, H, W) (GroupNorm with one group, per-channel affine, as in
  the GroupNorm paper) / over C;
- instance: per sample and channel over (H, W); undefined for vectors;
- group: per sample over groups of channels;
- none: identity.
"""

from __future__ import annotations

from torch import nn

from normbench.norms.registry import InvalidNorm, register_norm


@register_norm("none")
def make_none(num_features: int, layout: str) -> nn.Module:
    return nn.Identity()


@register_norm("batch", batch_statistics=True)
def make_batch(
    num_features: int, layout: str, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True
) -> nn.Module:
    cls = nn.BatchNorm2d if layout == "image" else nn.BatchNorm1d
    return cls(num_features, eps=eps, momentum=momentum, affine=affine)


@register_norm("layer")
def make_layer(num_features: int, layout: str, eps: float = 1e-5, affine: bool = True) -> nn.Module:
    if layout == "image":
        return nn.GroupNorm(1, num_features, eps=eps, affine=affine)
    return nn.LayerNorm(num_features, eps=eps, elementwise_affine=affine)


@register_norm(
    "instance",
    layouts=("image",),
    why_not="instance norm normalises each channel of each sample over its spatial positions, "
    "and vector features have none (one value per channel and sample)",
)
def make_instance(num_features: int, layout: str, eps: float = 1e-5, affine: bool = True) -> nn.Module:
    return nn.InstanceNorm2d(num_features, eps=eps, affine=affine, track_running_stats=False)


def group_count(
    num_features: int, layout: str, num_groups: int | None, channels_per_group: int | None
) -> int | InvalidNorm:
    """Number of groups for a layer, or an :class:`InvalidNorm` saying why the options do not
    fit it (the model still builds; the runner then names the layer). Shared by every GroupNorm
    implementation. ``channels_per_group`` wins when set; otherwise ``num_groups`` capped to
    the channels."""
    if channels_per_group is not None:
        key, value = "norm.channels_per_group", channels_per_group
        ok = channels_per_group >= 1 and num_features % channels_per_group == 0
        groups = num_features // channels_per_group if ok else 0
    else:
        key, value = "norm.num_groups", num_groups
        groups = min(num_groups or 32, num_features)
        ok = groups >= 1 and num_features % groups == 0
    if not ok:
        hint = "" if channels_per_group is not None else ", or set norm.channels_per_group"
        return InvalidNorm(
            key,
            value,
            f"does not divide the {num_features} channels; use a divisor "
            f"of {num_features}: {_divisors(num_features)}{hint}",
        )
    if layout != "image" and groups == num_features > 1:
        # a group of one vector feature is normalised over a single value: always zero
        return InvalidNorm(
            key,
            value,
            (
                f"makes groups of one feature on {num_features} vector features, which normalise to "
                f"zero; use at least 2 features per group (norm.num_groups<={num_features // 2})"
            ),
        )
    return groups


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


@register_norm("group")
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
    return nn.GroupNorm(groups, num_features, eps=eps, affine=affine)
