"""The table of datasets: ``data.name`` -> a function that returns a :class:`Dataset`.

A dataset function takes the keys of its YAML file (other than ``name``) as keyword
arguments, plus ``model_modality``: the modality the chosen model reads natively
("tabular" for mlp, "image" for resnet, "sequence" for rnn), which lets ``data=synthetic``
pick the task that fits the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from normbench.data.base import Dataset
from normbench.registry import Registry

DatasetFn = Callable[..., Dataset]
DATASETS: Registry[DatasetFn] = Registry("dataset", "data")


def register_dataset(name: str) -> Callable[[DatasetFn], DatasetFn]:
    """Decorator: register a dataset function under ``name``."""
    return DATASETS.register(name)


def build_dataset(name: str, *, model_modality: str, **options: Any) -> Dataset:
    return DATASETS.lookup(name)(model_modality=model_modality, **options)
