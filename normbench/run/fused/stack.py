"""S members trained as one: their parameters, buffers and optimizer state stacked along a new
leading dimension, one step for all of them: stacked without vmap (normbench.run.fused.layout:
members side by side along the channels, grouped convolutions, for ResNet and MLP; members
as a second batch dimension for the RNN) where every module of the model has such a forward
(the standard norms), else ``vmap(functional_call)``.

Each member keeps its own :class:`~normbench.run.train.Trainer` (plain model, data, generator for
batch order, optimizer, scheduler), built exactly as its unfused run builds it. The stack is
made from those trainers and written back into them (:meth:`Stack.unstack`) before anything
looks at a member: the probes and the checkpoints then see plain per-member modules and run
unchanged. Gradients stay per member: the loss summed over members has d/d(loss_i) = 1, so
member i's gradient is that of its own loss, and a member's NaN cannot reach another's.
SGD and Adam (and weight decay, momentum, L1) are elementwise, so one optimizer over the
stacked tensors makes each member's update its unfused update.
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from normbench.optim import weight_matrices
from normbench.run.fused.layout import stack_layout, stacked_forward, why_not_stacked
from normbench.run.train import Trainer


@dataclass
class MemberRng:
    """One member's share of the process-global RNGs (augmentation draws from torch's global
    RNG): swapped in around whatever the member does, so each draws as its unfused run would."""

    torch_state: torch.Tensor
    cuda_state: list[torch.Tensor] | None
    others: tuple[Any, Any] = field(default=(None, None))  # numpy, python: for checkpoints only

    @classmethod
    def capture(cls) -> MemberRng:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        return cls(torch.get_rng_state(), cuda, (np.random.get_state(), random.getstate()))

    @contextlib.contextmanager
    def active(self, everything: bool = False) -> Iterator[None]:
        """Within the block the global RNGs are this member's; ``everything``: numpy's and
        Python's too (what a checkpoint saves), not only torch's (what a step draws from)."""
        torch.set_rng_state(self.torch_state)
        if self.cuda_state is not None:
            torch.cuda.set_rng_state_all(self.cuda_state)
        if everything:
            np.random.set_state(self.others[0])
            random.setstate(self.others[1])
        try:
            yield
        finally:
            self.torch_state = torch.get_rng_state()
            if self.cuda_state is not None:
                self.cuda_state = torch.cuda.get_rng_state_all()
            if everything:
                self.others = (np.random.get_state(), random.getstate())


class Stack:
    """The members' state stacked (leading dim S) with one optimizer and one schedule."""

    def __init__(self, trainers: list[Trainer], rngs: list[MemberRng], *, l1: float) -> None:
        """``l1``: the members' optim.l1 (their Trainer.penalty closes over their own weights)."""
        self.trainers, self.rngs = trainers, rngs
        first = trainers[0]
        if (first.penalty is not None) != bool(l1):
            raise ValueError(f"l1={l1} is not the members' optim.l1")
        models = [t.model for t in trainers]
        params, buffers = stack_module_state(models)  # detached copies, leaves requiring grad
        self.params: dict[str, torch.Tensor] = params
        self.buffers: dict[str, torch.Tensor] = buffers
        self.names = [n for n, _ in first.model.named_parameters()]  # the optimizer's order
        self.optimizer = _stacked_optimizer(trainers, [params[n] for n in self.names])
        self.scheduler = None
        if first.scheduler is not None:  # the same schedule for all: the first member's, re-pointed
            self.scheduler = copy.copy(first.scheduler)
            self.scheduler.optimizer = self.optimizer
            _mark_stepped(self.optimizer)
        # L1 acts on the weight matrices; summed over members it is each member's own penalty
        matrices = {id(p) for p in weight_matrices(first.model)}
        self.l1_weights = [params[n] for n, p in first.model.named_parameters() if id(p) in matrices]
        self.l1 = l1
        self.shared_data = all(same_data(t, first) for t in trainers)
        # stacked where every module has a stacked forward (faster: no per-op vmap batching
        # rules); vmap, which runs any module, otherwise
        stacked = stacked_forward(first.model, self.size)
        self.layout = stack_layout(first.model) if stacked is not None else "vmap"
        self.why_vmap = why_not_stacked(first.model) if stacked is None else None
        self._forward = stacked or vmap(
            _member_forward(copy.deepcopy(first.model).to("meta")), randomness="error"
        )

    def describe(self) -> str:
        """How the members are stacked, for the log: the layout, or vmap and why."""
        if self.why_vmap is not None:
            return f"under vmap ({self.why_vmap})"
        where = "side by side along the channels" if self.layout == "channels" else "as a batch dimension"
        return f"without vmap, members {where}"

    @property
    def size(self) -> int:
        return len(self.trainers)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each member's loss on its own batch: x (S, B, ...), y (S, B) -> (S,)."""
        logits = self._forward(self.params, self.buffers, x)  # (S, B, classes)
        # outside vmap: vmapped, cross_entropy runs as a Python decomposition (~0.1 ms a step)
        per_sample = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        return per_sample.view(y.shape).mean(dim=1)

    def train_epoch(self, on_step: Callable[[], None] = lambda: None) -> torch.Tensor:
        """One pass over each member's training set in its own order; returns the per-step
        losses (steps, S), still on the device."""
        first = self.trainers[0]
        device = first.data.x_train.device
        orders = torch.stack([_epoch_order(t) for t in self.trainers]).to(device)  # (S, steps, B)
        losses: list[torch.Tensor] = []
        for step in range(orders.shape[1]):
            x, y = self._batch(orders[:, step])
            with _autocast(first, x.device.type):
                loss = self.loss(x, y)
            self.optimizer.zero_grad(set_to_none=True)
            total = loss.sum()
            if self.l1:
                total = total + self.l1 * sum(w.abs().sum() for w in self.l1_weights)
            total.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            losses.append(loss.detach())
            on_step()
        return torch.stack(losses) if losses else torch.empty(0, self.size, device=device)

    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Member i's batch is its data at idx[i], prepared and augmented as in Trainer."""
        first = self.trainers[0]
        if self.shared_data:  # one gather for all members; prepare is per sample
            data = first.data
            x, y = data.x_train[idx], data.y_train[idx]  # (S, B, ...), (S, B)
            if data.prepare is not None:
                x = data.prepare(x.flatten(0, 1)).unflatten(0, idx.shape)
            xs = list(x) if data.augment is not None else None
        else:
            xs, ys = [], []
            for t, i in zip(self.trainers, idx, strict=True):
                xi = t.data.x_train[i]
                xs.append(t.data.prepare(xi) if t.data.prepare is not None else xi)
                ys.append(t.data.y_train[i])
            x, y = torch.stack(xs), torch.stack(ys)
        if xs is not None and first.data.augment is not None:
            augmented = []
            for t, rng, xi in zip(self.trainers, self.rngs, xs, strict=True):
                with rng.active():  # each member draws its own augmentation
                    augmented.append(t.data.augment(xi))
            x = torch.stack(augmented)
        return x, y

    @torch.no_grad()
    def unstack(self) -> None:
        """Write member i's slice of everything back into its own trainer (model, optimizer
        state, schedule): then its probes and checkpoint see exactly an unfused run's state."""
        fused = self.optimizer.state_dict()
        for i, t in enumerate(self.trainers):
            for name, value in t.model.named_parameters():
                value.copy_(self.params[name][i])
            for name, value in t.model.named_buffers():
                value.copy_(self.buffers[name][i])
            state = {
                j: {k: _slice(v, self.params[n], i) for k, v in fused["state"][j].items()}
                for j, n in enumerate(self.names)
                if j in fused["state"]
            }
            t.optimizer.load_state_dict({"state": state, "param_groups": fused["param_groups"]})
            if t.scheduler is not None and self.scheduler is not None:
                t.scheduler.load_state_dict(self.scheduler.state_dict())


def check_stackable(trainers: list[Trainer]) -> str | None:
    """Why these members cannot be stacked (a structure or a state vmap rejects), or None.
    Tries one forward and backward on copies of the state, so nothing changes."""
    first = trainers[0]
    if len(first.optimizer.param_groups) != 1:
        return "the optimizer has more than one parameter group"
    if any(m.p > 0 for m in first.model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)):
        return "dropout draws differ under vmap from the unfused run's draws"
    shapes = {tuple(t.data.x_train.shape) for t in trainers}
    if len(shapes) != 1:
        return "the members' training sets differ in shape"
    try:
        stack = Stack(trainers, [MemberRng.capture() for _ in trainers], l1=1.0 if first.penalty else 0.0)
        stack.buffers = {k: v.clone() for k, v in stack.buffers.items()}
        idx = torch.stack([torch.arange(first.batch) for _ in trainers]).to(first.data.x_train.device)
        with contextlib.ExitStack() as rngs:
            for rng in stack.rngs:  # the trial's augmentation must not move the real RNG
                rngs.enter_context(rng.active())
            x, y = stack._batch(idx)
        stack.loss(x, y).sum().backward()
    except Exception as err:  # noqa: BLE001  whatever vmap or a norm's code rejects
        return f"vmap rejects it ({type(err).__name__}: {str(err).splitlines()[0][:160]})"
    return None


# ---- helpers --------------------------------------------------------------------------------


def _member_forward(base: nn.Module) -> Callable[..., torch.Tensor]:
    """One member's training-mode outputs from its (params, buffers)."""

    def forward(params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (params, buffers), (x,))

    base.train()
    return forward


def _epoch_order(trainer: Trainer) -> torch.Tensor:
    """The member's batches of this epoch, drawn as Trainer.train_epoch draws them: (steps, B)."""
    steps, batch = trainer.steps_per_epoch, trainer.batch
    order = torch.randperm(trainer.data.x_train.shape[0], generator=trainer.generator)
    return order[: steps * batch].view(steps, batch)


def same_data(a: Trainer, b: Trainer) -> bool:
    """The same data, both splits (one data draw for every seed, resample=false)."""
    da, db = a.data, b.data
    if da is db:
        return True
    if (da.prepare is None) != (db.prepare is None) or (da.augment is None) != (db.augment is None):
        return False
    splits = ("x_train", "y_train", "x_test", "y_test")
    pairs = [(getattr(da, k), getattr(db, k)) for k in splits]
    return all(x.shape == y.shape and bool(torch.equal(x, y)) for x, y in pairs)


def _stacked_optimizer(trainers: list[Trainer], stacked: list[torch.Tensor]) -> torch.optim.Optimizer:
    """A fresh optimizer of the members' kind over the stacked tensors, holding their state
    stacked (momentum, Adam moments; a resumed member has some) and the first's lr."""
    first = trainers[0].optimizer
    optimizer = type(first)(stacked, **first.defaults)
    states = [t.optimizer.state_dict() for t in trainers]
    merged: dict[int, dict[str, Any]] = {}
    for j in states[0]["state"]:
        merged[j] = {}
        for key, value in states[0]["state"][j].items():
            per_member = [s["state"][j][key] for s in states]
            stackable = torch.is_tensor(value) and value.dim() > 0 and value.shape == stacked[j].shape[1:]
            merged[j][key] = torch.stack(per_member) if stackable else value
    optimizer.load_state_dict({"state": merged, "param_groups": states[0]["param_groups"]})
    return optimizer


def _slice(value: Any, stacked: torch.Tensor, i: int) -> Any:
    """Member i's part of a stacked optimizer state entry (shared entries, e.g. Adam's step, whole)."""
    if torch.is_tensor(value) and value.dim() > 0 and value.shape == stacked.shape:
        return value[i].clone()
    return value.clone() if torch.is_tensor(value) else value


def _mark_stepped(optimizer: torch.optim.Optimizer) -> None:
    """What an LR scheduler's constructor does to its optimizer (torch checks it to warn when
    optimizer.step() was replaced): this one is re-pointed, not constructed."""
    step = optimizer.step

    def tracked(*args: Any, **kwargs: Any) -> Any:
        return step(*args, **kwargs)

    tracked._wrapped_by_lr_sched = True  # type: ignore[attr-defined]
    optimizer.step = tracked  # type: ignore[method-assign]
    optimizer._opt_called = True  # type: ignore[attr-defined]


def _autocast(trainer: Trainer, device_type: str) -> contextlib.AbstractContextManager[object]:
    return trainer._autocast(device_type)
