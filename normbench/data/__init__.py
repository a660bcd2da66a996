"""Datasets as in-memory tensors: synthetic tasks, CIFAR-10, bring-your-own."""

from normbench.data import synthetic  # noqa: F401  (registers data=synthetic)
from normbench.data.base import MODALITIES, Dataset
from normbench.data.registry import DATASETS, build_dataset, register_dataset

__all__ = ["DATASETS", "MODALITIES", "Dataset", "build_dataset", "register_dataset"]
