"""The table of normalizations: name -> how to build one for a given tensor layout.

Models never ask which norm they have. The runner turns ``cfg.norm`` into a builder
``norm_layer(num_features) -> nn.Module`` with :func:`norm_builder` and hands it to the model.

Layouts (how the model lays out the features it normalises):
- ``vector``: (N, C), e.g. after a Linear layer;
- ``image``: (N, C, H, W), after a convolution;
- ``recurrent``: (N, C) at every time step of a recurrent cell; the module built is a
  :class:`StepNorm`, called as ``norm(x, t)``. Norms that use batch statistics get one copy per
  time step (recurrent BN, Cooijmans et al. 2016); the others share one module across steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from normbench.errors import ConfigError
from normbench.norms.base import per_device
from normbench.registry import Registry

NormBuilder = Callable[[int], nn.Module]
LAYOUTS = ("vector", "image", "recurrent")


@dataclass(frozen=True)
class NormSpec:
    """One registered normalization.

    ``make(num_features, layout, **options)`` builds it for ``layout`` in ``layouts``
    ("vector" and/or "image"; "recurrent" reuses "vector"). ``options`` are the keys of the
    norm's YAML file other than ``name`` and ``impl``. ``norm.impl`` chooses the implementation:
    ``impl`` names ``make``'s (``torch`` for torch's modules, ``normbench`` for a norm written
    in this package with no torch counterpart); ``impls`` holds the alternatives
    (``reference``: the hand-written forward and backward of :mod:`normbench.norms.reference`).
    """

    name: str
    make: Callable[..., nn.Module]
    layouts: tuple[str, ...]
    batch_statistics: bool = False  # output depends on the other samples of the batch
    why_not: str = ""  # shown when a layout is refused
    # check(options, batch) raises ConfigError when the options cannot work at this
    # optimisation batch size (e.g. a ghost batch size that does not divide it)
    check: Callable[[Mapping[str, Any], int], None] | None = None
    impls: dict[str, Callable[..., nn.Module]] = field(default_factory=dict)
    impl: str = "torch"  # the name of ``make``'s implementation, the YAML's ``impl`` value
    # resolve(options) -> the concrete spec, for an entry that is known only from its options
    # (norm=custom: the user's class named by norm._target_); None for the others
    resolve: Callable[[Mapping[str, Any]], NormSpec] | None = None
    note: str = ""  # what the harness assumed about a resolved norm, for each run's log
    # how figures draw it: (colour "#rrggbb", dash pattern (on, off, ...; () solid), marker);
    # None: the report gives it the next free style. Recorded with each run (runner.norm_record)
    style: tuple[str, tuple[float, ...], str] | None = None
    # the papers' name for this norm ("BN", "GN"): what published numbers and the claims'
    # default norms are keyed by, so that no analysis code names a norm; "" for none
    paper: str = ""


NORMS: Registry[NormSpec] = Registry("norm", "norm")

# Keys of a norm's YAML that the runner acts on; every other key goes to ``make``.
RUNNER_KEYS = ("name", "impl", "weight_std", "precise_bn_samples")


def make_options(norm_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The options ``make`` takes: a norm's config without the runner's keys."""
    return {k: v for k, v in norm_cfg.items() if k not in RUNNER_KEYS}


def register_norm(
    name: str,
    *,
    layouts: tuple[str, ...] = ("vector", "image"),
    batch_statistics: bool = False,
    why_not: str = "",
    check: Callable[[Mapping[str, Any], int], None] | None = None,
    impl: str = "torch",
    resolve: Callable[[Mapping[str, Any]], NormSpec] | None = None,
    style: tuple[str, tuple[float, ...], str] | None = None,
    paper: str = "",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``make(num_features, layout, **options)`` under ``name``; ``impl``
    is what its YAML's ``impl`` says (see :class:`NormSpec`)."""
    return NORMS.register(
        name,
        lambda make: NormSpec(
            name,
            make,
            layouts,
            batch_statistics,
            why_not,
            check,
            impl=impl,
            resolve=resolve,
            style=style,
            paper=paper,
        ),
    )


def register_impl(name: str, impl: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: an alternative implementation of norm ``name`` selected by ``norm.impl``."""

    def decorate(make: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        get_norm_spec(name).impls[impl] = make
        return make

    return decorate


def get_norm_spec(name: str, options: Mapping[str, Any] | None = None) -> NormSpec:
    """The spec of norm ``name``; for one known only from its ``options`` (norm=custom), the
    spec they resolve to."""
    spec = NORMS.lookup(name)
    return spec if spec.resolve is None else spec.resolve(options or {})


def norm_properties(spec: NormSpec) -> dict[str, Any]:
    """What the registry declares about a norm, as plain values: recorded with each run so that
    the analysis decides by property (which norms have batch statistics), never by name."""
    return {"batch_statistics": spec.batch_statistics, "layouts": list(spec.layouts), "paper": spec.paper}


def norm_style(spec: NormSpec) -> dict[str, Any] | None:
    """The registry's figure style of a norm as summary.json records it (record.NORM_RECORD)."""
    if spec.style is None:
        return None
    color, dashes, marker = spec.style
    return {"color": color, "dashes": list(dashes), "marker": marker}


def paper_norm(paper: str) -> str | None:
    """The registered norm the papers call ``paper`` ("BN" -> "batch"), None if none is."""
    return next((n for n, s in NORMS.items() if s.paper == paper and s.resolve is None), None)


def builtin_norms(keep: Callable[[NormSpec], bool]) -> list[str]:
    """The registered norms (not the user's) that ``keep`` accepts, sorted: what a message offers."""
    return sorted(n for n, s in NORMS.items() if s.resolve is None and keep(s))


def check_layout(name: str, layout: str, model: str = "", options: Mapping[str, Any] | None = None) -> None:
    """Raise ConfigError if norm ``name`` (with ``options``) cannot normalise ``layout`` tensors."""
    spec = get_norm_spec(name, options)
    base = "vector" if layout == "recurrent" else layout
    if base not in spec.layouts:
        works = builtin_norms(lambda s: base in s.layouts)
        on = f" on model={model}" if model else ""
        raise ConfigError(
            "norm",
            name,
            f"{spec.why_not or 'not defined for ' + base + ' features'}{on}; use one of {', '.join(works)}",
        )


def check_batch(name: str, options: Mapping[str, Any], batch: int) -> None:
    """Raise ConfigError if norm ``name`` with ``options`` cannot train at batch size ``batch``."""
    spec = get_norm_spec(name, options)
    if spec.batch_statistics and batch < 2:
        free = builtin_norms(lambda s: not s.batch_statistics)
        raise ConfigError(
            "batch",
            batch,
            f"norm={name} normalises with statistics over the batch and needs at least 2 samples; "
            f"use batch>=2 or a per-sample norm ({', '.join(free)})",
        )
    if spec.check is not None:
        spec.check(options, batch)


def norm_builder(
    name: str,
    layout: str,
    options: Mapping[str, Any] | None = None,
    *,
    impl: str | None = None,
    steps: int | None = None,
    device_batch: int | None = None,
) -> NormBuilder:
    """Resolve a norm once: returns ``norm_layer(num_features) -> nn.Module`` for ``layout``.

    ``impl`` is ``norm.impl`` (None: the norm's own, e.g. ``torch``); ``steps`` is the number of
    time steps for the ``recurrent`` layout; ``device_batch``, when set, makes a norm with
    batch statistics normalise per that many samples in training, as on simulated
    data-parallel devices without synchronised statistics (:func:`~normbench.norms.base.per_device`);
    norms without batch statistics are unaffected.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    check_layout(name, layout, options=options)
    spec = get_norm_spec(name, options)
    impl = spec.impl if impl is None else impl
    if impl != spec.impl and impl not in spec.impls:
        have = ", ".join([spec.impl, *sorted(spec.impls)])
        raise ConfigError("norm.impl", impl, f"norm={name} has implementations: {have}")
    chosen = spec.make if impl == spec.impl else spec.impls[impl]
    opts = dict(options or {})

    def make(num_features: int, layout: str, **kwargs: Any) -> nn.Module:
        module = chosen(num_features, layout, **kwargs)
        if device_batch is None or not spec.batch_statistics or isinstance(module, InvalidNorm):
            return module
        return per_device(module, device_batch)

    if layout != "recurrent":
        return lambda num_features: make(num_features, layout, **opts)

    if steps is None or steps < 1:
        raise ValueError("the recurrent layout needs the number of time steps")
    copies = steps if spec.batch_statistics else 1
    return lambda num_features: StepNorm([make(num_features, "vector", **opts) for _ in range(copies)])


class StepNorm(nn.Module):
    """A norm applied at every time step: ``forward(x, t)`` with x of shape (N, C).

    With one copy, all steps share it. With several (batch statistics), step ``t`` uses copy
    ``min(t, copies - 1)``, so sequences longer than in training reuse the last step's
    statistics, as recurrent BN does.
    """

    def __init__(self, norms: list[nn.Module]) -> None:
        super().__init__()
        self.norms = nn.ModuleList(norms)

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return self.norms[min(t, len(self.norms) - 1)](x)


class InvalidNorm(nn.Module):
    """Stands in for a norm whose options do not fit a layer (e.g. groups that do not divide
    the channels). Models build normally; :func:`check_model_norms` then names the layer."""

    def __init__(self, key: str, value: Any, why: str) -> None:
        super().__init__()
        self.key, self.value, self.why = key, value, why

    def forward(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        raise ConfigError(self.key, self.value, self.why)


def check_model_norms(model: nn.Module) -> None:
    """Raise ConfigError naming the first layer whose norm could not be built."""
    for layer, module in model.named_modules():
        if isinstance(module, InvalidNorm):
            raise ConfigError(module.key, module.value, f"{module.why} (layer '{layer}')")


def check_forward(
    model: nn.Module,
    x: torch.Tensor,
    norm: str,
    model_name: str,
    rebuild: Callable[[str], nn.Module],
    num_classes: int | None = None,
) -> None:
    """One training-mode forward of the batch ``x`` through a copy of ``model`` (its running
    statistics and the RNG untouched). Raise ConfigError when it fails: a norm that cannot
    normalise what the model makes of these samples (instance norm on 1x1 feature maps has one
    value per statistic) stops before training, naming the norms that can (``rebuild(name)``
    builds the model with another norm, with its default options). With ``num_classes``, the
    output must be the logits (N, num_classes): a user's model (model=custom) may return others."""
    try:
        out = _forward(model, x)
    except ConfigError:
        raise
    except Exception as err:  # any failure of this forward is a misfit of config and data
        why = " ".join(str(err).split()) or type(err).__name__
        shape = tuple(x.shape[1:])
        with torch.random.fork_rng(devices=[]):  # building the others draws their init
            works = [n for n in builtin_norms(lambda s: True) if n != norm and _forward_works(rebuild, n, x)]
        if not works:
            raise ConfigError(
                "model", model_name, f"cannot train on samples of shape {shape}: {why}"
            ) from err
        raise ConfigError(
            "norm",
            norm,
            f"cannot normalise what model={model_name} makes of samples of shape {shape} ({why}); "
            f"use one of {', '.join(works)}",
        ) from err
    expected = (x.shape[0], num_classes)
    if num_classes is not None and (not isinstance(out, torch.Tensor) or tuple(out.shape) != expected):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            "model",
            model_name,
            f"returns {got} for a batch of {x.shape[0]} samples; a classifier returns logits "
            f"(N, num_classes) = {expected}",
        )


def _forward(model: nn.Module, x: torch.Tensor) -> Any:
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        return copy.deepcopy(model).train()(x)


def _forward_works(rebuild: Callable[[str], nn.Module], norm: str, x: torch.Tensor) -> bool:
    try:
        model = rebuild(norm)
        check_model_norms(model)
        _forward(model, x)
    except Exception:  # noqa: BLE001  (any failure means this norm does not fit either)
        return False
    return True


def has_running_statistics(module: nn.Module) -> bool:
    """Whether ``module`` keeps ``running_mean``/``running_var`` buffers (tensors, not None)."""
    stats = (getattr(module, "running_mean", None), getattr(module, "running_var", None))
    return all(isinstance(t, torch.Tensor) for t in stats)


def batch_statistics_modules(model: nn.Module) -> list[nn.Module]:
    """The modules that normalise with batch statistics in training and keep running
    estimates for eval (anything with ``running_mean``/``running_var`` buffers)."""
    return [m for m in model.modules() if has_running_statistics(m)]
