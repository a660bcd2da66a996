"""The stacked forwards: S members computed as one model, without vmap.

Two layouts; ``OWN_LAYOUTS`` below says which one each model's forward can run in:

- ``channels`` (ResNet, MLP): member i owns channel block i of every activation: (B, S*C, H, W)
  for images, (B, S*F) for vectors. A convolution over all members is then one grouped
  convolution (the weight (S, Co, Ci/g, k, k) flattened is exactly the grouped layout), a
  per-channel norm one call over S*C channels, a group norm one call with S*G groups.
- ``members`` (RNN): activations (B, S, ..., F), the members a second batch dimension that the
  model's own code carries like any leading dimension (the recurrent cell's gates are
  elementwise and chunked on the last dimension). A Linear is one batched matmul over the
  members, a norm its channel-stacked call on the (B, S*F) view.

vmap computes the same, but its norm batching rules move the vmapped dim next to the channels
with a permute and a copy on every call (measured: GroupNorm fwd+bwd 69 us channel-stacked
against 289-492 us under vmap), and every op pays its batching rule: a recurrent cell's
dozens of small ops per time step most of all.

The state stays as :func:`torch.func.stack_module_state` made it, (S, ...) tensors: each
leaf module computes with reshaped views of them, so the optimizer, ``Stack.unstack`` and
the checkpoints see nothing new. BatchNorm updates the flattened running statistics, which
are views of the stacked buffers, in place.

A model is stacked only when every one of its modules is of a type in the tables below for
its layout (exact types: a subclass, e.g. a weight-standardised ``ParametrizedConv2d``, may do
anything in its forward); otherwise the Stack keeps vmap.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

Tensor = torch.Tensor
# (module with the stacked tensors swapped in, channel-stacked input, members S) -> output
StackedForward = Callable[[nn.Module, Tensor, int], Tensor]


# oneDNN (the CPU's convolutions) runs a grouped convolution whose groups read fewer channels
# than its vector holds (16 floats with AVX-512) as a gemm: ResNet's stem (3 image channels, 5
# members, batch 2) takes 0.77 ms there against 5 x 0.05 ms for the members' own convolutions,
# and sums in another order than they do. Such a convolution runs member by member.
FEW_CHANNELS = 16


def conv2d(conv: nn.Conv2d, x: Tensor, members: int) -> Tensor:
    """(B, S*Ci, H, W) -> (B, S*Co, H', W'): one grouped convolution, S*groups groups; on a
    CPU, a 1x1 one without bias is one batched matmul and one whose groups read few channels
    runs member by member. Both sum as the unfused run's convolution does (bit for bit on the
    test's CPU and batch sizes; the grouped convolution does so for ResNet's 3x3 ones but not
    for these), so the members stay their unfused runs for longer: an ulp apart grows over
    steps of BN at small batches (tests/test_fused.py, 10 steps). The matmul is also cheaper;
    member by member costs what the gemm does at batch 2, less at batch 8 and 32."""
    padding = conv.padding
    if conv.padding_mode != "zeros":  # what Conv2d._conv_forward does: pad first, then none
        x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        padding = 0
    if x.device.type == "cpu":
        if (
            conv.kernel_size == (1, 1)
            and conv.groups == 1
            and conv.bias is None
            and padding in (0, (0, 0), "valid")
        ):
            return _pointwise_conv2d(conv, x, members)
        if conv.in_channels // conv.groups < FEW_CHANNELS:
            return _member_conv2d(conv, x, padding, members)
    weight = conv.weight.flatten(0, 1)  # (S, Co, Ci/g, k, k) -> (S*Co, Ci/g, k, k)
    bias = conv.bias.flatten() if conv.bias is not None else None
    return F.conv2d(x, weight, bias, conv.stride, padding, conv.dilation, members * conv.groups)


def _pointwise_conv2d(conv: nn.Conv2d, x: Tensor, members: int) -> Tensor:
    """A 1x1 convolution (ResNet's projection shortcuts): member i's (Co, Ci) weight times its
    block of the strided input, one batched matmul. oneDNN's grouped 1x1 convolution took
    2.1-2.4x as long (fwd + bwd, ResNet-8's two shortcuts at batch 2)."""
    cols = x[:, :, :: conv.stride[0], :: conv.stride[1]]  # (B, S*Ci, H', W')
    batch, _, height, width = cols.shape
    per_member = cols.reshape(batch, members, -1, height * width)  # (B, S, Ci, H'W')
    out = torch.matmul(conv.weight.flatten(2), per_member)  # (S, Co, Ci) @ -> (B, S, Co, H'W')
    return out.view(batch, -1, height, width)


def _member_conv2d(conv: nn.Conv2d, x: Tensor, padding: object, members: int) -> Tensor:
    """Member i's own convolution of its channel block, then the blocks side by side again."""
    per_member = x.unflatten(1, (members, -1))  # (B, S, Ci, H, W)
    outs = [
        F.conv2d(
            per_member[:, i],
            conv.weight[i],
            conv.bias[i] if conv.bias is not None else None,
            conv.stride,
            padding,
            conv.dilation,
            conv.groups,
        )
        for i in range(members)
    ]
    return torch.stack(outs, 1).flatten(1, 2)  # (B, S, Co, H', W') -> (B, S*Co, H', W')


def linear(layer: nn.Linear, x: Tensor, members: int) -> Tensor:
    """(B, S*F) -> (B, S*K): member i's block times its own (K, F) weight, one batched matmul."""
    per_member = x.unflatten(1, (members, -1)).transpose(0, 1)  # (S, B, F)
    out = _batched_linear(per_member, layer.weight, layer.bias)  # (S, B, K)
    return out.transpose(0, 1).flatten(1)  # (B, S*K)


def _batched_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x (S, M, F) times each member's weight (S, K, F) transposed, plus its bias (S, K)."""
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def linear_members(
    layer: nn.Linear, x: Tensor, members: int, passes: dict[nn.Module, tuple[Tensor, _Uses]]
) -> Tensor:
    """(B, S, ..., F) -> (B, S, ..., K): each member's rows times its own (K, F) weight, one
    batched matmul. The weight's gradient is made once per forward pass (``passes`` holds
    its uses, emptied by the stacked forward at each call), not once per use: a recurrent
    cell uses W_h at every time step, and autograd's T gradients of (S, K, F) each, summed,
    were a third of the fused RNN's step (measured with 5 members, batch 2: 490 us for each
    out-of-cache outer product, where one matmul over all T uses takes ~60 us)."""
    per_member = x.transpose(0, 1).reshape(members, -1, x.shape[-1])  # (S, B*..., F)
    weight, bias = layer.weight, layer.bias
    if not torch.is_grad_enabled():
        out = _batched_linear(per_member, weight, bias)
    else:
        if layer not in passes:
            uses = _Uses()
            passes[layer] = (_SharedGradient.apply(weight, bias, uses), uses)
        token, uses = passes[layer]
        detached_bias = bias.detach() if bias is not None else None
        out = _Use.apply(per_member, token, weight.detach(), detached_bias, uses)
    return out.view(members, x.shape[0], *x.shape[2:-1], -1).transpose(0, 1)


class _Uses:
    """The inputs and output gradients of one weight's uses in a forward pass."""

    def __init__(self) -> None:
        self.inputs: list[Tensor] = []
        self.grads: list[Tensor] = []


class _SharedGradient(torch.autograd.Function):
    """A zero scalar that every use of (weight, bias) takes as input: autograd runs its
    backward after all of theirs, and it returns the gradients summed over the uses as one
    matmul (the sum is float-reassociated, as autograd's own accumulation order may be)."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, bias: Tensor | None, uses: _Uses) -> Tensor:
        ctx.uses = uses
        return weight.new_zeros(())

    @staticmethod
    def backward(ctx: Any, _: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        need_weight, need_bias, _ = ctx.needs_input_grad
        uses: _Uses = ctx.uses
        x, grad = torch.cat(uses.inputs, dim=1), torch.cat(uses.grads, dim=1)  # (S, uses*M, F|K)
        uses.inputs.clear()
        uses.grads.clear()
        grad_weight = torch.bmm(grad.transpose(1, 2), x.to(grad.dtype)) if need_weight else None
        return grad_weight, grad.sum(1) if need_bias else None, None


class _Use(torch.autograd.Function):
    """One use: ``_batched_linear`` with the weight's gradient left to ``_SharedGradient``."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, token: Tensor, weight: Tensor, bias: Tensor | None, uses: _Uses
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.uses = uses
        return _batched_linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor, None, None, None]:
        x, weight = ctx.saved_tensors
        ctx.uses.inputs.append(x)
        ctx.uses.grads.append(grad)
        grad_x = torch.bmm(grad, weight.to(grad.dtype)) if ctx.needs_input_grad[0] else None
        return grad_x, grad.new_zeros(()), None, None, None


def _flat(t: Tensor | None) -> Tensor | None:
    return t.flatten() if t is not None else None


def _running(t: Tensor | None) -> Tensor | None:
    """A running statistic (S, C) as (S*C,): a view (an error, not a silently updated copy,
    should it ever not be contiguous), which the norm kernel then updates in place."""
    return t.view(-1) if t is not None else None


def batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: Tensor, members: int) -> Tensor:
    """BatchNorm1d/2d over S*C channels, as torch's ``_BatchNorm.forward`` over C. The running
    statistics (S, C) are updated in place through their (S*C,) views."""
    tracking = bn.training and bn.track_running_stats
    if tracking and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)  # (S,): each member counts its own steps
    use_batch = bn.training or (bn.running_mean is None and bn.running_var is None)
    keep = not bn.training or bn.track_running_stats
    cumulative = tracking and bn.momentum is None and bn.num_batches_tracked is not None
    running_mean = _running(bn.running_mean) if keep and not cumulative else None
    running_var = _running(bn.running_var) if keep and not cumulative else None
    momentum = bn.momentum if bn.momentum is not None else 0.0
    out = F.batch_norm(
        x, running_mean, running_var, _flat(bn.weight), _flat(bn.bias), use_batch, momentum, bn.eps
    )
    if cumulative:
        _cumulative_update(bn, x, members)
    return out


@torch.no_grad()
def _cumulative_update(bn: nn.modules.batchnorm._BatchNorm, x: Tensor, members: int) -> None:
    """momentum=None: torch's running statistics are the average over the n steps so far, a
    factor 1/n that differs by member when their counts do (torch takes it as a float)."""
    dims = (0, *range(2, x.dim()))
    var, mean = torch.var_mean(x.detach().float(), dim=dims, correction=1)  # (S*C,)
    factor = 1.0 / bn.num_batches_tracked.to(mean.dtype).unsqueeze(1)  # (S, 1)
    bn.running_mean.lerp_(mean.view(members, -1).to(bn.running_mean.dtype), factor)
    bn.running_var.lerp_(var.view(members, -1).to(bn.running_var.dtype), factor)


def group_norm(gn: nn.GroupNorm, x: Tensor, members: int) -> Tensor:
    """GroupNorm(G, C) of each member is GroupNorm(S*G, S*C) of the stack: groups never cross
    a member's channel block."""
    return F.group_norm(x, members * gn.num_groups, _flat(gn.weight), _flat(gn.bias), gn.eps)


def instance_norm(norm: nn.InstanceNorm2d, x: Tensor, members: int) -> Tensor:
    """Per sample and channel: S*C channels. (``members`` is unused: nothing mixes channels.)"""
    use_input_stats = norm.training or not norm.track_running_stats
    return F.instance_norm(
        x,
        _running(norm.running_mean),
        _running(norm.running_var),
        _flat(norm.weight),
        _flat(norm.bias),
        use_input_stats,
        norm.momentum if norm.momentum is not None else 0.0,
        norm.eps,
    )


def layer_norm(norm: nn.LayerNorm, x: Tensor, members: int) -> Tensor:
    """LayerNorm(F) on vectors (B, S*F): normalised per member block, then its own affine
    (one broadcast multiply-add over (S, F) rather than S kernels)."""
    per_member = x.unflatten(1, (members, -1))  # (B, S, F)
    out = F.layer_norm(per_member, norm.normalized_shape, None, None, norm.eps)
    if norm.weight is not None:
        out = out * norm.weight
    if norm.bias is not None:
        out = out + norm.bias
    return out.flatten(1)


def on_member_vectors(stacked: StackedForward) -> StackedForward:
    """A channel-stacked norm of vectors run on the members layout: (B, S, F) is (B, S*F)."""

    def forward(module: nn.Module, x: Tensor, members: int) -> Tensor:
        return stacked(module, x.flatten(1), members).view(x.shape)

    return forward


# per layout, the leaf modules computed differently when stacked
STACKED: dict[str, dict[type[nn.Module], StackedForward]] = {
    "channels": {
        nn.Conv2d: conv2d,
        nn.Linear: linear,
        nn.BatchNorm1d: batch_norm,
        nn.BatchNorm2d: batch_norm,
        nn.GroupNorm: group_norm,
        nn.InstanceNorm2d: instance_norm,
        nn.LayerNorm: layer_norm,
    },
    "members": {  # vectors only: a recurrent cell normalises (B, S, F) at each step
        nn.Linear: linear_members,
        nn.BatchNorm1d: on_member_vectors(batch_norm),
        nn.GroupNorm: on_member_vectors(group_norm),
        nn.LayerNorm: on_member_vectors(layer_norm),
    },
}
# torch modules whose own forward is right as it is in either layout (elementwise, per
# channel, or never called).
UNCHANGED: frozenset[type[nn.Module]] = frozenset(
    {nn.Sequential, nn.ModuleList, nn.Identity, nn.ReLU, nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d}
)


def _own_layouts() -> dict[type[nn.Module], str]:
    """normbench's own modules whose forward is right as it is in one layout, by exact class
    (a subclass may compute anything in its forward). Why each one is:

    - ResNet, BasicBlock, MLP (channels): their forwards only compose their children per
      channel: ``out + shortcut(x)`` adds member blocks to the same member's,
      ``x.mean(dim=(2, 3))`` pools per channel, ``x.flatten(1)`` keeps member i's (C, H, W)
      block contiguous, in its own order;
    - RNN and its LSTM and GRU layers (members): their cells are elementwise over any leading
      dimensions and chunk the last one, so members ride as a second batch dimension,
      (N, S, T, F); the LSTM's ``gates.chunk(4)`` would split channel blocks;
    - StepNorm (members): it only picks a time step's copy of its norm.

    The models are the fused path's clients, not the other way round: they declare nothing."""
    from normbench.models.mlp import MLP
    from normbench.models.resnet import BasicBlock, ResNet
    from normbench.models.rnn import RNN, NormGRULayer, NormLSTMLayer
    from normbench.norms.registry import StepNorm

    channels = {ResNet: "channels", BasicBlock: "channels", MLP: "channels"}
    members = {RNN: "members", NormLSTMLayer: "members", NormGRULayer: "members", StepNorm: "members"}
    return {**channels, **members}


OWN_LAYOUTS: dict[type[nn.Module], str] = _own_layouts()


def _declared_layout(module: nn.Module) -> str | None:
    """The layout of the module's exact class in OWN_LAYOUTS, if any."""
    return OWN_LAYOUTS.get(type(module))


def stack_layout(model: nn.Module) -> str | None:
    """The layout ``model`` (one member) declares; a bare leaf module (tests) is channel-stacked."""
    declared = _declared_layout(model)
    if declared is None and type(model) in STACKED["channels"]:
        return "channels"
    return declared


def why_not_stacked(model: nn.Module, layout: str | None = None) -> str | None:
    """The first module that cannot run in the model's layout (or ``layout``), or None."""
    layout = layout or stack_layout(model)
    if layout is None:
        return f"the model is a {type(model).__name__}"
    for name, module in model.named_modules():
        known = type(module) in STACKED[layout] or type(module) in UNCHANGED
        if not known and _declared_layout(module) != layout:
            return f"{name or 'the model'} is a {type(module).__name__}"
    return None


def stacked_forward(
    model: nn.Module, members: int, layout: str | None = None
) -> Callable[..., Tensor] | None:
    """``forward(params, buffers, x)``: the ``members`` stacked models' training-mode logits
    (S, B, K) from their stacked state and inputs x (S, B, ...); None when ``model`` (one
    member) has a module its layout (or ``layout``) does not know (then use vmap)."""
    layout = layout or stack_layout(model)
    if why_not_stacked(model, layout) is not None:
        return None
    base = copy.deepcopy(model).to("meta").train()
    passes: dict[nn.Module, tuple[Tensor, _Uses]] = {}  # linear_members' weights used this pass
    for module in base.modules():
        stacked = STACKED[layout].get(type(module))
        if stacked is linear_members:
            module.forward = functools.partial(stacked, module, members=members, passes=passes)
        elif stacked is not None:  # an instance attribute: Module.__call__ calls self.forward
            module.forward = functools.partial(stacked, module, members=members)
    channels = layout == "channels"

    def forward(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        passes.clear()
        x = x.transpose(0, 1)  # (S, B, ...) -> (B, S, ...)
        if channels:
            x = x.flatten(1, 2)  # (B, S*C, ...)
        logits = functional_call(base, (params, buffers), (x,))  # (B, S*K) or (B, S, K)
        if channels:
            logits = logits.unflatten(1, (members, -1))
        return logits.transpose(0, 1)  # (S, B, K)

    return forward
