"""The three model families against every norm the registry lists for their layout."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from normbench.errors import ConfigError
from normbench.models import MODELS, build_model
from normbench.models.mlp import MLP
from normbench.models.resnet import BasicBlock
from normbench.models.rnn import RNN
from normbench.norms import NORMS, StepNorm, check_model_norms, norm_builder

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
N = 4  # samples per test batch
# options that let a norm run at batch N (defaults that need a larger batch are checked elsewhere)
FITS_TEST_BATCH = {"ghost_batch": {"ghost_size": 2}}
# one tiny sample shape per modality: tabular (D,), image (C, H, W), sequence (T, F)
SHAPES = {"tabular": (10,), "image": (3, 8, 8), "sequence": (5, 3)}
# Small enough that the whole file runs in seconds. Vector widths are multiples of 64 so that
# norm=group's default 32 groups hold 2+ features each: a group of one feature normalises a
# single number to 0 and the layer passes no signal (see test_group_of_one_feature_is_dead).
TINY = {
    "mlp": {"depth": 2, "width": 64},
    "resnet": {"depth": 8, "width": 4},
    "rnn": {"hidden_size": 64},
}
H = TINY["rnn"]["hidden_size"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tensors here are tiny: extra threads only spin, and cost twice the CPU on a shared machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _base(layout: str) -> str:
    return "vector" if layout == "recurrent" else layout


def _builder(norm: str, layout: str, input_shape: tuple[int, ...]):
    steps = None
    if layout == "recurrent":  # sequences (T, F) have T steps; images (C, H, W) H rows
        steps = input_shape[0] if len(input_shape) == 2 else input_shape[1]
    return norm_builder(norm, layout, FITS_TEST_BATCH.get(norm, {}), steps=steps)


def _make(
    model: str, norm: str, input_shape: tuple[int, ...] | None = None, num_classes: int = 3, **keys
) -> nn.Module:
    """``model`` at its TINY size (``keys`` override), norms from the registry's defaults."""
    spec = MODELS[model]
    shape = input_shape or SHAPES[spec.native]
    builder = _builder(norm, spec.layout, shape)
    return build_model(
        model, input_shape=shape, num_classes=num_classes, norm_layer=builder, **{**TINY[model], **keys}
    )


PAIRS = [
    (model, norm)
    for model, spec in MODELS.items()
    for norm, nspec in NORMS.items()
    if _base(spec.layout) in nspec.layouts
]


def test_pairs_follow_the_registries():
    assert set(MODELS) == {"mlp", "resnet", "rnn"}
    assert ("resnet", "instance") in PAIRS and ("mlp", "instance") not in PAIRS


def _no_signal(model: nn.Module, norm: str) -> set[str]:
    """Parameters whose gradient is zero by construction, not by a bug:
    - the t=0 copy of a recurrent per-step norm_h: its input W_h h_0 is 0 for every sample,
      so its scale multiplies zeros;
    - a Linear bias right before a batch-statistics norm, which subtracts it again with the
      batch mean (why convnets drop that bias);
    - TLU's threshold tau (FRN) where a ReLU follows the norm (the stem's, a block's norm1):
      max(y, tau) at its initial tau = 0 goes through relu'(0) = 0. TLU was meant to replace
      that ReLU; the models keep it, so there tau learns nothing (the norms before the residual
      sum still train theirs)."""
    zero = {
        f"{name}.norms.0.weight"
        for name, m in model.named_modules()
        if name.endswith("norm_h") and isinstance(m, StepNorm) and len(m.norms) > 1
    }
    for name, m in model.named_modules():
        if getattr(m, "tau", None) is not None and name.endswith(("stem.1", "norm1")):
            zero.add(f"{name}.tau")
    if NORMS[norm].batch_statistics:
        zero |= {
            f"{name}.0.bias"
            for name, m in model.named_modules()
            if isinstance(m, nn.Sequential) and len(m) > 1 and isinstance(m[0], nn.Linear)
        }
    return zero


def _assert_trains(model: nn.Module, norm: str, x: torch.Tensor, num_classes: int = 3) -> None:
    out = model(x)
    assert out.shape == (x.shape[0], num_classes)
    F.cross_entropy(out, torch.randint(num_classes, (x.shape[0],))).backward()
    exempt = _no_signal(model, norm)
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            # rounding noise through a dead layer is ~1e-9; real gradients here are > 1e-5
            assert name in exempt or p.grad.abs().max() > 1e-6, name


@pytest.mark.parametrize("model,norm", PAIRS)
def test_forward_backward_every_norm(model, norm):
    net = _make(model, norm)
    _assert_trains(net, norm, torch.randn(N, *SHAPES[MODELS[model].native]))


MODALITY_PAIRS = [(m, mod) for m, s in MODELS.items() for mod in s.modalities]


@pytest.mark.parametrize("model,modality", MODALITY_PAIRS)
def test_reads_every_declared_modality(model, modality):
    net = _make(model, "layer", input_shape=SHAPES[modality])
    assert net(torch.randn(N, *SHAPES[modality])).shape == (N, 3)


@pytest.mark.parametrize("model,norm", PAIRS)
def test_eval_is_deterministic_and_per_sample(model, norm):
    # float64: the matmuls round differently at batch 1 and N, and a norm that divides by the
    # spread of few values without centring them (EvoNorm-S0 on groups of 2 features) amplifies
    # that past float32's tolerance; batch dependence would still show at 1e-7
    net = _make(model, norm, **({"dropout": 0.5} if model == "mlp" else {})).double()
    x = torch.randn(N, *SHAPES[MODELS[model].native], dtype=torch.float64)
    net(x)  # one training pass moves the running statistics away from their init
    net.eval()
    with torch.no_grad():
        out = net(x)
        assert torch.equal(out, net(x))
        # in eval no norm looks at the other samples, whatever it does in training
        torch.testing.assert_close(net(x[:1]), out[:1])


# --- configuration files and errors ---------------------------------------------------------


@pytest.mark.parametrize("model", sorted(MODELS))
def test_yaml_lists_exactly_the_signature_defaults(model):
    conf = yaml.safe_load((CONF / f"{model}.yaml").read_text())
    assert conf.pop("name") == model
    conf.pop("defaults", None)  # a model may choose its optimizer (rnn: adam), not a constructor key
    params = inspect.signature(MODELS[model].cls.__init__).parameters
    defaults = {
        k: p.default
        for k, p in params.items()
        if k not in ("self", "input_shape", "num_classes", "norm_layer")
    }
    assert conf == defaults
    # and the public builder accepts the file as it is
    spec = MODELS[model]
    shape = SHAPES[spec.native]
    builder = _builder("batch", spec.layout, shape)
    net = build_model(model, input_shape=shape, num_classes=2, norm_layer=builder, **conf)
    assert net(torch.randn(2, *shape)).shape == (2, 2)


@pytest.mark.parametrize(
    "model,key,value",
    [
        ("mlp", "depth", 0),
        ("mlp", "width", 0),
        ("mlp", "dropout", 1.0),
        ("mlp", "dropout", -0.1),
        ("mlp", "init", "xavier"),
        ("resnet", "depth", 9),
        ("resnet", "depth", 2),
        ("resnet", "width", 0),
        ("rnn", "cell", "vanilla"),
        ("rnn", "hidden_size", 0),
        ("rnn", "num_layers", 0),
    ],
)
def test_bad_sizes_name_the_key(model, key, value):
    with pytest.raises(ConfigError) as err:
        _make(model, "none", **{key: value})
    assert err.value.key == f"model.{key}"
    assert str(err.value).startswith(f"model.{key}={value}: ")
    assert "\n" not in str(err.value)


def test_resnet_depth_error_says_what_works():
    with pytest.raises(ConfigError, match=r"model\.depth=9: .*6n\+2.*8, 14, 20, 32, 44, 56"):
        _make("resnet", "batch", depth=9)


# --- MLP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", [n for n, s in NORMS.items() if "vector" in s.layouts])
def test_mlp_10_50_2_parameter_count(norm):
    builder = norm_builder(norm, "vector")
    net = build_model("mlp", input_shape=(10,), num_classes=2, norm_layer=builder, depth=1, width=50)
    norm_params = sum(p.numel() for p in builder(50).parameters())
    assert sum(p.numel() for p in net.parameters()) == (10 * 50 + 50) + norm_params + (50 * 2 + 2)


def test_mlp_blocks_are_one_entry_per_hidden_layer():
    net = _make("mlp", "batch", depth=3, dropout=0.2)
    assert len(net.blocks) == 3
    assert all(isinstance(b[-1], nn.Dropout) for b in net.blocks)
    assert not any(isinstance(m, nn.Dropout) for m in _make("mlp", "batch", depth=3).modules())
    seen = []
    for block in net.blocks:
        block.register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    net(torch.randn(N, 10))
    assert seen == [(N, 64)] * 3


@pytest.mark.parametrize(
    "init,std", [("normal", lambda fan_in: 1.0), ("kaiming", lambda fan_in: math.sqrt(2 / fan_in))]
)
def test_mlp_init(init, std):
    net = _make("mlp", "none", input_shape=(64,), depth=2, width=64, init=init)
    for linear in [net.blocks[1][0], net.blocks[0][0]]:  # 64x64 weights: std to about 2%
        assert linear.weight.std().item() == pytest.approx(std(64), rel=0.1)
        assert torch.all(linear.bias == 0)
    default = _make("mlp", "none", input_shape=(64,), depth=2, width=64)
    assert default.blocks[1][0].weight.std() < 0.2  # torch's uniform(+-1/sqrt(64)): std 0.07


# --- ResNet ---------------------------------------------------------------------------------


def test_resnet_grows_with_depth_and_has_6n_plus_2_layers():
    counts = []
    for depth in (8, 14, 20):
        net = _make("resnet", "batch", depth=depth)
        weighted = [
            m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.shape[-1] != 1
        ]  # 1x1 shortcut convs are not counted in depth
        assert len(weighted) == depth
        assert sum(isinstance(m, BasicBlock) for m in net.modules()) == 3 * (depth - 2) // 6
        counts.append(sum(p.numel() for p in net.parameters()))
    assert counts[0] < counts[1] < counts[2]


def test_resnet_stage_shapes():
    net = _make("resnet", "batch", input_shape=(3, 16, 16), width=4)
    out = net.stages(net.stem(torch.randn(2, 3, 16, 16)))
    assert out.shape == (2, 16, 4, 4)  # 4*width channels at 1/4 of the resolution


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_zero_init_residual(norm):
    net = _make("resnet", norm, depth=14, zero_init_residual=True)
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 6
    for block in blocks:
        assert torch.all(block.norm2.weight == 0)
        assert torch.all(block.norm1.weight == 1)
    # every block starts as its shortcut; the zeroed scales get gradient and move
    x = torch.randn(N, 3, 8, 8)
    F.cross_entropy(net(x), torch.randint(3, (N,))).backward()
    for block in blocks:
        assert block.norm2.weight.grad.abs().sum() > 0
    assert net.stem[0].weight.grad.abs().sum() > 0
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert all(block.norm2.weight.abs().sum() > 0 for block in blocks)


def test_zero_init_residual_skips_norms_without_scale():
    net = _make("resnet", "none", zero_init_residual=True)
    _assert_trains(net, "none", torch.randn(N, 3, 8, 8))


def test_resnet_group_norm_caps_groups_to_channels():
    net = _make("resnet", "group", width=16)  # norm.num_groups defaults to 32
    groups = {(m.num_channels, m.num_groups) for m in net.modules() if isinstance(m, nn.GroupNorm)}
    assert groups == {(16, 16), (32, 32), (64, 32)}


# --- RNN ------------------------------------------------------------------------------------


def test_rnn_reads_images_as_rows():
    image = _make("rnn", "layer", input_shape=(2, 6, 5))
    seq = _make("rnn", "layer", input_shape=(6, 10))
    seq.load_state_dict(image.state_dict())
    x = torch.randn(N, 2, 6, 5)
    # row h of every channel, side by side: step h sees (c0 row h, c1 row h)
    rows = torch.stack([torch.cat([x[:, c, h] for c in range(2)], dim=-1) for h in range(6)], dim=1)
    torch.testing.assert_close(image(x), seq(rows))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("norm", [n for n, s in NORMS.items() if "vector" in s.layouts])
def test_rnn_per_step_copies_follow_batch_statistics(cell, norm):
    net = _make("rnn", norm, cell=cell, num_layers=2)
    steps = SHAPES["sequence"][0]
    step_norms = [m for m in net.modules() if isinstance(m, StepNorm)]
    per_layer = 3 if cell == "lstm" else 2  # norm_x, norm_h (, norm_c)
    assert len(step_norms) == 2 * per_layer
    expected = steps if NORMS[norm].batch_statistics else 1
    assert all(len(m.norms) == expected for m in step_norms)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_cells_and_two_layers_train(cell):
    net = _make("rnn", "batch", cell=cell, num_layers=2)
    assert len(net.layers) == 2 and net.layers[1].w_x.in_features == H
    _assert_trains(net, "batch", torch.randn(N, *SHAPES["sequence"]))


@pytest.mark.parametrize("cell,ref_cls", [("lstm", nn.LSTM), ("gru", nn.GRU)])
def test_rnn_without_norm_is_torchs_cell(cell, ref_cls):
    net = _make("rnn", "none", cell=cell, num_layers=2)
    ref = ref_cls(3, H, num_layers=2, batch_first=True)
    with torch.no_grad():
        for i, layer in enumerate(net.layers):
            getattr(ref, f"weight_ih_l{i}").copy_(layer.w_x.weight)
            getattr(ref, f"weight_hh_l{i}").copy_(layer.w_h.weight)
            if cell == "lstm":  # one bias b = b_ih + b_hh
                getattr(ref, f"bias_ih_l{i}").copy_(layer.bias)
                getattr(ref, f"bias_hh_l{i}").zero_()
            else:
                getattr(ref, f"bias_ih_l{i}").copy_(layer.bias_x)
                getattr(ref, f"bias_hh_l{i}").copy_(layer.bias_h)
    x = torch.randn(N, *SHAPES["sequence"])
    out, _ = ref(x)
    torch.testing.assert_close(net.head(out[:, -1]), net(x))


def test_lstm_forget_bias_starts_at_one():
    layer = _make("rnn", "layer").layers[0]
    h = layer.hidden_size
    assert torch.all(layer.bias[h : 2 * h] == 1) and torch.all(layer.bias[:h] == 0)
    assert torch.all(layer.bias[2 * h :] == 0)


def test_rnn_rejects_other_shapes():
    with pytest.raises(ConfigError, match="model=rnn"):
        RNN((10,), 2, norm_builder("none", "recurrent", steps=1))


def test_group_of_one_vector_feature_is_refused_naming_the_layer():
    # GroupNorm(C, C) on (N, C) vectors normalises single values: outputs 0, passes no gradient
    model = MLP((10,), 2, norm_builder("group", "vector", {"num_groups": 32}), width=16)
    with pytest.raises(
        ConfigError,
        match=r"norm.num_groups=32: makes groups of one feature on 16 "
        r"vector features.*num_groups<=8.*layer 'blocks.0.1'",
    ):
        check_model_norms(model)
    check_model_norms(MLP((10,), 2, norm_builder("group", "vector", {"num_groups": 8}), width=16))


def test_activation_stds_reproduce_article_2_signal_propagation():
    """100-layer, 256-wide bias-free MLP at batch 16 (source article 2): default init
    vanishes, N(0, 1) explodes to NaN, Kaiming stays near 0.6, BN is stable whatever the init."""
    from normbench.run.train import activation_stds

    def stds(init, norm):
        torch.manual_seed(0)
        net = MLP((256,), 10, norm_builder(norm, "vector"), depth=100, width=256, bias=False, init=init)
        return activation_stds(net, torch.randn(16, 256))

    default, normal, kaiming = stds("default", "none"), stds("normal", "none"), stds("kaiming", "none")
    assert len(default) == 100 and default[-1] < 1e-20
    assert not math.isfinite(normal[-1]) and normal[1] > 10 * normal[0]
    # Kaiming random-walks but neither vanishes nor explodes over 100 layers
    assert all(0.05 < s < 5 for s in kaiming) and 0.3 < sorted(kaiming)[50] < 1.0
    for init in ("default", "normal", "kaiming"):
        assert all(0.4 < s < 0.8 for s in stds(init, "batch")), init


# ---- univariate sequences ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "norm, options, features, skipped",
    [
        ("layer", {}, 1, True),
        ("group", {"num_groups": 8}, 1, True),
        ("batch", {}, 1, False),  # per feature over the batch: the magnitude survives
        ("none", {}, 1, False),
        ("layer", {}, 2, False),
    ],
)
def test_a_norm_that_would_erase_one_input_feature_is_left_off_the_input_projection(
    norm, options, features, skipped
):
    rnn = RNN((6, features), 3, norm_builder(norm, "recurrent", options, steps=6), hidden_size=16)
    layer = rnn.layers[0]
    assert (layer.norm_x is None) == skipped and isinstance(layer.norm_h, StepNorm)
    rnn(torch.randn(4, 6, features)).sum().backward()


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["layer", "group8"])
def test_an_rnn_with_a_per_sample_norm_learns_a_univariate_task(make_cfg, tmp_path, norm):
    # user_data.univariate: 10 levels of one feature; before, layer norm on W_x x_t kept only
    # the sign and reached 37% (norm=none: 90%)
    from conftest import TINY

    from normbench.run.runner import run

    cfg = make_cfg(
        "data=custom",
        "data._target_=user_data.univariate",
        "model=rnn",
        "model.hidden_size=32",
        f"norm={norm}",
        "optim=adam",
        "optim.lr=0.01",
        *TINY,
        "data.train_size=null",
        "data.test_size=null",
        "epochs=4",
        "batch=32",
    )
    summary = run(cfg, tmp_path)
    assert summary["status"] == "done" and summary["final"]["test/accuracy"] > 0.7, summary["final"]
