"""``norm=custom``: a norm from the user's own package.

    python run.py norm=custom norm._target_=mypkg.norms.MyNorm +norm.alpha=0.5

builds ``mypkg.norms.MyNorm(num_features, alpha=0.5)`` for every norm layer (and passes
``layout="vector"`` or ``"image"`` when the target takes a ``layout`` argument). The target is
a class or a factory returning an ``nn.Module`` that keeps its input's shape. What the harness
needs to know it reads from attributes of the target, and measures what is not declared:

- ``layouts``: the layouts it normalises, a subset of ("vector", "image") (recurrent steps are
  vectors). Undeclared: those on which a training-mode forward of a probe batch works.
- ``batch_statistics``: whether a sample's output depends on the other samples in training
  (then it needs batch >= 2, is sharded per device, and recurrent models keep one copy per
  time step). Undeclared: measured, by changing the other samples of a probe batch.
- running statistics: ``running_mean``/``running_var`` buffers, found on the module as for any
  norm; the BN probes (drift, Precise BN, batch-statistics eval) apply to such a norm.

Each run logs one line with what the harness assumed (:attr:`NormSpec.note`).
A target that cannot be imported or called with
the options, that returns no Module, changes the shape or returns NaN stops the run there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from normbench.errors import ConfigError, one_line
from normbench.norms.registry import NormSpec, has_running_statistics, register_norm
from normbench.registry import locate, user_label

TARGET_KEY = "norm._target_"
OWN_KEYS = ("_target_", "label")  # norm=custom's own keys; the others go to the user's target
EXAMPLE = "e.g. norm._target_=mypkg.norms.MyNorm"
BASE_LAYOUTS = ("vector", "image")
PROBE_FEATURES = 8
PROBE_SHAPES = {"vector": (4, PROBE_FEATURES), "image": (4, PROBE_FEATURES, 5, 5)}
_RESOLVED: dict[str, NormSpec] = {}  # one resolution (import, checks, probes) per target and options


def resolve(options: Mapping[str, Any]) -> NormSpec:
    """The spec of the user's norm named by ``options["_target_"]``, its other options passed to it."""
    target = options.get("_target_")
    user = {k: v for k, v in options.items() if k not in OWN_KEYS}
    key = repr(sorted(options.items(), key=lambda kv: kv[0]))  # the label too: it is in the note
    if key not in _RESOLVED:
        _RESOLVED[key] = _resolve(target, user, options.get("label"))
    return _RESOLVED[key]


def _resolve(target: Any, user: dict[str, Any], label: Any) -> NormSpec:
    fn = locate(TARGET_KEY, target, f"a norm class or factory taking num_features ({EXAMPLE})")
    takes_layout = _check_signature(fn, target, user)

    def make(num_features: int, layout: str, **_: Any) -> nn.Module:
        module = fn(num_features, layout=layout, **user) if takes_layout else fn(num_features, **user)
        if not isinstance(module, nn.Module):
            raise ConfigError(
                TARGET_KEY,
                target,
                f"returned {type(module).__name__}, not a torch.nn.Module; return a norm module",
            )
        return module

    with torch.random.fork_rng(devices=[]):  # probing draws inits and inputs, not the run's
        torch.manual_seed(0)
        layouts, why_not, how_layouts = _layouts(fn, target, make)
        probe = make(PROBE_FEATURES, layouts[0])
        batch_stats, how_stats = _batch_statistics(fn, target, probe, layouts[0])
    running = "yes (the BN probes apply)" if has_running_statistics(probe) else "none"
    note = (
        f"norm=custom {target} (label {user_label(target, label)}): layouts {', '.join(layouts)} "
        f"({how_layouts}); batch statistics: {'yes' if batch_stats else 'no'} ({how_stats}); "
        f"running statistics: {running}"
    )
    return NormSpec("custom", make, layouts, batch_stats, why_not, impl="user", note=note)


def _check_signature(fn: Callable[..., Any], target: str, user: Mapping[str, Any]) -> bool:
    """Whether ``fn`` takes ``layout``; a ConfigError when it cannot be called with
    ``num_features`` and the user's options."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): try it as it is
        return False
    takes_layout = "layout" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    args = {"layout": "image"} if takes_layout else {}
    try:
        inspect.signature(fn).bind(PROBE_FEATURES, **args, **user)
    except TypeError as err:
        keys = ", ".join(f"norm.{k}" for k in user) or "none"
        raise ConfigError(
            TARGET_KEY,
            target,
            f"cannot be called as {target}(num_features, [layout,] **options) with the options "
            f"under norm ({keys}): {one_line(err)}",
        ) from err
    return takes_layout


def _declared(fn: Callable[..., Any], name: str) -> Any:
    return getattr(fn, name, None)


def _layouts(
    fn: Callable[..., Any], target: str, make: Callable[..., nn.Module]
) -> tuple[tuple[str, ...], str, str]:
    """(layouts, why the others are refused, declared or probed)."""
    declared = _declared(fn, "layouts")
    if declared is not None:
        layouts = (declared,) if isinstance(declared, str) else tuple(declared)
        if not layouts or not set(layouts) <= set(BASE_LAYOUTS):
            raise ConfigError(
                TARGET_KEY,
                target,
                f"declares layouts={declared!r}; declare a non-empty subset of {BASE_LAYOUTS}",
            )
        for layout in layouts:
            failure = _forward_failure(make, target, layout)
            if failure:
                raise ConfigError(TARGET_KEY, target, failure)
        return layouts, f"{target} declares layouts={list(layouts)}", "declared"
    failures = {layout: _forward_failure(make, target, layout) for layout in BASE_LAYOUTS}
    works = tuple(layout for layout, failure in failures.items() if not failure)
    if not works:
        raise ConfigError(TARGET_KEY, target, "; ".join(failures.values()))
    why = "; ".join(f"{target} {failure}" for failure in failures.values() if failure)
    return works, why, "probed: a training-mode forward works on them"


def _forward_failure(make: Callable[..., nn.Module], target: str, layout: str) -> str:
    """Why a norm built for ``layout`` fails a training-mode forward of a standard normal probe
    batch ("" when it works). A forward that runs but changes the shape or returns NaN is a
    broken norm, not a layout it lacks: a ConfigError."""
    x = torch.randn(PROBE_SHAPES[layout])
    try:
        module = make(PROBE_FEATURES, layout)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001  (the user's constructor refuses this layout)
        return f"cannot be built for {layout} features ({one_line(err)})"
    try:
        with torch.no_grad():
            y = module.train()(x)
    except Exception as err:  # noqa: BLE001  (any failure of the user's forward, said in one line)
        return f"fails on {layout} features of shape {tuple(x.shape)} ({one_line(err)})"
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ConfigError(
            TARGET_KEY,
            target,
            f"changed the shape of {layout} features from {tuple(x.shape)} to {got}; "
            "a norm returns its input's shape",
        )
    if not torch.isfinite(y).all():
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned NaN or infinite values on standard normal {layout} features of shape {tuple(x.shape)}",
        )
    return ""


def _batch_statistics(
    fn: Callable[..., Any], target: str, module: nn.Module, layout: str
) -> tuple[bool, str]:
    """(uses batch statistics, declared or measured): measured as whether the first sample's
    training-mode output changes when the other samples of the probe batch do."""
    declared = _declared(fn, "batch_statistics")
    if declared is not None:
        if not isinstance(declared, bool):
            raise ConfigError(
                TARGET_KEY, target, f"declares batch_statistics={declared!r}; declare True or False"
            )
        return declared, "declared"
    x = torch.randn(PROBE_SHAPES[layout])
    other = torch.cat([x[:1], torch.randn_like(x[1:]) * 3 + 2])
    with torch.no_grad():
        first, moved = module.train()(x)[:1], module(other)[:1]
    depends = not torch.allclose(first, moved, rtol=1e-4, atol=1e-5)
    return depends, "measured: a sample's output " + (
        "depends" if depends else "does not depend"
    ) + " on the others"


@register_norm("custom", layouts=(), impl="user", resolve=resolve)
def make_custom(num_features: int, layout: str, **options: Any) -> nn.Module:
    """Stands in the registry for the user's norm: :func:`resolve` builds the real entry."""
    return resolve(options).make(num_features, layout, **options)
