"""What the norm modules written here share: the base class with torch's parameters and buffers,
saving and restoring a norm's buffers around a pass that must not change them, and the list of
divisors that an error message offers when a size does not divide another."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

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
