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
from normbench.registry import Registry

DatasetFn = Callable[..., Dataset]
DATASETS: Registry[DatasetFn] = Registry("dataset", "data")


def register_dataset(name: str) -> Callable[[DatasetFn], DatasetFn]:
    """Decorator: register a dataset function under ``name``."""
    return DATASETS.register(name)


def build_dataset(
    name: str, *, model_modality: str, run_seed: int = 0, resample: bool = False, **options: Any
) -> Dataset:
    """The dataset ``name`` built from its YAML keys. ``resample`` (``data.resample``) ties the
    data draw to the run: the dataset gets ``seed = data.seed + run_seed``, so the spread between
    seeds includes the sampling of the train and test sets (synthetic data is regenerated,
    CIFAR-10 and custom subsets redrawn); false keeps one draw for every run seed."""
    make = DATASETS.lookup(name)
    if not isinstance(resample, bool):
        raise ConfigError("data.resample", resample, "must be true or false")
    if resample and isinstance(options.get("seed"), int) and isinstance(run_seed, int):
        options["seed"] = options["seed"] + run_seed  # a non-int seed: the dataset names the error
    return make(model_modality=model_modality, **options)
