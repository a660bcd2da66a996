"""The training and evaluation loops over in-memory tensors.

Batches are index slices of a per-epoch permutation; per-step losses stay on the device and
are read once per epoch, so the loop never waits for the device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from normbench.data import Dataset
from normbench.norms import batch_statistics_modules
from normbench.norms.base import buffers_restored

EVAL_CHUNK = 1024  # eval-mode outputs do not depend on the chunk size: take big ones


@dataclass
class Trainer:
    """Everything one training step needs, resolved once."""

    model: nn.Module
    data: Dataset
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    batch: int
    generator: torch.Generator  # batch order, on the CPU
    penalty: Callable[[], torch.Tensor] | None = None  # added to the loss (e.g. L1); not logged
    amp: bool = False  # bf16 autocast of forward and loss (CUDA)
    channels_last: bool = False  # image batches in NHWC layout, matching the model

    @property
    def steps_per_epoch(self) -> int:
        # The last incomplete batch is dropped: every step sees `batch` samples, so batch
        # statistics never come from a single leftover sample.
        return self.data.x_train.shape[0] // self.batch

    def train_epoch(self, on_step: Callable[[], None] = lambda: None) -> torch.Tensor:
        """One pass over the training set; returns the per-step losses, still on the device."""
        model, data, opt, sched = self.model, self.data, self.optimizer, self.scheduler
        steps = self.steps_per_epoch
        device = data.x_train.device
        order = torch.randperm(data.x_train.shape[0], generator=self.generator)
        order = order[: steps * self.batch].view(steps, self.batch).to(device)  # (steps, B)
        losses: list[torch.Tensor] = []  # stacked once at the end: cheaper than a write per step
        autocast = self._autocast(device.type)  # one context, entered every step
        model.train()
        for idx in order:
            x, y = data.x_train[idx], data.y_train[idx]
            if data.prepare is not None:
                x = data.prepare(x)
            if data.augment is not None:
                x = data.augment(x)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            (loss + self.penalty() if self.penalty is not None else loss).backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(loss.detach())
            on_step()
        return torch.stack(losses) if losses else torch.empty(0, device=device)

    def _autocast(self, device_type: str) -> contextlib.AbstractContextManager[object]:
        # a disabled torch.autocast still costs ~7 us a step on the CPU: skip it when off
        return torch.autocast(device_type, dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, chunk: int = EVAL_CHUNK) -> tuple[float, float]:
    """Test loss and accuracy in eval mode (running statistics)."""
    model.eval()
    return _score(model, data, _chunks(data.x_test.shape[0], chunk, keep_last=True))


@torch.no_grad()
def evaluate_batch_statistics(model: nn.Module, data: Dataset, batch: int) -> tuple[float, float]:
    """Test loss and accuracy with the norms normalising by batch statistics, in batches of
    the training size: what the model computes in training. The gap to :func:`evaluate` is
    BN's train/test discrepancy. Running statistics are left as they were. Only complete
    batches are scored (a leftover sample would be normalised by itself)."""
    with _batch_statistics_mode(model):
        return _score(model, data, _chunks(data.x_test.shape[0], batch, keep_last=False))


def _score(model: nn.Module, data: Dataset, chunks: Iterator[slice]) -> tuple[float, float]:
    loss_sum = torch.zeros((), device=data.x_test.device)
    correct = torch.zeros((), device=data.x_test.device, dtype=torch.long)
    count = 0
    for part in chunks:
        x, y = data.x_test[part], data.y_test[part]
        if data.prepare is not None:
            x = data.prepare(x)
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(dim=1) == y).sum()
        count += y.shape[0]
    if count == 0:
        return float("nan"), float("nan")
    return loss_sum.item() / count, correct.item() / count


@torch.no_grad()
def activation_stds(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Standard deviation of each layer's output (``model.blocks``, in depth order) on the
    batch ``x``, computed as in training (batch statistics) without changing any state."""
    stds: list[torch.Tensor] = []
    hooks = [
        block.register_forward_hook(lambda _m, _i, out: stds.append(out.float().std()))
        for block in model.blocks
    ]
    try:
        with _batch_statistics_mode(model):
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack(stds).tolist()  # one sync for all layers


def _chunks(n: int, size: int, keep_last: bool) -> Iterator[slice]:
    stop = n if keep_last else n - n % size
    return (slice(i, min(i + size, stop)) for i in range(0, stop, size))


@contextlib.contextmanager
def _batch_statistics_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode except the batch-statistics norms, which run in train mode; their running
    buffers are restored afterwards (a train-mode forward updates them)."""
    norms = batch_statistics_modules(model)
    was_training = model.training
    model.eval()
    for m in norms:
        m.train()
    try:
        with buffers_restored(norms):
            yield
    finally:
        model.train(was_training)
