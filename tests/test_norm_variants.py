"""batch_renorm, ghost_batch and weight standardisation: their limits are BN, their checks bite."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from normbench.errors import ConfigError
from normbench.norms import (
    BatchRenorm,
    GhostBatchNorm,
    check_batch,
    fold_batchnorm,
    get_norm_spec,
    make_options,
    norm_builder,
    standardize_conv_weights,
)
from normbench.norms.weight_std import StandardizeWeight

CONF = Path(__file__).resolve().parents[1] / "conf" / "norm"
SHAPES = {"vector": (8, 5), "image": (8, 5, 3, 3)}
TOL = 1e-9  # float64 throughout


def _randomize_affine(*modules: nn.Module) -> None:
    torch.manual_seed(0)
    w, b = torch.rand(5, dtype=torch.float64) + 0.5, torch.randn(5, dtype=torch.float64)
    with torch.no_grad():
        for m in modules:
            m.weight.copy_(w)
            m.bias.copy_(b)


def _forward_backward(module: nn.Module, x: torch.Tensor, dy: torch.Tensor) -> list[torch.Tensor]:
    """[output, dL/dx, dL/dweight, dL/dbias]."""
    x = x.clone().requires_grad_()
    y = module(x)
    return [y.detach(), *torch.autograd.grad(y, [x, module.weight, module.bias], dy)]


def _assert_same_steps(
    module: nn.Module, reference: nn.Module, shape: tuple[int, ...], steps: int = 4
) -> None:
    """Equal outputs, gradients and buffers over training steps, then in eval."""
    for step in range(steps + 1):
        if step == steps:
            module.eval(), reference.eval()
        x = torch.randn(shape, dtype=torch.float64) * (1 + step) + step
        dy = torch.randn(shape, dtype=torch.float64)
        for a, b in zip(_forward_backward(module, x, dy), _forward_backward(reference, x, dy)):
            torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)
        for key, value in reference.state_dict().items():
            torch.testing.assert_close(module.state_dict()[key], value, rtol=TOL, atol=TOL, msg=key)


# --- batch_renorm ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["vector", "image"])
def test_batch_renorm_with_r1_d0_is_batch_norm(layout: str) -> None:
    renorm = norm_builder("batch_renorm", layout, {"r_max": 1.0, "d_max": 0.0, "warmup_steps": 0})(5).double()
    bn = norm_builder("batch", layout, {})(5).double()
    assert list(renorm.state_dict()) == list(bn.state_dict())
    _randomize_affine(renorm, bn)
    _assert_same_steps(renorm, bn, SHAPES[layout])


def test_batch_renorm_unclipped_trains_on_the_eval_function() -> None:
    """With limits never reached, the training output is eval-mode BN with the running
    statistics of before the step: the point of batch renormalization."""
    renorm = BatchRenorm(5, r_max=1e6, d_max=1e6, warmup_steps=0).double()
    with torch.no_grad():
        renorm.running_mean.uniform_(-1, 1)
        renorm.running_var.uniform_(0.5, 2)
    before = copy.deepcopy(renorm).eval()
    x = torch.randn(SHAPES["image"], dtype=torch.float64) * 3 + 1
    torch.testing.assert_close(renorm(x), before(x), rtol=TOL, atol=TOL)


def test_batch_renorm_warmup_then_linear_ramp() -> None:
    renorm = BatchRenorm(5, r_max=3.0, d_max=5.0, warmup_steps=10)
    for step, (r, d) in {0: (1, 0), 10: (1, 0), 15: (2, 2.5), 20: (3, 5), 100: (3, 5)}.items():
        renorm.num_batches_tracked.fill_(step)
        assert [float(t) for t in renorm.limits()] == pytest.approx([r, d]), step


def test_batch_renorm_steps_count_and_clip() -> None:
    renorm = BatchRenorm(5, r_max=2.0, d_max=0.5, warmup_steps=0)
    x = torch.randn(SHAPES["vector"]) * 10 + 20  # far from the initial running stats (0, 1)
    y = renorm(x).detach()
    assert int(renorm.num_batches_tracked) == 1
    # r = 2 and d = 0.5 at their clips: y = xhat * 2 + 0.5 with xhat the batch-normalised x
    xhat = (x - x.mean(0)) / (x.var(0, unbiased=False) + renorm.eps).sqrt()
    torch.testing.assert_close(y, xhat * 2 + 0.5, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("key, value", [("r_max", 0.5), ("d_max", -1.0), ("warmup_steps", -1)])
def test_batch_renorm_bad_limits_are_named(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"norm.{key}="):
        norm_builder("batch_renorm", "vector", {key: value})(5)


# --- ghost_batch ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["vector", "image"])
def test_ghost_batch_of_the_whole_batch_is_batch_norm(layout: str) -> None:
    ghost = norm_builder("ghost_batch", layout, {"ghost_size": 8})(5).double()
    bn = norm_builder("batch", layout, {})(5).double()
    assert list(ghost.state_dict()) == list(bn.state_dict())
    _randomize_affine(ghost, bn)
    _assert_same_steps(ghost, bn, SHAPES[layout])


@pytest.mark.parametrize("layout", ["vector", "image"])
def test_ghost_batch_is_batch_norm_per_chunk(layout: str) -> None:
    ghost = norm_builder("ghost_batch", layout, {"ghost_size": 2})(5).double()
    bn = norm_builder("batch", layout, {})(5).double()
    _randomize_affine(ghost, bn)
    shape = SHAPES[layout]
    x, dy = torch.randn(shape, dtype=torch.float64) + 2, torch.randn(shape, dtype=torch.float64)
    got = _forward_backward(ghost, x, dy)
    # BN on each chunk of 2 samples from the same state; a copy per chunk for the buffers
    copies = [copy.deepcopy(bn) for _ in range(4)]
    per_chunk = [_forward_backward(c, xc, dc) for c, xc, dc in zip(copies, x.chunk(4), dy.chunk(4))]
    torch.testing.assert_close(got[0], torch.cat([p[0] for p in per_chunk]), rtol=TOL, atol=TOL)
    torch.testing.assert_close(got[1], torch.cat([p[1] for p in per_chunk]), rtol=TOL, atol=TOL)
    for i in (2, 3):  # parameter gradients add up over the chunks
        torch.testing.assert_close(got[i], sum(p[i] for p in per_chunk), rtol=TOL, atol=TOL)
    for key in ("running_mean", "running_var"):  # one update with the chunks' mean statistics
        expected = torch.stack([getattr(c, key) for c in copies]).mean(0)
        torch.testing.assert_close(getattr(ghost, key), expected, rtol=TOL, atol=TOL)
    assert int(ghost.num_batches_tracked) == 1


def test_ghost_size_must_divide_the_batch_before_training() -> None:
    with pytest.raises(ConfigError) as err:
        check_batch("ghost_batch", {"ghost_size": 8}, 12)
    assert (
        str(err.value) == "norm.ghost_size=8: does not divide batch=12; use a divisor of 12: 2, 3, 4, 6, 12"
    )
    with pytest.raises(ConfigError, match="norm.ghost_size=1: must be an integer >= 2"):
        check_batch("ghost_batch", {"ghost_size": 1}, 12)
    for size in (2, 3, 4, 6, 12):  # every divisor offered works
        check_batch("ghost_batch", {"ghost_size": size}, 12)


@pytest.mark.parametrize("batch", [8, 16, 32, 64])
def test_ghost_batch_defaults_run_at_batch_8_and_above(batch: int) -> None:
    options = _yaml_options("ghost_batch")
    check_batch("ghost_batch", options, batch)
    module = norm_builder("ghost_batch", "image", options)(3)
    module(torch.randn(batch, 3, 2, 2)).sum().backward()


def test_ghost_batch_refuses_an_indivisible_batch_at_run_time() -> None:
    with pytest.raises(ConfigError, match="does not divide this batch of 6"):
        GhostBatchNorm(3, ghost_size=4)(torch.randn(6, 3))
    GhostBatchNorm(3, ghost_size=4).eval()(torch.randn(6, 3))  # eval: running statistics


# --- YAML files and the registry agree ------------------------------------------------------


def _yaml_options(name: str) -> dict:
    options = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert options["name"] == name and options["impl"] == "normbench"  # not torch: code of ours
    return make_options(options)


@pytest.mark.parametrize("name", ["batch_renorm", "ghost_batch"])
def test_yaml_matches_the_registry_entry(name: str) -> None:
    spec = get_norm_spec(name)
    assert spec.batch_statistics and set(spec.layouts) == {"vector", "image"}
    params = dict(list(inspect.signature(spec.make).parameters.items())[2:])
    options = _yaml_options(name)
    assert options == {k: p.default for k, p in params.items()}, "YAML and code defaults differ"
    norm_builder(name, "image", options)(4)(torch.randn(8, 4, 2, 2))


@pytest.mark.parametrize("name", ["batch_renorm", "ghost_batch"])
def test_variants_have_no_reference_impl(name: str) -> None:
    with pytest.raises(ConfigError, match="norm.impl=reference"):
        norm_builder(name, "vector", {}, impl="reference")


@pytest.mark.parametrize("name", ["batch_renorm", "ghost_batch"])
def test_variants_fold_like_batch_norm(name: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        norm_builder(name, "image", {"ghost_size": 2} if name == "ghost_batch" else {})(4),
        nn.ReLU(),
    )
    model(torch.randn(8, 3, 5, 5) + 1)  # move the running statistics
    folded = fold_batchnorm(model)
    assert isinstance(folded[1], nn.Identity)
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(folded(x), model.eval()(x), rtol=1e-5, atol=1e-5)


# --- weight standardisation -----------------------------------------------------------------


def _gn_convnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.GroupNorm(2, 8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False),
        nn.GroupNorm(2, 8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )


def test_standardized_weights_have_mean_0_std_1() -> None:
    torch.manual_seed(0)
    model = standardize_conv_weights(_gn_convnet())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2
    for conv in convs:
        with torch.no_grad():
            conv.parametrizations.weight.original.mul_(3).add_(1)  # far from standardised
        flat = conv.weight.flatten(1)  # (C_out, fan_in)
        torch.testing.assert_close(flat.mean(1), torch.zeros(8), rtol=0, atol=1e-6)
        torch.testing.assert_close(flat.std(1, unbiased=False), torch.ones(8), rtol=0, atol=1e-4)
    standardize_conv_weights(model)  # idempotent
    assert all(len(c.parametrizations.weight) == 1 for c in convs)


def test_standardized_model_trains() -> None:
    torch.manual_seed(0)
    model = standardize_conv_weights(_gn_convnet())
    x, y = torch.randn(16, 3, 6, 6), torch.randint(0, 2, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(15):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        original = model[0].parametrizations.weight.original
        assert original.grad is not None and original.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_standardized_state_dict_loads() -> None:
    torch.manual_seed(0)
    model = standardize_conv_weights(_gn_convnet())
    other = standardize_conv_weights(_gn_convnet())
    other.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(other(x), model(x))
    assert "0.parametrizations.weight.original" in model.state_dict()


def test_standardized_conv_is_not_folded() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    standardize_conv_weights(model)
    assert isinstance(fold_batchnorm(model)[1], nn.BatchNorm2d)
    assert isinstance(model[0].parametrizations.weight[0], StandardizeWeight)
