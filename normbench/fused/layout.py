"""The channel-stacked forward: S members' activations side by side along the channels.

Member i owns channel block i of every activation: (B, S*C, H, W) for images, (B, S*F) for
vectors. A convolution over all members is then one grouped convolution (the weight
(S, Co, Ci/g, k, k) flattened is exactly the grouped layout), a per-channel norm one call over
S*C channels, a group norm one call with S*G groups. vmap computes the same, but its norm
batching rules move the vmapped dim next to the channels with a permute and a copy on every
call (issue 16: GroupNorm fwd+bwd 69 us channel-stacked against 289-492 us under vmap).

The state stays as :func:`torch.func.stack_module_state` made it, (S, ...) tensors: each
leaf module computes with reshaped views of them, so the optimizer, ``Stack.unstack`` and
the checkpoints see nothing new. BatchNorm updates the flattened running statistics, which
are views of the stacked buffers, in place.

A model is channel-stacked only when every one of its modules is of a type in the tables
below (exact types: a subclass, e.g. a weight-standardised ``ParametrizedConv2d``, may do
anything in its forward); otherwise the Stack keeps vmap.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

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
    weight_t = layer.weight.transpose(1, 2)  # (S, F, K)
    if layer.bias is None:
        out = torch.bmm(per_member, weight_t)
    else:
        out = torch.baddbmm(layer.bias.unsqueeze(1), per_member, weight_t)  # (S, B, K)
    return out.transpose(0, 1).flatten(1)  # (B, S*K)


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


# leaf modules computed differently when channel-stacked
STACKED: dict[type[nn.Module], StackedForward] = {
    nn.Conv2d: conv2d,
    nn.Linear: linear,
    nn.BatchNorm1d: batch_norm,
    nn.BatchNorm2d: batch_norm,
    nn.GroupNorm: group_norm,
    nn.InstanceNorm2d: instance_norm,
    nn.LayerNorm: layer_norm,
}
# torch modules whose own forward is right as it is on channel-stacked activations
# (elementwise or per channel). A model's own classes say so themselves, with a class
# attribute ``channel_stackable = True`` (ResNet: `out + shortcut(x)` adds member blocks to the
# same member's, `x.mean(dim=(2, 3))` pools per channel; MLP: `x.flatten(1)` keeps member i's
# (C, H, W) block contiguous, in its own order).
UNCHANGED: frozenset[type[nn.Module]] = frozenset(
    {nn.Sequential, nn.Identity, nn.ReLU, nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d}
)


def _runs_unchanged(module: nn.Module) -> bool:
    """Declared by the class itself, not inherited: a subclass may change the forward."""
    return type(module) in UNCHANGED or vars(type(module)).get("channel_stackable", False)


def why_not_channel_stacked(model: nn.Module) -> str | None:
    """The first module whose type the channel-stacked forward does not know, or None."""
    for name, module in model.named_modules():
        if type(module) not in STACKED and not _runs_unchanged(module):
            return f"{name or 'the model'} is a {type(module).__name__}"
    return None


def channel_stacked_forward(model: nn.Module, members: int) -> Callable[..., Tensor] | None:
    """``forward(params, buffers, x)``: the ``members`` stacked models' training-mode logits
    (S, B, K) from their stacked state and inputs x (S, B, ...); None when ``model`` (one
    member) has a module the tables above do not know (then use vmap)."""
    if why_not_channel_stacked(model) is not None:
        return None
    base = copy.deepcopy(model).to("meta").train()
    for module in base.modules():
        stacked = STACKED.get(type(module))
        if stacked is not None:  # an instance attribute: Module.__call__ calls self.forward
            module.forward = functools.partial(stacked, module, members=members)

    def forward(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        x = x.transpose(0, 1).flatten(1, 2)  # (S, B, C, ...) -> (B, S*C, ...)
        logits = functional_call(base, (params, buffers), (x,))  # (B, S*K)
        return logits.unflatten(1, (members, -1)).transpose(0, 1)  # (S, B, K)

    return forward
