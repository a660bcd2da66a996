"""Recurrent classifier (LSTM or GRU) with norms inside the cell at every time step.

LSTM (Ba et al. 2016 layer-normalised LSTM; Cooijmans et al. 2016 recurrent BN)::

    gates = norm_x(W_x x_t, t) + norm_h(W_h h_{t-1}, t) + b        # (N, 4H): i, f, g, o
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(norm_c(c_t, t))

GRU, with torch's gate order and biases (r, z, n; b_x and b_h over 3H)::

    xr, xz, xn = norm_x(W_x x_t, t) + b_x;  hr, hz, hn = norm_h(W_h h_{t-1}, t) + b_h
    r = sigmoid(xr + hr);  z = sigmoid(xz + hz);  n = tanh(xn + r * hn)
    h_t = (1 - z) * n + z * h_{t-1}

With ``norm=none`` both compute exactly torch's ``nn.LSTM`` / ``nn.GRU``. The norms come from
``norm_layer`` built for the ``recurrent`` layout: each is a StepNorm called as ``norm(x, t)``,
holding per-step copies for batch-statistics norms. Defaults: see :mod:`normbench.models`
(signature defaults, mirrored by ``conf/model/rnn.yaml``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

from normbench.errors import ConfigError
from normbench.models.registry import Footprint, register_model
from normbench.norms import NormBuilder

log = logging.getLogger("normbench")


def erases_scale(norm_layer: NormBuilder, input_size: int, features: int) -> bool:
    """Whether normalising the input projection would erase what a single input feature says.

    With one input feature, ``W_x x_t = x_t w`` lies on one line: a norm over the features of
    each sample (layer, group) maps every positive ``x_t`` to the same vector and keeps only
    its sign (measured: 20% on a 10-class univariate task where norm=none reaches 88%). Decided
    by what the norm does, not by its name: a throwaway copy normalises a batch of multiples
    of one vector, and if every sample comes out the same, the magnitude is gone.
    """
    if input_size != 1:
        return False
    probe = norm_layer(features).train()
    # (features,): spread like a random weight row in every group of features, but fixed, so
    # no RNG draw moves the model's init
    w = torch.cos(2.4 * torch.arange(features, dtype=torch.float32))
    x = torch.linspace(0.5, 4.0, 8)[:, None] * w  # (8, features): the same line, 8 magnitudes
    try:
        with torch.no_grad():
            y = probe(x, 0)
    except ConfigError:  # a batch of 8 does not suit it (ghost_size=16): checked against `batch` elsewhere
        return False
    # eps leaves differences of ~1e-4; a norm that keeps the magnitude differs by ~1
    erased = bool(torch.allclose(y, y[:1].expand_as(y), atol=1e-2))
    if erased:
        log.info(
            "rnn: one input feature: the norm would keep only the sign of W_x x_t, so the input "
            "projection is not normalised (the recurrent terms still are)"
        )
    return erased


class _NormRecurrentLayer(nn.Module):
    """One recurrent layer over a whole sequence: (N, T, F) -> (N, T, H), or with any leading
    dimensions (..., T, F) -> (..., T, H): the fused stack runs S members as (N, S, T, F)."""

    gates = 1  # gate blocks of H features that W_x and W_h produce

    def __init__(self, input_size: int, hidden_size: int, norm_layer: NormBuilder) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        # the biases live outside the norms, so a norm's shift cannot double as a gate bias
        self.w_x = nn.Linear(input_size, self.gates * hidden_size, bias=False)
        self.w_h = nn.Linear(hidden_size, self.gates * hidden_size, bias=False)
        # None: the input projection is not normalised (see erases_scale)
        self.norm_x = (
            None
            if erases_scale(norm_layer, input_size, self.gates * hidden_size)
            else (norm_layer(self.gates * hidden_size))
        )
        self.norm_h = norm_layer(self.gates * hidden_size)
        # torch's RNN init: every weight uniform in +-1/sqrt(H), whatever the input size
        bound = 1.0 / math.sqrt(hidden_size)
        nn.init.uniform_(self.w_x.weight, -bound, bound)
        nn.init.uniform_(self.w_h.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xw = self.w_x(x)  # all steps in one matmul: (..., T, F) -> (..., T, gates*H)
        h = x.new_zeros(*x.shape[:-2], self.hidden_size)
        state = self.initial_state(h)
        outputs = []
        # unbind, not xw[:, t]: the backward of T selects fills T zero tensors of xw's size
        for t, xw_t in enumerate(xw.unbind(-2)):
            xt = xw_t if self.norm_x is None else self.norm_x(xw_t, t)
            h, state = self.step(xt, h, state, t)
            outputs.append(h)
        return torch.stack(outputs, dim=-2)  # (..., T, H)

    def initial_state(self, h: torch.Tensor) -> torch.Tensor | None:
        return None

    def step(
        self, xw: torch.Tensor, h: torch.Tensor, state: torch.Tensor | None, t: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError


class NormLSTMLayer(_NormRecurrentLayer):
    gates = 4  # i, f, g, o (torch's order)

    def __init__(self, input_size: int, hidden_size: int, norm_layer: NormBuilder) -> None:
        super().__init__(input_size, hidden_size, norm_layer)
        self.norm_c = norm_layer(hidden_size)
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
        with torch.no_grad():
            # forget-gate bias 1: remember by default early in training (Jozefowicz et al. 2015)
            self.bias[hidden_size : 2 * hidden_size] = 1.0

    def initial_state(self, h: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(h)  # c_0

    def step(
        self, xw: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, t: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gates = xw + self.norm_h(self.w_h(h), t) + self.bias  # (..., 4H)
        i, f, g, o = gates.chunk(4, dim=-1)  # each (..., H)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(self.norm_c(c, t))
        return h, c


class NormGRULayer(_NormRecurrentLayer):
    gates = 3  # r, z, n (torch's order)

    def __init__(self, input_size: int, hidden_size: int, norm_layer: NormBuilder) -> None:
        super().__init__(input_size, hidden_size, norm_layer)
        # two biases as torch's GRU: b_hn sits inside r * (W_hn h + b_hn)
        self.bias_x = nn.Parameter(torch.zeros(3 * hidden_size))
        self.bias_h = nn.Parameter(torch.zeros(3 * hidden_size))

    def step(
        self, xw: torch.Tensor, h: torch.Tensor, state: torch.Tensor | None, t: int
    ) -> tuple[torch.Tensor, None]:
        xr, xz, xn = (xw + self.bias_x).chunk(3, dim=-1)  # each (..., H)
        hr, hz, hn = (self.norm_h(self.w_h(h), t) + self.bias_h).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None


CELLS: dict[str, type[_NormRecurrentLayer]] = {"lstm": NormLSTMLayer, "gru": NormGRULayer}


@register_model("rnn", layout="recurrent", modalities=("sequence", "image"), native="sequence")
class RNN(nn.Module):
    """Stacked LSTM/GRU classifier on sequences (N, T, F) or images (N, C, H, W) read as H
    rows of C*W features; classifies from the last layer's final hidden state.

    ``self.layers[l]`` is layer ``l``; its output (N, T, H) is what a forward hook sees.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        norm_layer: NormBuilder,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ConfigError("model.cell", cell, f"unknown cell; use one of {', '.join(CELLS)}")
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise ConfigError("model.hidden_size", hidden_size, "must be an integer >= 1")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ConfigError("model.num_layers", num_layers, "must be an integer >= 1")
        self.reads_images = len(input_shape) == 3
        if len(input_shape) == 2:
            self.steps, features = input_shape  # (T, F)
        elif len(input_shape) == 3:
            channels, self.steps, width = input_shape  # (C, H, W): H rows of C*W features
            features = channels * width
        else:
            raise ConfigError(
                "model",
                "rnn",
                f"reads sequences (T, F) or images (C, H, W), not samples of shape {tuple(input_shape)}",
            )
        layer_cls = CELLS[cell]
        self.layers = nn.ModuleList(
            layer_cls(features if i == 0 else hidden_size, hidden_size, norm_layer) for i in range(num_layers)
        )
        self.head = nn.Linear(hidden_size, num_classes)

    @property
    def blocks(self) -> nn.ModuleList:
        """The layers in depth order, for activation statistics."""
        return self.layers

    @staticmethod
    def footprint(
        input_shape: tuple[int, ...], num_classes: int, cell: str, hidden_size: int, num_layers: int, **_: Any
    ) -> Footprint:
        if len(input_shape) not in (2, 3):
            return Footprint(0, 0, 0, 0)  # the constructor says what it reads
        steps = RNN.time_steps(input_shape)
        features = math.prod(input_shape) // steps
        g, h = CELLS[cell].gates if cell in CELLS else 4, hidden_size
        # batch-statistics norms keep a copy per step: scale, shift and 2 running stats each
        per_step_norms = steps * (2 * g + 1) * h * 4
        params = g * h * (features + h) + (num_layers - 1) * g * h * 2 * h
        params += num_layers * (2 * g * h + per_step_norms) + (h + 1) * num_classes
        activations = steps * features + num_layers * steps * h * (3 * g + 4) + num_classes
        widest = steps * max(features, h) + g * h  # a layer's (T, H) output, one step's gates
        return Footprint(params, activations, widest, num_layers * (4 + 3 * steps) + 2)

    @staticmethod
    def time_steps(input_shape: tuple[int, ...]) -> int:
        """Steps in one sample, for per-step norms: T of (T, F), H of an image (C, H, W)."""
        return input_shape[0] if len(input_shape) == 2 else input_shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reads_images:
            # (..., C, H, W) -> (..., H, C, W) -> (..., H, C*W): row h is step h
            x = x.transpose(-3, -2).flatten(-2)
        for layer in self.layers:
            x = layer(x)  # (..., T, F) -> (..., T, H)
        return self.head(x.select(-2, -1))  # final hidden state of the last layer: (..., num_classes)
