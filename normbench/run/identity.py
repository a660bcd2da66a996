"""A run's identity: a hash of the resolved config, minus keys that cannot change its numbers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Keys that change where or how verbosely a run writes, never what it computes. The Hydra
# config reads this list too (via the nb_non_result_keys resolver) to keep them out of run
# directory names, so it is written only here.
NON_RESULT_KEYS = (
    "experiment",
    "name",
    "results_dir",
    "log_every",
    "threads",
    "progress",
    "force",
    "data.root",
    "data.download",
)
# Keys added after runs were made, at the value that computes what those runs computed: left
# out of the identity at that value, so that those runs keep theirs (and are not run again).
NEUTRAL_DEFAULTS = {
    "devices": 1,
    "bn_noise": False,
    "data.contrast": 0.0,
    "data.brightness": 0.0,
    "data.shift": 0,
}
# Keys a sweeper adds to a job that are no run's own: also out of directory names. A fused job
# (normbench.run.fused.FUSED_KEY) lists its members' seeds; its directory is its first member's.
JOB_KEYS = ("fused_seeds",)


def resolved_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The config as plain, fully resolved Python containers, without Hydra's own node."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    plain.pop("hydra", None)
    return plain


def config_identity(cfg: DictConfig | Mapping[str, Any]) -> str:
    """16 hex digits, stable across key order, changed by any result-relevant key."""
    plain = resolved_config(cfg)
    for dotted in NON_RESULT_KEYS:
        _drop(plain, dotted.split("."))
    for dotted, neutral in NEUTRAL_DEFAULTS.items():
        _drop_if(plain, dotted.split("."), neutral)
    blob = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _drop(tree: dict[str, Any], path: list[str]) -> None:
    node = tree
    for key in path[:-1]:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    node.pop(path[-1], None)


def _drop_if(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    if path[-1] in node and node[path[-1]] == value:
        node.pop(path[-1])


def register_resolvers() -> None:
    """Resolvers the Hydra config uses; safe to call more than once."""
    if not OmegaConf.has_resolver("nb_dirname"):
        # run directory name from Hydra's override_dirname; '/' would nest directories
        OmegaConf.register_new_resolver(
            "nb_dirname", lambda overrides: (overrides or "default").replace("/", "_")
        )
    if not OmegaConf.has_resolver("nb_non_result_keys"):
        OmegaConf.register_new_resolver("nb_non_result_keys", lambda: [*NON_RESULT_KEYS, *JOB_KEYS])


# Registered on import: launcher workers (joblib, submitit) import normbench when they
# unpickle the task, before Hydra resolves the run directory, which needs these resolvers.
register_resolvers()
