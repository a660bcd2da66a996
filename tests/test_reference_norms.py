"""The hand-written norms equal torch's: outputs, gradients, running buffers, eval mode."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from normbench.errors import ConfigError
from normbench.norms import norm_builder, reference

TOL = {torch.float64: 1e-9, torch.float32: 1e-5}

# id -> (reference factory, torch factory, input shape); the factories take no argument so
# both modules are built with identical arguments
CASES: dict[str, tuple[Callable[[], nn.Module], Callable[[], nn.Module], tuple[int, ...]]] = {
    "bn2d": (lambda: reference.BatchNorm2d(3), lambda: nn.BatchNorm2d(3), (4, 3, 5, 5)),
    "bn2d-cumulative-noaffine": (
        lambda: reference.BatchNorm2d(3, momentum=None, affine=False),
        lambda: nn.BatchNorm2d(3, momentum=None, affine=False),
        (4, 3, 3, 2),
    ),
    "bn2d-untracked": (
        lambda: reference.BatchNorm2d(3, track_running_stats=False),
        lambda: nn.BatchNorm2d(3, track_running_stats=False),
        (4, 3, 3, 3),
    ),
    "bn1d": (
        lambda: reference.BatchNorm1d(5, momentum=0.3),
        lambda: nn.BatchNorm1d(5, momentum=0.3),
        (8, 5),
    ),
    "bn1d-seq": (lambda: reference.BatchNorm1d(5), lambda: nn.BatchNorm1d(5), (3, 5, 7)),
    "ln": (lambda: reference.LayerNorm(6), lambda: nn.LayerNorm(6), (4, 6)),
    "ln-2d-nobias": (
        lambda: reference.LayerNorm((3, 4), bias=False),
        lambda: nn.LayerNorm((3, 4), bias=False),
        (2, 5, 3, 4),
    ),
    "gn": (lambda: reference.GroupNorm(2, 6), lambda: nn.GroupNorm(2, 6), (3, 6, 4, 4)),
    "gn-1group-noaffine": (
        lambda: reference.GroupNorm(1, 4, affine=False),
        lambda: nn.GroupNorm(1, 4, affine=False),
        (2, 4, 3, 3),
    ),
    "in": (lambda: reference.InstanceNorm2d(3), lambda: nn.InstanceNorm2d(3), (2, 3, 4, 4)),
    "in-affine-tracked": (
        lambda: reference.InstanceNorm2d(3, affine=True, track_running_stats=True, momentum=0.2),
        lambda: nn.InstanceNorm2d(3, affine=True, track_running_stats=True, momentum=0.2),
        (3, 3, 4, 5),
    ),
}


def _pair(case: str, dtype: torch.dtype) -> tuple[nn.Module, nn.Module, tuple[int, ...]]:
    make_ref, make_torch, shape = CASES[case]
    ref, tor = make_ref().to(dtype), make_torch().to(dtype)
    with torch.no_grad():  # non-trivial affine parameters, the same in both
        for p, q in zip(ref.parameters(), tor.parameters()):
            p.copy_(torch.randn_like(p))
            q.copy_(p)
    return ref, tor, shape


def _step(ref: nn.Module, tor: nn.Module, x: torch.Tensor, tol: float) -> None:
    """One forward/backward on both: equal outputs, input and parameter gradients."""
    xr, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yt = ref(xr), tor(xt)
    torch.testing.assert_close(yr, yt, rtol=tol, atol=tol)
    dy = torch.randn_like(yt)
    gr = torch.autograd.grad(yr, [xr, *ref.parameters()], dy)
    gt = torch.autograd.grad(yt, [xt, *tor.parameters()], dy)
    for a, b in zip(gr, gt):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch(case: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    ref, tor, shape = _pair(case, dtype)
    assert list(ref.state_dict()) == list(tor.state_dict())
    tol = TOL[dtype]
    for step in range(4):  # several steps so the running buffers accumulate
        x = torch.randn(shape, dtype=dtype) * (1 + step) + step
        _step(ref, tor, x, tol)
        for key, value in tor.state_dict().items():
            torch.testing.assert_close(ref.state_dict()[key], value, rtol=tol, atol=tol, msg=key)
    ref.eval(), tor.eval()
    _step(ref, tor, torch.randn(shape, dtype=dtype) + 1, tol)


# eval mode (running statistics, a plain affine map) in the suite; training mode in the fast tier
@pytest.mark.parametrize("train", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["train", "eval"])
@pytest.mark.parametrize("case", list(CASES))
def test_gradcheck(case: str, train: bool) -> None:
    torch.manual_seed(1)
    ref, _, shape = _pair(case, torch.float64)
    ref.train(train)
    if not train and getattr(ref, "running_var", None) is not None:
        with torch.no_grad():  # eval on non-trivial running statistics
            ref.running_mean.uniform_(-1, 1)
            ref.running_var.uniform_(0.5, 2)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    params = list(ref.parameters())

    def f(x: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        # torch.func.functional_call swaps the parameters in, so gradcheck perturbs them too
        return torch.func.functional_call(ref, dict(zip([n for n, _ in ref.named_parameters()], ps)), (x,))

    # in training the running buffers move at every call, but they do not feed the output
    assert torch.autograd.gradcheck(f, (x, *[p.detach().requires_grad_() for p in params]))


def test_worked_example_of_article_4() -> None:
    bn = reference.BatchNorm2d(1).train()
    y = bn(torch.tensor([[[[1.0, 1.0], [-1.0, 1.0]]]]))  # (1, 1, 2, 2)
    expected = torch.tensor([[[[0.5773, 0.5773], [-1.7320, 0.5773]]]])
    torch.testing.assert_close(y.detach(), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("case", ["bn2d", "ln-2d-nobias", "gn", "in-affine-tracked"])
def test_state_dicts_load_both_ways(case: str) -> None:
    ref, tor, _ = _pair(case, torch.float32)
    tor.load_state_dict(ref.state_dict())
    ref.load_state_dict(tor.state_dict())


def test_single_value_per_channel_refused_like_torch() -> None:
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        reference.BatchNorm1d(3)(torch.randn(1, 3))
    reference.BatchNorm1d(3).eval()(torch.randn(1, 3))  # eval uses the running statistics


@pytest.mark.parametrize(
    "name, layout, expected",
    [
        ("batch", "vector", reference.BatchNorm1d),
        ("batch", "image", reference.BatchNorm2d),
        ("layer", "vector", reference.LayerNorm),
        ("layer", "image", reference.GroupNorm),
        ("group", "image", reference.GroupNorm),
        ("group", "vector", reference.GroupNorm),
        ("instance", "image", reference.InstanceNorm2d),
    ],
)
def test_norm_builder_builds_reference(name: str, layout: str, expected: type) -> None:
    options = {"num_groups": 2} if name == "group" else {}  # groups of one value are all noise
    torch_module = norm_builder(name, layout, options)(8)
    module = norm_builder(name, layout, options, impl="reference")(8)
    assert type(module) is expected
    assert list(module.state_dict()) == list(torch_module.state_dict())
    shape = (4, 8, 3, 3) if layout == "image" else (4, 8)
    x = torch.randn(shape)
    torch.testing.assert_close(module(x), torch_module(x), rtol=1e-5, atol=1e-5)


def test_layer_image_is_one_group() -> None:
    module = norm_builder("layer", "image", {}, impl="reference")(4)
    assert module.num_groups == 1


def test_group_options_that_do_not_fit_are_named() -> None:
    module = norm_builder("group", "image", {"num_groups": 3}, impl="reference")(8)
    with pytest.raises(ConfigError, match="norm.num_groups=3"):
        module(torch.randn(2, 8, 2, 2))


def test_unknown_impl_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="norm.impl=cuda"):
        norm_builder("batch", "image", {}, impl="cuda")
