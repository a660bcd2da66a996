"""Checks of the config before anything is built: every key's type and range, the run-level
keys, and data against model.

:data:`RULES` is the table of what values the run's keys take (dotted key -> :class:`Rule`;
the probes declare their own keys' rules, :func:`all_rules`); a
key only some choices have (``norm.ghost_size``) is checked where it is present. Keys that name
a registered choice are checked by the registry that owns the names (:data:`CHOSEN_BY_REGISTRY`),
the synthetic tasks' knobs by their own table (``normbench.data.synthetic.KNOBS``), since
whether they apply depends on the task, and the glyph task's by its own (``normbench.data.glyphs.KNOBS``).
A key the chosen component does not take (a typo such as ``+norm.num_group=4``) is refused with
the keys it does take, read from its signature.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from omegaconf import DictConfig

from normbench.config.rules import FLAG, FRACTION, INT, OPTIONAL_TEXT, SIZE, TEXT, Rule
from normbench.data import DATASETS, Dataset
from normbench.errors import ConfigError
from normbench.models import MODELS, ModelSpec
from normbench.norms import NORMS, RUNNER_KEYS
from normbench.optim import OPTIMIZERS, SCHEDULES
from normbench.probes import probe_rules
from normbench.run.memory import check_fits
from normbench.run.record import flat
from normbench.run.train import EVAL_CHUNK

# The run's own keys; a probe's keys are declared beside the probe (see all_rules)
RULES: dict[str, Rule] = {
    # top level (conf/config.yaml)
    "name": TEXT,
    "results_dir": TEXT,
    "regularization": TEXT,  # a label the reg group sets, read by the report
    "batch": INT,
    "devices": INT,
    "epochs": INT,
    "seed": Rule(int, lo=0, hi=2**63, open_hi=True),
    "log_every": INT,
    "threads": Rule(int, lo=1, null=True, note="null: all cores"),
    "amp": FLAG,
    "channels_last": FLAG,
    "compile": FLAG,
    "force": FLAG,
    # model
    "model.depth": INT,
    "model.width": INT,
    "model.dropout": Rule(float, lo=0, hi=1, open_hi=True, note="the drop probability"),
    "model.bias": FLAG,
    "model.zero_init_residual": FLAG,
    "model.hidden_size": INT,
    "model.num_layers": INT,
    # norm (every variant's keys)
    "norm.eps": Rule(float, lo=0, open_lo=True),
    "norm.momentum": Rule(float, lo=0, hi=1, note="the running statistics' update weight"),
    "norm.affine": FLAG,
    "norm.num_groups": Rule(int, lo=1, null=True),
    "norm.channels_per_group": Rule(int, lo=1, null=True),
    "norm.weight_std": FLAG,
    "norm.precise_bn_samples": Rule(int, lo=0, note="0: off"),
    "norm.r_max": Rule(float, lo=1, note="1 is plain BN"),
    "norm.d_max": Rule(float, lo=0, note="0 is plain BN"),
    "norm.warmup_steps": Rule(int, lo=0),
    "norm.ghost_size": Rule(int, lo=2),
    "norm.learned_eps": FLAG,
    "norm._target_": OPTIONAL_TEXT,
    "norm.label": OPTIONAL_TEXT,
    "model._target_": OPTIONAL_TEXT,
    "norm.tlu": FLAG,
    # data (every dataset's own keys; the synthetic knobs are checked by the task table)
    "data.train_size": SIZE,
    "data.test_size": SIZE,
    "data.seed": Rule(int, lo=0, hi=2**32, open_hi=True),
    "data.download": FLAG,
    "data.augment": FLAG,
    "data.resample": FLAG,
    "data.root": OPTIONAL_TEXT,
    "data.url": OPTIONAL_TEXT,
    "data.md5": OPTIONAL_TEXT,
    "data._target_": OPTIONAL_TEXT,
    # optim
    # Upper bounds on the optimizer's rates: 1e300 overflowed float32 in the step (a traceback).
    # The lr bound stays far above any rate that trains (lr 0.2 is the largest a preset uses) so
    # that a rate chosen to diverge, as the divergence tests do (1e12), still diverges as a run
    # should (status diverged), while one past float32's reach (3.4e38) is refused. A weight
    # decay or L1 of 1 already shrinks weights by lr per step.
    "optim.lr": Rule(float, lo=0, hi=1e30, open_lo=True, note="the rate at batch 32"),
    "optim.linear_scaling": FLAG,
    "optim.momentum": Rule(float, lo=0, hi=1, open_hi=True),
    "optim.nesterov": FLAG,
    "optim.weight_decay": Rule(float, lo=0, hi=1, note="the L2 coefficient, e.g. 5e-4"),
    "optim.l1": Rule(float, lo=0, hi=1, note="0: off"),
    "optim.betas": Rule(list, lo=0, hi=1, open_hi=True, size=2),
    # sched
    "sched.warmup_epochs": Rule(float, lo=0),
    "sched.min_lr_ratio": FRACTION,
    "sched.milestones": Rule(list, lo=0, hi=1, open_lo=True, open_hi=True, note="fractions of training"),
    "sched.gamma": Rule(float, lo=0, open_lo=True),
}

# Keys whose values are names a registry owns; it refuses an unknown one with the list of names.
CHOSEN_BY_REGISTRY = (
    "device",
    "progress",
    "model.name",
    "model.cell",
    "model.init",
    "norm.name",
    "norm.impl",
    "data.name",
    "data.task",
    "optim.name",
    "sched.name",
)
CHECKED_BY_TASK = (
    *("data.noise", "data.spread", "data.seq_len", "data.signal_steps"),  # data=synthetic
    *("data.size", "data.clutter", "data.texture", "data.colour", "data.rotation"),  # data=glyphs
    *("data.contrast", "data.brightness", "data.shift"),
)


def _keywords(fn: Callable[..., Any], *internal: str) -> set[str] | None:
    """The keyword arguments ``fn`` takes, minus those the runner fills in; None when it takes
    any keyword (``**options``: it checks its own)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.name not in internal}


# group -> (registry, the component's keys minus the runner's arguments, keys the runner reads)
KNOWN: dict[str, tuple[Mapping[str, Any], Callable[[Any], set[str] | None], tuple[str, ...]]] = {
    "model": (MODELS, lambda s: _keywords(s.cls, "input_shape", "num_classes", "norm_layer"), ("name",)),
    "norm": (NORMS, lambda s: _keywords(s.make, "num_features", "layout"), RUNNER_KEYS),
    "data": (DATASETS, lambda fn: _keywords(fn, "model_modality"), ("name", "resample")),
    "optim": (OPTIMIZERS, lambda fn: _keywords(fn, "params"), ("name", "linear_scaling", "l1")),
    "sched": (SCHEDULES, lambda fn: _keywords(fn, "p"), ("name", "warmup_epochs")),
}


def all_rules() -> dict[str, Rule]:
    """Every key's rule: the run's own (:data:`RULES`) and those the probes declare."""
    return {**RULES, **probe_rules()}


def top_level_keys() -> set[str]:
    """The top-level keys: conf/config.yaml's scalars (the probes' among them) and the groups."""
    return {k for k in (*all_rules(), *CHOSEN_BY_REGISTRY) if "." not in k} | set(KNOWN)


def check_keys(config: Mapping[str, Any]) -> None:
    """Raise one ConfigError for the first key of the resolved ``config`` that the chosen
    components do not take, or whose value :data:`RULES` refuses."""
    for group, (registry, keywords, runner_keys) in KNOWN.items():
        node = config.get(group)
        if not isinstance(node, Mapping) or node.get("name") not in registry:
            continue  # an unknown choice: its registry says so, with the names it has
        known = keywords(registry[node["name"]])
        if known is None:
            continue
        known |= set(runner_keys)
        for key, value in node.items():
            if key not in known:
                raise ConfigError(
                    f"{group}.{key}",
                    value,
                    f"is not a key of {group}={node['name']}; its keys are {', '.join(sorted(known))}",
                )
    top_level, rules = top_level_keys(), all_rules()
    unknown = sorted(set(config) - top_level)
    if unknown:  # +seeds=3 or +epoch=9 would otherwise run silently with the defaults
        key = unknown[0]
        raise ConfigError(
            key, config[key], f"is not a key of the config; its keys are {', '.join(sorted(top_level))}"
        )
    for key, value in flat(dict(config)).items():
        rule = rules.get(key)
        problem = rule.problem(value) if rule else None
        if problem:
            raise ConfigError(key, value, f"{problem}; use {rule.works()}")


def check_run_keys(cfg: DictConfig) -> None:
    """What the table cannot say: a choice among words and flags, and amp against the device."""
    if cfg.progress not in ("auto", True, False):
        raise ConfigError("progress", cfg.progress, "use auto, true or false")
    if cfg.amp and resolve_device(cfg.device).type != "cuda":
        raise ConfigError(
            "amp",
            cfg.amp,
            f"bf16 autocast is for CUDA devices; with device={cfg.device} on this machine leave amp=false",
        )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device",
            name,
            f"CUDA is not available here (torch {torch.__version__}); use device=auto or device=cpu",
        )
    if name not in ("cpu", "cuda"):
        raise ConfigError("device", name, "use auto, cpu or cuda")
    return torch.device(name)


def check_devices(batch: int, devices: int, train_size: int) -> None:
    """The SGD batch (``batch`` per device x ``devices``) fits in the training set."""
    if devices > 1 and batch * devices > train_size:
        raise ConfigError(
            "devices",
            devices,
            f"makes an SGD batch of batch x devices = {batch} x {devices} = {batch * devices} samples, "
            f"more than the training set ({train_size}); use devices<={max(train_size // batch, 1)} "
            f"or a smaller per-device batch",
        )


def check_data_fits(
    data: Dataset, name: str, model: str, modalities: tuple[str, ...], batch: int, train_eval_size: int = 0
) -> None:
    """The data suits the model, and the batch and the train_eval subset fit in its training set."""
    if data.modality not in modalities:
        raise ConfigError(
            "data",
            name,
            f"gives {data.modality} inputs of shape "
            f"{tuple(data.x_train.shape)} ({data.name}); model={model} reads "
            f"{', '.join(modalities)}",
        )
    n = data.x_train.shape[0]
    if batch > n:
        raise ConfigError(
            "batch",
            batch,
            f"is larger than the training set ({n} samples); use batch<={n} or a larger data.train_size",
        )
    if train_eval_size > n:
        raise ConfigError(
            "train_eval_size",
            train_eval_size,
            f"is larger than the training set ({n} samples); use train_eval_size<={n} (0: off)",
        )


# What a model's footprint costs in bytes: a float32 parameter, its gradient and up to two
# optimizer states (Adam); a float32 activation; the Python objects of an nn.Module (3.6 KB
# measured per module of an MLP block, rounded up).
PARAM_BYTES, ACTIVATION_BYTES, MODULE_BYTES = 16, 4, 4096
EVAL_ALIVE = 3  # layer outputs alive at once in a no-grad forward (input, output, a norm's temporary)


def check_model_fits(
    spec: ModelSpec, name: str, data: Dataset, batch: int, device: torch.device, options: Mapping[str, Any]
) -> None:
    """The model this config builds fits the memory free on ``device``, estimated from its
    arguments before it is built: ``model.width=100000000`` was killed by the kernel (23 GB)."""
    fp = spec.footprint(data.input_shape, data.num_classes, **options)
    if fp is None:
        return
    eval_batch = min(EVAL_CHUNK, data.x_test.shape[0])
    activations = max(batch * fp.activations, eval_batch * fp.widest * EVAL_ALIVE)
    need = fp.params * PARAM_BYTES + activations * ACTIVATION_BYTES + fp.modules * MODULE_BYTES
    sizes = [k for k, v in options.items() if isinstance(v, int) and not isinstance(v, bool)]
    counts = f"{fp.params:.3g} parameters, {activations:.3g} activation values, {fp.modules:.3g} modules"
    what = f"the model ({counts})"
    value = " ".join([name, *(f"{k}={options[k]}" for k in sizes)])
    fix = f"use a smaller {', '.join(f'model.{k}' for k in sizes)} or batch"
    check_fits("model", value, need, what, fix, device)
    if device.type != "cpu":  # it is built on the host first
        check_fits("model", value, fp.params * 4 + fp.modules * MODULE_BYTES, what, fix)
