"""MLP: flatten, ``depth`` hidden blocks Linear -> norm -> ReLU (-> Dropout), Linear head.

``depth=1, width=50`` is source article 1's 10-50-2 network; ``init="normal"`` with a deep,
bias-free MLP is source article 2's exploding-activation case. Defaults: see
:mod:`normbench.models` (signature defaults, mirrored by ``conf/model/mlp.yaml``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from normbench.errors import ConfigError
from normbench.models.registry import Footprint, register_model
from normbench.norms import NormBuilder


def _init_normal(linear: nn.Linear) -> None:
    # N(0, 1) weights: activations grow by ~sqrt(fan_in) per layer (article 2's explosion)
    nn.init.normal_(linear.weight, 0.0, 1.0)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def _init_kaiming(linear: nn.Linear) -> None:
    # He et al. 2015: std sqrt(2 / fan_in) keeps the activation scale through ReLUs
    nn.init.kaiming_normal_(linear.weight, mode="fan_in", nonlinearity="relu")
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


# "default" keeps torch's own Linear init
INITS: dict[str, Callable[[nn.Linear], None] | None] = {
    "default": None,
    "normal": _init_normal,
    "kaiming": _init_kaiming,
}


@register_model("mlp", layout="vector", modalities=("tabular", "image", "sequence"), native="tabular")
class MLP(nn.Module):
    """Multi-layer perceptron on any input, flattened to (N, D).

    ``self.blocks[i]`` is hidden block ``i`` (Linear, norm, ReLU, optional Dropout), so a
    forward hook on it sees that layer's activations.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        norm_layer: NormBuilder,
        depth: int = 1,
        width: int = 128,
        dropout: float = 0.0,
        bias: bool = True,
        init: str = "default",
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise ConfigError("model.depth", depth, "must be an integer >= 1 (hidden blocks)")
        if not isinstance(width, int) or width < 1:
            raise ConfigError("model.width", width, "must be an integer >= 1 (units per block)")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError("model.dropout", dropout, "the drop probability must be in [0, 1)")
        if init not in INITS:
            raise ConfigError("model.init", init, f"unknown init; use one of {', '.join(INITS)}")

        features = math.prod(input_shape)
        blocks = []
        for i in range(depth):
            layers: list[nn.Module] = [
                nn.Linear(features if i == 0 else width, width, bias=bias),
                norm_layer(width),
                nn.ReLU(),
            ]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(width, num_classes)

        initialise = INITS[init]
        if initialise is not None:
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    initialise(module)

    @staticmethod
    def footprint(
        input_shape: tuple[int, ...],
        num_classes: int,
        depth: int,
        width: int,
        dropout: float,
        bias: bool,
        **_: Any,
    ) -> Footprint:
        features, per_block = math.prod(input_shape), 4 if dropout > 0 else 3  # Linear, norm, ReLU(, Dropout)
        weights = features * width + (depth - 1) * width * width + (width + 1) * num_classes
        norms_and_biases = depth * width * (5 if bias else 4)  # a norm: scale, shift, 2 running stats
        return Footprint(
            params=weights + norms_and_biases,
            activations=features + depth * width * per_block + num_classes,
            widest=max(features, width, num_classes),
            modules=depth * (per_block + 1) + 3,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (N, *input_shape) -> (N, D)
        return self.head(self.blocks(x))
