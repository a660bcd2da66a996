"""Diagnostics of the running statistics of BN-like modules, as plain functions for the runner.

BN normalises with batch statistics in training and with running averages in eval; when the
two disagree, eval accuracy suffers (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021).
- :func:`precise_bn_` replaces the running averages by exact population statistics;
- :func:`running_stats_drift` measures how far the running averages are from a batch's;
- :func:`batch_noise`: how far single batches' statistics sit from the population's.

Both forward with the BN-like modules in training mode (batch statistics, as in training) and
every other module in eval mode: dropout off, so the pass draws no random numbers and the
features are those the model sees at test time (recomputing BN statistics without dropout is
also the fix of Li et al. 2019 for the dropout/BN "variance shift"). Modes, running buffers
and ``num_batches_tracked`` are restored afterwards: a diagnostic is not a training step
(batch renorm's warm-up counts those).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from normbench.norms import reference
from normbench.norms.base import buffers_restored
from normbench.norms.registry import has_running_statistics

Batch = Any  # a tensor of inputs, or a tuple/list whose first item is
Forward = Callable[[nn.Module, Batch], Any]


def _inputs(batch: Batch) -> torch.Tensor:
    return batch if isinstance(batch, torch.Tensor) else batch[0]


def _default_forward(model: nn.Module, batch: Batch) -> Any:
    return model(_inputs(batch))


def has_population_statistics(module: nn.Module) -> bool:
    """Whether ``module``'s running statistics estimate per-channel population statistics over
    (N, *): BN and its variants. Instance norm's running statistics (when tracked) average
    per-sample statistics instead, so it is no BN here nor for folding."""
    return has_running_statistics(module) and not isinstance(
        module, (nn.modules.instancenorm._InstanceNorm, reference.InstanceNorm2d)
    )


def _per_channel_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) for the BN-like modules (:func:`has_population_statistics`)."""
    return [(name, m) for name, m in model.named_modules() if has_population_statistics(m)]


class _ChannelMoments:
    """Per-channel count, mean and sum of squared deviations, merged batch by batch with
    Chan et al.'s pairwise update, in float64. It equals the E[x^2] - E[x]^2 aggregation in
    exact arithmetic (the pooled variance is the mean within-batch variance plus the variance
    of the batch means), without its cancellation when |mean| >> std, and it weights each
    batch by its number of values, so a smaller last batch counts for what it holds."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, torch.zeros(()), torch.zeros(())

    def add(self, x: torch.Tensor) -> None:
        xs = x.detach().transpose(0, 1).reshape(x.shape[1], -1).double()  # (C, N * L)
        n = xs.shape[1]
        mean = xs.mean(1)
        m2 = (xs - mean[:, None]).square().sum(1)
        if self.count == 0:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
        self.count = total

    def var(self) -> torch.Tensor:
        """Unbiased, like the running_var torch keeps."""
        return self.m2 / (self.count - 1)


@contextlib.contextmanager
def _record_inputs(
    model: nn.Module, named: list[tuple[str, nn.Module]]
) -> Iterator[dict[str, _ChannelMoments]]:
    """Within the block: BN-like modules in training mode, the rest in eval, no grad, momentum 0
    (batch renorm reads its running statistics), and the moments of each module's input
    accumulated per name. On exit: modes, momentum and buffers as they were."""
    moments = {name: _ChannelMoments() for name, _ in named}
    modes = {m: m.training for m in model.modules()}
    momenta = [getattr(m, "momentum", None) for _, m in named]
    hooks = [
        m.register_forward_pre_hook(lambda _m, args, name=name: moments[name].add(args[0]))
        for name, m in named
    ]
    model.eval()
    for _, m in named:
        m.train()
        if hasattr(m, "momentum"):
            m.momentum = 0.0
    try:
        with buffers_restored(m for _, m in named), torch.no_grad():
            yield moments
    finally:
        for hook in hooks:
            hook.remove()
        for m, training in modes.items():
            m.training = training
        for (_, m), momentum in zip(named, momenta):
            if hasattr(m, "momentum"):
                m.momentum = momentum


def precise_bn_(model: nn.Module, batches: Iterable[Batch], forward: Forward | None = None) -> int:
    """Precise BN, in place: set every BN-like module's running_mean/running_var to the exact
    statistics of its input over ``batches`` (population mean; pooled unbiased variance, see
    :class:`_ChannelMoments`), with the weights frozen. Returns the number of samples used.

    ``batches``: tensors or (inputs, ...) tuples; ``forward(model, batch)`` runs one (default
    ``model(inputs)``). Use batches of the training batch size: a BN's input depends on the
    batch statistics of the BNs before it, so its population statistics do too. A module the
    batches never reach keeps its running statistics.
    """
    named = _per_channel_modules(model)
    if not named:
        return 0
    samples = 0
    with _record_inputs(model, named) as moments:
        for batch in batches:
            (forward or _default_forward)(model, batch)
            samples += _inputs(batch).shape[0]
    with torch.no_grad():
        for name, m in named:
            if moments[name].count > 1:
                m.running_mean.copy_(moments[name].mean)
                m.running_var.copy_(moments[name].var())
    return samples


def running_stats_drift(model: nn.Module, batch: Batch, forward: Forward | None = None) -> dict[str, float]:
    """How far each BN-like module's running statistics are from its input's statistics on
    ``batch``, with no change of state. For module ``name`` (means over channels):

    - ``"{name}/mean"``: mean |mu_B - mu_run| / sqrt(var_run + eps), the mean shift in units
      of the running std (0: same mean; 1: one std off);
    - ``"{name}/var"``: mean |log((var_B + eps) / (var_run + eps))|, symmetric in the two
      (log 2 = 0.69: one is twice the other); var_B unbiased, like var_run.

    Both are scale-free, so layers and runs compare. Modules the batch does not reach are absent.
    """
    named = _per_channel_modules(model)
    with _record_inputs(model, named) as moments:
        (forward or _default_forward)(model, batch)
    drift = {}
    for name, m in named:
        if moments[name].count < 2:
            continue
        run_mean, run_var = m.running_mean.double(), m.running_var.double() + m.eps
        shift = (moments[name].mean - run_mean).abs() / run_var.sqrt()
        ratio = ((moments[name].var() + m.eps) / run_var).log().abs()
        drift[f"{name}/mean"], drift[f"{name}/var"] = shift.mean().item(), ratio.mean().item()
    return drift


def batch_noise(model: nn.Module, batches: list[Batch], forward: Forward | None = None) -> dict[str, float]:
    """How far each BN-like module's batch statistics sit from its population statistics: the
    noise BN trains with at the size of ``batches``. The population is :func:`precise_bn_` over
    all of ``batches`` (on a copy: ``model`` is untouched); then :func:`running_stats_drift`
    of each batch against it, averaged over the batches: ``"{name}/mean"`` the mean shift in
    population SDs, ``"{name}/var"`` the mean |log variance ratio|."""
    twin = copy.deepcopy(model)
    precise_bn_(twin, batches, forward)
    totals: dict[str, float] = {}
    for batch in batches:
        for key, value in running_stats_drift(twin, batch, forward).items():
            totals[key] = totals.get(key, 0.0) + value
    return {key: total / len(batches) for key, total in totals.items()}
