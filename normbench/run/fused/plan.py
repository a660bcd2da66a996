"""Whether a cell's seeds are trained fused: what the config alone decides (the sweeper asks
before grouping jobs, the fused job again on its own device). What vmap itself rejects is
found by trying a step (normbench.run.fused.stack.check_stackable).

The speed rule: a vmapped convolution becomes a grouped one, which a CPU runs slower than S
plain ones at larger batches, while at small batches the fixed per-step cost (Python,
dispatch, the optimizer loop) dominates and is paid once instead of S times. The first
prototype (5 ResNet-8s, one thread): 1.41-1.55x at batch 2, 0.85-1.06x at batch 8, 0.68-0.81x
at batch 32. ``python scripts/bench.py fused`` measures every model; MAX_BATCH holds the
largest batch at which fused was not slower. A device type or model not listed has no limit.
"""

from __future__ import annotations

from omegaconf import DictConfig

from normbench.config.checks import resolve_device
from normbench.errors import ConfigError

# device type -> model -> largest batch trained fused. Measured with
# `scripts/bench.py fused --threads 1` alone on an Intel Xeon, 5 seeds, fused vs unfused:
# resnet (channel-stacked) 1.51x at batch 2, 1.06x at 8 (1.00-1.05 in other runs: kept
# unfused), 0.96x at 32; mlp (channel-stacked) 2.20x at 2, 2.06x at 32; rnn (members layout)
# 2.20x at 2, 1.75x at 32, and on a shared machine 1.78x at 8, 1.49x at 64, 1.35x at 128: no
# limit for either.
MAX_BATCH: dict[str, dict[str, int]] = {"cpu": {"resnet": 4}}


def why_not(cfg: DictConfig, seeds: int) -> str | None:
    """Why the ``seeds`` runs of ``cfg`` (a member's config) should run one after another,
    or None when they can be fused."""
    if seeds < 2:
        return "a single seed"
    if cfg.compile:
        return "compile=true: a compiled model is not stacked"
    if cfg.channels_last:
        return "channels_last=true: stacked image batches are 5-d"
    # the two known vmap refusals, said here so that the sweeper keeps such cells as separate
    # (parallel) jobs; the job's trial step (stack.check_stackable) finds any other
    if cfg.norm.get("impl") == "reference":
        return "norm.impl=reference: its autograd.Functions do not run under vmap"
    if cfg.get("devices", 1) > 1:  # the stacked layouts know the norms' classes, not per-device ones
        return f"devices={cfg.devices}: per-device batch statistics are not stacked"
    if cfg.model.get("dropout"):
        return f"model.dropout={cfg.model.dropout}: dropout draws under vmap differ from the unfused run's"
    try:
        device = resolve_device(cfg.device).type
    except ConfigError:
        return None  # the run reports it, before training
    limit = MAX_BATCH.get(device, {}).get(cfg.model.name)
    if limit is not None and cfg.batch > limit:
        return (
            f"model={cfg.model.name} batch={cfg.batch}: fused is slower than one run after "
            f"another on a {device} above batch {limit} (normbench.run.fused.plan.MAX_BATCH)"
        )
    return None
