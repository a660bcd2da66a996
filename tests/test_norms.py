"""The norm registry: semantics per layout (checked on output statistics) and refusals."""

import re

import pytest
import torch
from torch import nn

from normbench.errors import ConfigError
from normbench.norms import (
    NORMS,
    StepNorm,
    batch_statistics_modules,
    check_batch,
    check_forward,
    check_layout,
    check_model_norms,
    norm_builder,
)

BASE_LAYOUTS = ("vector", "image")


def supported(layout):
    return [name for name, spec in NORMS.items() if layout in spec.layouts]


def sample(layout, n=8, c=16):
    torch.manual_seed(0)
    shape = (n, c, 5, 6) if layout == "image" else (n, c)
    # a non-trivial scale and offset per channel, so an un-normalised axis shows
    scale = torch.linspace(0.5, 4, c).view(1, c, *([1] * (len(shape) - 2)))
    return torch.randn(shape) * scale + 3.0


def assert_standardised(out, dims):
    """Mean 0 and (biased) variance 1 over ``dims`` for every other index."""
    assert torch.allclose(out.mean(dim=dims), torch.zeros(()), atol=1e-4)
    assert torch.allclose(out.var(dim=dims, unbiased=False), torch.ones(()), atol=1e-2)


def assert_not_standardised(out, dims):
    assert not torch.allclose(out.mean(dim=dims), torch.zeros(()), atol=1e-2)


@pytest.mark.parametrize("layout", BASE_LAYOUTS)
def test_every_norm_keeps_shape_and_passes_gradients(layout):
    for name in supported(layout):
        x = sample(layout, c=64).requires_grad_()
        norm = norm_builder(name, layout)(64).train()
        out = norm(x)
        assert out.shape == x.shape, name
        out.square().sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0, name


def test_batch_norm_image_normalises_each_channel_over_batch_and_space():
    out = norm_builder("batch", "image")(16).train()(sample("image"))
    assert_standardised(out, (0, 2, 3))
    assert_not_standardised(out, (1, 2, 3))  # not per sample


def test_layer_norm_image_normalises_each_sample_over_channels_and_space():
    out = norm_builder("layer", "image")(16)(sample("image"))
    assert_standardised(out, (1, 2, 3))
    assert_not_standardised(out, (0, 2, 3))  # the channels keep their different scales


def test_instance_norm_normalises_each_sample_and_channel_over_space():
    out = norm_builder("instance", "image")(16)(sample("image"))
    assert_standardised(out, (2, 3))


@pytest.mark.parametrize("layout", BASE_LAYOUTS)
def test_group_norm_normalises_each_sample_over_groups_of_channels(layout):
    out = norm_builder("group", layout, {"num_groups": 4})(16)(sample(layout))
    grouped = out.reshape(out.shape[0], 4, -1)  # (N, G, C/G * H * W)
    assert_standardised(grouped, (2,))
    assert_not_standardised(out.reshape(out.shape[0], 16, -1), (2,))  # not per channel


def test_vector_batch_and_layer_norm_axes():
    assert_standardised(norm_builder("batch", "vector")(16).train()(sample("vector")), (0,))
    assert_standardised(norm_builder("layer", "vector")(16)(sample("vector")), (1,))


@pytest.mark.parametrize("layout", BASE_LAYOUTS)
def test_none_is_identity(layout):
    x = sample(layout)
    assert torch.equal(norm_builder("none", layout)(16)(x), x)


def test_group_count_defaults_to_32_capped_to_the_channels():
    assert norm_builder("group", "image", {"num_groups": 32})(16).num_groups == 16
    assert norm_builder("group", "image", {"num_groups": 32})(64).num_groups == 32
    assert norm_builder("group", "image", {"channels_per_group": 4})(64).num_groups == 16


def test_groups_that_do_not_divide_the_channels_name_the_layer():
    model = nn.Sequential(nn.Conv2d(3, 12, 3), norm_builder("group", "image", {"num_groups": 5})(12))
    with pytest.raises(
        ConfigError,
        match=r"norm.num_groups=5: does not divide the 12 channels.*"
        r"1, 2, 3, 4, 6, 12.*layer '1'",
    ):
        check_model_norms(model)
    model = nn.Sequential(norm_builder("group", "vector", {"channels_per_group": 5})(12))
    with pytest.raises(ConfigError, match=r"norm.channels_per_group=5: does not divide"):
        check_model_norms(model)


@pytest.mark.parametrize("layout", ["vector", "recurrent"])
def test_instance_norm_is_refused_for_vector_features(layout):
    with pytest.raises(ConfigError, match=r"^norm=instance: .*on model=mlp; use one of .*group"):
        check_layout("instance", layout, "mlp")


def test_unknown_norm_lists_the_registered_ones():
    with pytest.raises(ConfigError, match=r"norm=foo: unknown norm; choose one of .*batch.*group"):
        norm_builder("foo", "image")


def test_unknown_impl_is_refused():
    with pytest.raises(ConfigError, match=r"norm.impl=nope: norm=batch has implementations: torch"):
        norm_builder("batch", "image", impl="nope")


def test_batch_statistics_need_two_samples():
    with pytest.raises(ConfigError, match=r"^batch=1: norm=batch .* at least 2 samples"):
        check_batch("batch", {}, 1)
    check_batch("batch", {}, 2)
    for name, spec in NORMS.items():
        if not spec.batch_statistics and spec.resolve is None:  # norm=custom: the user's says
            check_batch(name, {}, 1)


def test_recurrent_batch_norm_keeps_statistics_per_step_and_others_share():
    bn = norm_builder("batch", "recurrent", steps=5)(8)
    ln = norm_builder("layer", "recurrent", steps=5)(8)
    assert isinstance(bn, StepNorm) and len(bn.norms) == 5 and len(ln.norms) == 1
    x = torch.randn(4, 8) * 3 + 1
    bn.train()
    for t in range(7):  # steps past the training length reuse the last step's statistics
        bn(x, t)
    assert int(bn.norms[4].num_batches_tracked) == 3
    assert all(int(m.num_batches_tracked) == 1 for m in bn.norms[:4])
    assert_standardised(ln(x, 3), (1,))


def test_batch_statistics_modules_finds_exactly_the_running_statistics_norms():
    model = nn.Sequential(*(norm_builder(n, "image")(16) for n in ("batch", "layer", "group", "none")))
    found = batch_statistics_modules(model)
    assert found == [model[0]]


@pytest.mark.parametrize("impl", ["torch", "reference"])
@pytest.mark.parametrize(
    "layout, options, channels, message",
    [
        ("image", {"num_groups": 5}, 12, r"norm.num_groups=5: does not divide the 12 channels"),
        ("image", {"channels_per_group": 5}, 12, r"norm.channels_per_group=5: does not divide"),
        ("vector", {"num_groups": 32}, 16, r"norm.num_groups=32: makes groups of one feature"),
    ],
)
def test_every_group_norm_implementation_refuses_the_same_settings(impl, layout, options, channels, message):
    model = nn.Sequential(norm_builder("group", layout, options, impl=impl)(channels))
    with pytest.raises(ConfigError, match=message):
        check_model_norms(model)


def test_the_forward_check_leaves_the_model_and_the_rng_as_they_were():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), norm_builder("batch", "vector")(8), nn.Dropout(0.5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(6, 4) + 5
    rng = torch.random.get_rng_state()
    check_forward(model.eval(), x, "batch", "mlp", rebuild=None)
    assert torch.equal(torch.random.get_rng_state(), rng) and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("impl", ["torch", "reference"])
@pytest.mark.parametrize(
    "layout, key, offered",
    [
        ("image", "num_groups", [1, 2, 3, 4, 6, 12]),
        ("vector", "num_groups", [1, 2, 3, 4, 6]),  # 12 groups of one vector feature are refused
        ("image", "channels_per_group", [1, 2, 3, 4, 6, 12]),
        ("vector", "channels_per_group", [2, 3, 4, 6, 12]),  # and so is 1 channel per group
    ],
)
def test_every_divisor_a_group_error_offers_works(impl, layout, key, offered):
    def check(value):
        check_model_norms(nn.Sequential(norm_builder("group", layout, {key: value}, impl=impl)(12)))

    with pytest.raises(ConfigError) as err:
        check(5)
    listed = re.search(r"use a divisor of 12: ([\d, ]+?)(, or| \(layer)", str(err.value)).group(1)
    assert [int(v) for v in listed.split(", ")] == offered
    for value in offered:
        check(value)


def test_none_has_a_reference_implementation_so_reference_grids_can_include_it():
    assert isinstance(norm_builder("none", "image", impl="reference")(4), nn.Identity)


def test_variants_name_their_own_implementation():
    message = r"^norm.impl=torch: norm=batch_renorm has implementations: normbench$"
    with pytest.raises(ConfigError, match=message):
        norm_builder("batch_renorm", "image", impl="torch")
    assert norm_builder("batch_renorm", "image", impl="normbench") and norm_builder("batch_renorm", "image")
