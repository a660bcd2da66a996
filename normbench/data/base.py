"""What every dataset hands the runner: whole splits as tensors, held in memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

# Modalities by the shape of one sample batch:
#   tabular (N, D), image (N, C, H, W), sequence (N, T, F)
MODALITIES = ("tabular", "image", "sequence")

BatchFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Dataset:
    """Train and test splits as tensors; labels are int64 class indices.

    ``prepare`` (optional) runs on every batch, train and test, e.g. uint8 -> normalised
    float for CIFAR-10 kept in memory as uint8. ``augment`` (optional) runs on training
    batches only, after ``prepare``, vectorised on the batch and drawing from torch's global
    RNG (which the runner seeds).
    """

    name: str
    modality: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    prepare: BatchFn | None = None
    augment: BatchFn | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (3, 32, 32)."""
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Dataset:
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )
