"""CIFAR-style ResNet (He et al. 2016, sec. 4.2): depth 6n+2, three stages of n BasicBlocks.

stem conv3x3 -> norm -> ReLU; stages of ``width``, ``2*width``, ``4*width`` channels with
strides 1, 2, 2; global average pool; Linear. Shortcuts are identity, or a 1x1 conv + norm
where the shape changes. ``zero_init_residual`` zeroes the scale of each block's last norm
(the GroupNorm paper's set-up), so every block starts as the identity. Defaults: see
:mod:`normbench.models` (signature defaults, mirrored by ``conf/model/resnet.yaml``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from normbench.errors import ConfigError
from normbench.models.registry import Footprint, register_model
from normbench.norms import NormBuilder


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3x3 -> norm -> ReLU -> conv3x3 -> norm, plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm_layer: NormBuilder) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.norm1 = norm_layer(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.norm2 = norm_layer(out_channels)  # the block's last norm (zero_init_residual)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                norm_layer(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


@register_model("resnet", layout="image", modalities=("image",), native="image")
class ResNet(nn.Module):
    """ResNet-``depth`` for images (N, C, H, W); any H, W (the pool is global).

    ``self.stages[s][b]`` is block ``b`` of stage ``s``, for forward hooks.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        norm_layer: NormBuilder,
        depth: int = 8,
        width: int = 16,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ConfigError(
                "model.depth",
                depth,
                "a CIFAR ResNet's depth must be 6n+2 with n >= 1 blocks per stage: "
                "8, 14, 20, 32, 44, 56, ... (He et al. 2016, sec. 4.2)",
            )
        if not isinstance(width, int) or width < 1:
            raise ConfigError("model.width", width, "must be an integer >= 1 (stage-1 channels)")
        if len(input_shape) != 3:
            raise ConfigError(
                "model",
                "resnet",
                f"reads images (C, H, W), not samples of shape {tuple(input_shape)}",
            )

        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(conv3x3(input_shape[0], width), norm_layer(width), nn.ReLU())
        stages = []
        in_channels = width
        for out_channels, stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
            blocks = []
            for b in range(blocks_per_stage):
                block_stride = stride if b == 0 else 1  # only a stage's first block downsamples
                blocks.append(BasicBlock(in_channels, out_channels, block_stride, norm_layer))
                in_channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(in_channels, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for module in self.modules():
                # duck-typed: norms without a scale (none, affine=False) are left as they are
                if isinstance(module, BasicBlock) and isinstance(
                    getattr(module.norm2, "weight", None), torch.Tensor
                ):
                    nn.init.zeros_(module.norm2.weight)

    @staticmethod
    def footprint(
        input_shape: tuple[int, ...], num_classes: int, depth: int, width: int, **_: Any
    ) -> Footprint:
        if len(input_shape) != 3:
            return Footprint(0, 0, 0, 0)  # the constructor says what it reads
        (channels, h, w), n = input_shape, max((depth - 2) // 6, 1)
        params, activations, modules = 9 * channels * width + 4 * width, 3 * width * h * w, 4
        widest = max(channels, width) * h * w  # the input or stage 1: later stages halve it
        in_channels = width
        for out_channels, stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
            h, w = -(-h // stride), -(-w // stride)
            c = out_channels
            shortcut = (in_channels + 4) * c if stride != 1 or in_channels != c else 0
            params += 9 * in_channels * c + 9 * c * c + 8 * c + shortcut + (n - 1) * (18 * c * c + 8 * c)
            activations += n * 7 * c * h * w  # conv, norm, ReLU, conv, norm, add, ReLU
            modules += 6 * n + 1
            in_channels = c
        params += (in_channels + 1) * num_classes
        return Footprint(params, activations + num_classes, widest, modules)

    @property
    def blocks(self) -> list[nn.Module]:
        """The layers in depth order (stem, then every residual block), for activation stats."""
        return [self.stem, *(block for stage in self.stages for block in stage)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))  # (N, C, H, W) -> (N, 4*width, H/4, W/4)
        x = x.mean(dim=(2, 3))  # global average pool: (N, 4*width)
        return self.head(x)
