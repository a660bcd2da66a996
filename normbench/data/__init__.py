"""Datasets as in-memory tensors: synthetic tasks, CIFAR-10, bring-your-own."""

from normbench.data.base import MODALITIES, Dataset
from normbench.data.registry import DATASETS, build_dataset, register_dataset

# Imported for their registrations (data=synthetic, data=glyphs, data=cifar10, data=custom).
from normbench.data import cifar10, custom, glyphs, synthetic  # noqa: F401  isort: skip

__all__ = ["DATASETS", "MODALITIES", "Dataset", "build_dataset", "register_dataset"]
