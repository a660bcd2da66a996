"""``model=custom``: a model from the user's own package, to test the norms inside it.

    python run.py model=custom model._target_=mypkg.models.MyNet +model.width=64 norm=group

builds ``mypkg.models.MyNet(input_shape=..., num_classes=..., norm_layer=..., width=64)``, as
every built-in model is built: ``input_shape`` is one sample's shape, ``norm_layer(num_features)``
builds each norm. What the harness needs it reads from attributes of the target:

- ``layout``: what its norms normalise, "vector" (N, C), "image" (N, C, H, W) or "recurrent"
  (N, C) per time step (then a static ``time_steps(input_shape)`` is required); default "image";
- ``modalities``: the data it reads, from "tabular", "image", "sequence"; default the one that
  matches the layout (image, tabular, sequence).

Each run logs one line with what the harness assumed (:attr:`ModelSpec.note`).
A target that cannot be imported, called with those
arguments, or that returns no Module stops the run there, in one line.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from normbench.errors import ConfigError, one_line
from normbench.models.registry import ModelSpec
from normbench.norms.registry import LAYOUTS
from normbench.registry import locate

TARGET_KEY = "model._target_"
EXAMPLE = "e.g. model._target_=mypkg.models.MyNet"
MODALITY = {"image": "image", "vector": "tabular", "recurrent": "sequence"}
_RESOLVED: dict[str, ModelSpec] = {}  # one resolution (import, checks, probes) per target and options


def resolve(options: Mapping[str, Any]) -> ModelSpec:
    """The spec of the user's model named by ``options["_target_"]``."""
    target = options.get("_target_")
    user = {k: v for k, v in options.items() if k != "_target_"}
    key = f"{target}|{sorted(user.items(), key=lambda kv: kv[0])!r}"
    if key not in _RESOLVED:
        _RESOLVED[key] = _resolve(target, user)
    return _RESOLVED[key]


def _resolve(target: Any, user: dict[str, Any]) -> ModelSpec:
    cls = locate(TARGET_KEY, target, f"a model class taking input_shape, num_classes, norm_layer ({EXAMPLE})")
    _check_signature(cls, target, user)
    layout = getattr(cls, "layout", None)
    if layout is not None and layout not in LAYOUTS:
        raise ConfigError(
            TARGET_KEY, target, f"declares layout={layout!r}; declare one of {', '.join(LAYOUTS)}"
        )
    layout = layout or "image"
    steps = getattr(cls, "time_steps", None)
    if layout == "recurrent" and not callable(steps):
        raise ConfigError(
            TARGET_KEY,
            target,
            "declares layout='recurrent' without a time_steps(input_shape) static method "
            "(how many steps its per-step norms keep statistics for)",
        )
    declared = getattr(cls, "modalities", None)
    modalities = (declared,) if isinstance(declared, str) else tuple(declared or (MODALITY[layout],))
    build = _builder(cls, target, user, steps)
    how = "declared" if getattr(cls, "layout", None) else "assumed: declare layout to change it"
    note = (
        f"model=custom {target}: norms see {layout} features ({how}); reads {', '.join(modalities)} "
        f"data ({'declared' if declared else 'from the layout'})"
    )
    return ModelSpec(build, layout, modalities, modalities[0], note)  # type: ignore[arg-type]


def _check_signature(cls: Callable[..., Any], target: str, user: Mapping[str, Any]) -> None:
    try:
        inspect.signature(cls).bind(input_shape=(1,), num_classes=2, norm_layer=nn.Identity, **user)
    except TypeError as err:
        keys = ", ".join(f"model.{k}" for k in user) or "none"
        raise ConfigError(
            TARGET_KEY,
            target,
            f"cannot be called as {target}(input_shape=..., num_classes=..., norm_layer=..., **options) "
            f"with the options under model ({keys}): {one_line(err)}",
        ) from err
    except ValueError:  # no signature to read: it is called as it is
        pass


def _builder(
    cls: Callable[..., Any], target: str, user: Mapping[str, Any], steps: Any
) -> Callable[..., nn.Module]:
    """``build(input_shape, num_classes, norm_layer)``, the user's options bound, checked to
    return a Module; with the target's ``time_steps`` for a recurrent model."""

    def build(input_shape: tuple[int, ...], num_classes: int, norm_layer: Any, **_: Any) -> nn.Module:
        model = cls(input_shape=input_shape, num_classes=num_classes, norm_layer=norm_layer, **user)
        if not isinstance(model, nn.Module):
            raise ConfigError(TARGET_KEY, target, f"returned {type(model).__name__}, not a torch.nn.Module")
        return model

    if callable(steps):
        build.time_steps = steps  # type: ignore[attr-defined]
    return build
