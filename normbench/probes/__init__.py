"""The measurements a run takes, one module each; :func:`select_probes` picks them once.

A new measurement: a module here with a ``Probe`` subclass that declares its ``metrics``
(:class:`Metric`: what the report tables), ``make(cfg, model, lr_at)`` (None when its config
key or the model's norms leave it off) and ``CONFIG``, the rules of the config keys it reads
({key: :class:`normbench.config.rules.Rule`}, checked before a run with the others), listed in
``PROBES``; its key's default goes in conf/config.yaml. Order
matters only in that rows are written in it and :mod:`.divergence` stops an epoch where it sits.
"""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig
from torch import nn

from normbench.config.rules import Rule
from normbench.probes import (
    activations,
    batchstats_eval,
    bn_drift,
    bn_noise,
    divergence,
    evaluation,
    precise_bn,
    train_eval,
    train_loss,
    weights,
)
from normbench.probes.base import Diverged, Metric, Point, Probe
from normbench.run.sinks import Row

PROBES = (
    train_loss,
    evaluation,
    batchstats_eval,
    train_eval,
    divergence,
    activations,
    bn_drift,
    weights,
    precise_bn,
    bn_noise,
)

__all__ = [
    "PROBES",
    "Diverged",
    "Metric",
    "Point",
    "Probe",
    "measure",
    "probe_metrics",
    "probe_rules",
    "select_probes",
]


def select_probes(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> list[Probe]:
    """The probes this config and model call for, in ``PROBES`` order."""
    chosen = (module.make(cfg, model, lr_at) for module in PROBES)
    return [probe for probe in chosen if probe is not None]


def probe_rules() -> dict[str, Rule]:
    """The config keys the probes read, with the values each takes (each module's ``CONFIG``)."""
    return {key: rule for module in PROBES for key, rule in getattr(module, "CONFIG", {}).items()}


def probe_metrics(probes: list[Probe]) -> list[Metric]:
    """What ``probes`` declare they measure, in their order (each name once)."""
    found: dict[str, Metric] = {}
    for probe in probes:
        found.update({m.name: m for m in probe.metrics if m.name not in found})
    return list(found.values())


def measure(probes: list[Probe], hook: str, at: Point) -> list[Row]:
    """Every probe's ``hook`` rows in order; a :class:`Diverged` leaves carrying the rows so far."""
    rows: list[Row] = []
    try:
        for probe in probes:
            rows += getattr(probe, hook)(at)
    except Diverged as stop:
        stop.rows = rows
        raise
    return rows
