"""What the norm modules written here share: the base class with torch's parameters and buffers,
saving and restoring a norm's buffers around a pass that must not change them, batch statistics
per shard of the batch (ghost batches and simulated data-parallel devices: one mechanism), and
the list of divisors that an error message offers when a size does not divide another."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from normbench.errors import ConfigError

Tensor = torch.Tensor


class RunningStatsNorm(nn.Module):
    """Parameters and buffers of torch's ``_NormBase``: weight, bias (C,) when ``affine``;
    running_mean, running_var (C,) and num_batches_tracked when ``track_running_stats``
    (registered as None otherwise, as torch does, so state_dict keys match)."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, count: int, factor: float) -> None:
        """running = (1 - factor) * running + factor * batch, batch variance made unbiased."""
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(var * (count / (count - 1)), alpha=factor)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


@contextlib.contextmanager
def buffers_restored(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Within the block the modules may run train-mode passes (which update running statistics
    and ``num_batches_tracked``); on exit their own buffers hold their values from before."""
    saved = [(m, {k: b.clone() for k, b in m.named_buffers(recurse=False)}) for m in modules]
    try:
        yield
    finally:
        for m, buffers in saved:
            for k, b in m.named_buffers(recurse=False):
                b.copy_(buffers[k])


def divisors(n: int, smallest: int = 1, largest: int | None = None) -> str:
    """The divisors of ``n`` from ``smallest`` to ``largest`` (default ``n``), for an error
    message: "use a divisor of 12: 2, 3, 4, 6, 12". Callers pass the bounds of what their
    setting accepts, so that every value offered works."""
    top = n if largest is None else largest
    return ", ".join(str(d) for d in range(max(smallest, 1), top + 1) if n % d == 0)


def per_shard(module: nn.Module, forward: Callable[[Tensor], Tensor], x: Tensor, shards: int) -> Tensor:
    """``forward`` (a training-mode pass of ``module``) run on each of ``shards`` equal,
    consecutive shards of ``x`` (N, ...) from the same buffers, outputs concatenated: what
    ``shards`` replicas of the module compute on their shards, as data-parallel training without
    synchronised batch statistics does. Gradients reach the parameters from every shard.

    Buffers after the pass: the replicas' floating buffers averaged (running statistics: ONE
    momentum update per step with the shards' mean statistics, so the averaging horizon in steps
    does not depend on the number of shards; updating once per shard would shorten it k-fold),
    integer ones (``num_batches_tracked``) as every replica has them (each counted one step).
    """
    if shards == 1:
        return forward(x)
    if x.shape[0] % shards:
        raise ValueError(f"{shards} shards do not divide a batch of {x.shape[0]} samples")
    # Each replica runs on fresh copies of the buffers, and the result is copied into the
    # buffer tensors the module had, in place: autograd keeps the buffers a pass read (torch's
    # batch_norm saves the running statistics for its backward), so no pass may read a tensor
    # that is written afterwards; and a caller holding the buffers (a stacked functional_call)
    # sees the update, as it would with the module's own in-place one.
    names = [k for k, _ in module.named_buffers(recurse=False)]
    originals = {k: getattr(module, k) for k in names}
    ends: list[dict[str, Tensor]] = []
    outputs = []
    for part in x.chunk(shards):
        for k in names:
            setattr(module, k, originals[k].clone())
        outputs.append(forward(part))
        ends.append({k: getattr(module, k) for k in names})
    with torch.no_grad():
        for k in names:
            last = ends[-1][k]
            mean = torch.stack([e[k] for e in ends]).mean(0) if last.is_floating_point() else last
            originals[k].copy_(mean)
            setattr(module, k, originals[k])
    return torch.cat(outputs)


# torch's own BatchNorm modules: per_shard's result in one native call (_batch_norm_side_by_side)
_NATIVE_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _batch_norm_side_by_side(bn: nn.modules.batchnorm._BatchNorm, x: Tensor, shards: int) -> Tensor:
    """:func:`per_shard` of torch's BatchNorm in one call: the shards side by side along the
    channels, (k*n, C, ...) -> (n, k*C, ...), so that channel block j is normalised over shard j
    alone (the fused stack's channel layout, for devices), with the running statistics each
    block's own momentum update of the shared ones, then averaged. The same numbers as k passes
    (tests/test_devices.py), in one kernel instead of k small ones and k buffer copies: at a
    per-device batch of 2 on 8 devices the loop was most of a ResNet step on a CPU."""
    n, channels = x.shape[0] // shards, x.shape[1]
    side = x.unflatten(0, (shards, n)).transpose(0, 1).flatten(1, 2)  # (n, k*C, ...)
    tracked = bn.track_running_stats and bn.running_mean is not None
    mean = bn.running_mean.repeat(shards) if tracked else None  # (k*C,) updated in place below
    var = bn.running_var.repeat(shards) if tracked else None
    factor = 0.0 if bn.momentum is None else bn.momentum
    if tracked:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # a cumulative moving average, as torch's forward computes it
            factor = 1.0 / float(bn.num_batches_tracked)
    weight = bn.weight.repeat(shards) if bn.weight is not None else None
    bias = bn.bias.repeat(shards) if bn.bias is not None else None
    y = F.batch_norm(side, mean, var, weight, bias, True, factor, bn.eps)
    if tracked:
        with torch.no_grad():
            bn.running_mean.copy_(mean.view(shards, channels).mean(0))
            bn.running_var.copy_(var.view(shards, channels).mean(0))
    return y.unflatten(1, (shards, channels)).transpose(0, 1).flatten(0, 1)  # (k*n, C, ...)


class _PerDevice:
    """Mixed into a batch-statistics norm's own class by :func:`per_device`: in training, a
    batch of more than ``device_batch`` samples is normalised per consecutive ``device_batch``
    samples (:func:`per_shard`), as on that many devices without synchronised statistics. A
    batch of at most ``device_batch`` samples (a probe's, the per-device batch) runs as one."""

    device_batch: int

    def forward(self, x: Tensor, *args: Any) -> Tensor:
        n, size = x.shape[0], self.device_batch
        whole = super().forward  # type: ignore[misc]
        if not self.training or n <= size:  # type: ignore[attr-defined]
            return whole(x, *args)
        if n % size:
            raise ConfigError(
                "batch",
                size,
                f"(the per-device batch) does not divide this batch of {n} samples; "
                f"use a divisor of {n}: {divisors(n, smallest=2)}",
            )
        if type(self).__bases__[1] in _NATIVE_BATCH_NORMS:
            return _batch_norm_side_by_side(self, x, n // size)  # type: ignore[arg-type]
        return per_shard(self, lambda part: whole(part, *args), x, n // size)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, device_batch={self.device_batch}"  # type: ignore[misc]


@functools.cache
def _per_device_class(cls: type[nn.Module]) -> type[nn.Module]:
    return type(f"PerDevice{cls.__name__}", (_PerDevice, cls), {"__module__": __name__})


def per_device(module: nn.Module, device_batch: int) -> nn.Module:
    """``module`` (a batch-statistics norm) normalising in training per ``device_batch`` samples
    (simulated data-parallel devices, see :class:`_PerDevice`). The module keeps its
    parameters, buffers, state_dict keys and isinstance relations: only its class gains the
    per-device forward, so code that reads ``norm.weight`` or folds BN sees the same module."""
    module.__class__ = _per_device_class(type(module))
    module.device_batch = device_batch
    return module
