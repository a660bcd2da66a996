"""Datasets as in-memory tensors: synthetic tasks, CIFAR-10, bring-your-own."""

from normbench.data.base import MODALITIES, Dataset
from normbench.data.registry import DATASETS, build_dataset, register_dataset
from normbench.data import synthetic  # noqa: F401  (registers data=synthetic)

# Imported for their registrations (data=cifar10, data=custom).
from normbench.data import cifar10, custom  # noqa: F401  isort: skip

__all__ = ["DATASETS", "MODALITIES", "Dataset", "build_dataset", "register_dataset"]
