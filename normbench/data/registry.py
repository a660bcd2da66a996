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
from normbench.errors import ConfigError

DatasetFn = Callable[..., Dataset]
DATASETS: dict[str, DatasetFn] = {}


def register_dataset(name: str) -> Callable[[DatasetFn], DatasetFn]:
    def decorate(fn: DatasetFn) -> DatasetFn:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        DATASETS[name] = fn
        return fn

    return decorate


def build_dataset(name: str, *, model_modality: str, **options: Any) -> Dataset:
    if name not in DATASETS:
        raise ConfigError("data", name, f"unknown dataset; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name](model_modality=model_modality, **options)
