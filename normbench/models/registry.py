"""The table of models: ``model.name`` -> class, the layout its norms see, the data it reads.

Every model class is a plain ``nn.Module`` whose constructor is
``Model(input_shape, num_classes, norm_layer, **yaml_keys)``: ``input_shape`` is the shape of
one sample, ``norm_layer(num_features)`` builds its norms (see :mod:`normbench.norms`).
A model also exposes ``blocks``: its layers in depth order, whose outputs are "the
activations of layer i" for ``activations=true``, and a static ``footprint(input_shape,
num_classes, **yaml_keys)``: its size counted from those arguments, so that a model too large
for the machine is refused before it is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from normbench.norms import NormBuilder
from normbench.registry import Registry


@dataclass(frozen=True)
class Footprint:
    """A model's size, counted from its arguments without building it (estimates, upper
    bounds where a norm may or may not add to them)."""

    params: int  # parameter and buffer values
    activations: int  # values one sample's forward keeps for the backward pass
    widest: int  # values of one sample's largest layer output (eval: a few alive at a time)
    modules: int  # nn.Module objects: ~3.6 KB of Python objects each, measured on an MLP


@dataclass(frozen=True)
class ModelSpec:
    cls: type[nn.Module]
    layout: str  # what its norms normalise: "vector", "image" or "recurrent"
    modalities: tuple[str, ...]  # data it can read: "tabular", "image", "sequence"
    native: str  # the modality data=synthetic gives it
    note: str = ""  # what the harness assumed about a user's model (model=custom), for each run's log

    def norm_steps(self, input_shape: tuple[int, ...]) -> int | None:
        """The time steps a recurrent model's norms keep statistics for; None for the others."""
        return self.cls.time_steps(input_shape) if self.layout == "recurrent" else None

    def footprint(self, input_shape: tuple[int, ...], num_classes: int, **options: Any) -> Footprint | None:
        """The class's ``footprint`` for these arguments, the constructor's defaults filling
        the options not given (one place holds each default: the signature); None for a
        registered class without one (nothing to check)."""
        if not hasattr(self.cls, "footprint"):
            return None
        params = inspect.signature(self.cls.__init__).parameters
        args = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
        return self.cls.footprint(tuple(input_shape), num_classes, **{**args, **options})


MODELS: Registry[ModelSpec] = Registry("model", "model")


def register_model(
    name: str, *, layout: str, modalities: tuple[str, ...], native: str
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a model class under ``name``."""
    return MODELS.register(name, lambda cls: ModelSpec(cls, layout, modalities, native))


# model=custom: the user's class named by model._target_, resolved from the options. Kept out
# of MODELS, whose entries every model-wide test and sweep builds without options.
CUSTOM = "custom"


def get_model_spec(name: str, options: Mapping[str, Any] | None = None) -> ModelSpec:
    """The spec of model ``name``; for ``custom``, that of the user's model in ``options``."""
    if name == CUSTOM:
        from normbench.models.custom import resolve  # it imports this module

        return resolve(options or {})
    return MODELS.lookup(name)


def build_model(
    name: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    norm_layer: NormBuilder,
    **options: Any,
) -> nn.Module:
    """Public builder: ``build_model("resnet", input_shape=(3, 32, 32), num_classes=10,
    norm_layer=norm_builder("group", "image"), depth=20)``."""
    return get_model_spec(name, options).cls(
        input_shape=tuple(input_shape), num_classes=num_classes, norm_layer=norm_layer, **options
    )
