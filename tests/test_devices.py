"""Simulated data-parallel devices (``devices``): batch-statistics norms normalise per device."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TINY
from torch import nn

from normbench.analysis.load import load
from normbench.errors import ConfigError
from normbench.norms import NORMS, norm_builder
from normbench.norms.base import per_device, per_shard
from normbench.probes import Point
from normbench.run.fused.plan import why_not
from normbench.run.identity import config_identity, resolved_config
from normbench.run.runner import build, run

SHAPES = {"vector": (12, 5), "image": (12, 5, 3, 3)}
TOL = 1e-10
# options that let each batch-statistics norm train on per-device batches of 3 (ghost batches
# live within a device, so their size divides the per-device batch)
FITS = {"ghost_batch": {"ghost_size": 3}, "batch_renorm": {"warmup_steps": 0, "r_max": 1.5, "d_max": 0.5}}
BATCH_STATISTICS = sorted(n for n, s in NORMS.items() if s.batch_statistics)
PER_SAMPLE = sorted(n for n, s in NORMS.items() if not s.batch_statistics and "image" in s.layouts)


def _forward_backward(module: nn.Module, x: torch.Tensor, dy: torch.Tensor) -> list[torch.Tensor]:
    """Output, input gradient and parameter gradients of one training-mode pass."""
    x = x.clone().requires_grad_()
    y = module.train()(x)
    (y * dy).sum().backward()
    return [y.detach(), x.grad, *(p.grad for p in module.parameters())]


def _randomize(module: nn.Module) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        for t in [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]:
            t.copy_(torch.rand_like(t) + 0.5)


@pytest.mark.parametrize("layout", ["vector", "image"])
@pytest.mark.parametrize("name, impl", [*((n, None) for n in BATCH_STATISTICS), ("batch", "reference")])
def test_devices_are_separate_norm_passes_over_the_shards(name: str, impl: str | None, layout: str) -> None:
    if layout not in NORMS[name].layouts:
        pytest.skip(f"{name} has no {layout} layout")
    options = FITS.get(name, {})
    plain = norm_builder(name, layout, options, impl=impl)(5).double()
    _randomize(plain)
    devices = norm_builder(name, layout, options, impl=impl, device_batch=3)(5).double()
    devices.load_state_dict(plain.state_dict())
    x = torch.randn(SHAPES[layout], dtype=torch.float64) * 2 + 1
    dy = torch.randn(SHAPES[layout], dtype=torch.float64)
    got = _forward_backward(devices, x, dy)
    # four replicas of the norm, each from the same state on its own 3 samples
    replicas = [copy.deepcopy(plain) for _ in range(4)]
    each = [_forward_backward(r, xs, ds) for r, xs, ds in zip(replicas, x.chunk(4), dy.chunk(4))]
    for i in (0, 1):  # outputs and input gradients: the shards' side by side
        torch.testing.assert_close(got[i], torch.cat([e[i] for e in each]), rtol=TOL, atol=TOL)
    for i in range(2, len(got)):  # parameter gradients: summed over the devices (all-reduce)
        torch.testing.assert_close(got[i], sum(e[i] for e in each), rtol=TOL, atol=TOL)
    for key in ("running_mean", "running_var"):  # the replicas' buffers averaged
        expected = torch.stack([getattr(r, key) for r in replicas]).mean(0)
        torch.testing.assert_close(getattr(devices, key), expected, rtol=TOL, atol=TOL)
    assert int(devices.num_batches_tracked) == int(plain.num_batches_tracked) + 1  # one step
    assert list(devices.state_dict()) == list(plain.state_dict())  # checkpoints keep their keys
    # eval: the running statistics, as the plain norm with the same buffers
    plain.load_state_dict(devices.state_dict())
    torch.testing.assert_close(devices.eval()(x), plain.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", BATCH_STATISTICS)
def test_a_per_device_batch_is_normalised_as_one_batch(name: str) -> None:
    """Probes that pass one per-device batch (precise BN, drift) see what training's BN sees."""
    options = FITS.get(name, {})
    plain = norm_builder(name, "image", options)(5)
    devices = norm_builder(name, "image", options, device_batch=6)(5)
    x = torch.randn(6, 5, 3, 3)
    dy = torch.randn(6, 5, 3, 3)
    for a, b in zip(_forward_backward(devices, x, dy), _forward_backward(plain, x, dy)):
        assert torch.equal(a, b)
    for a, b in zip(devices.buffers(), plain.buffers()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", PER_SAMPLE)
def test_per_sample_norms_are_unaffected(name: str) -> None:
    plain = norm_builder(name, "image", {"num_groups": 5} if name == "group" else {})(5)
    devices = norm_builder(name, "image", {"num_groups": 5} if name == "group" else {}, device_batch=3)(5)
    assert type(devices) is type(plain)
    devices.load_state_dict(plain.state_dict())
    x, dy = torch.randn(12, 5, 3, 3), torch.randn(12, 5, 3, 3)
    for a, b in zip(_forward_backward(devices, x, dy), _forward_backward(plain, x, dy)):
        assert torch.equal(a, b)


def test_per_device_norms_keep_what_models_read() -> None:
    """ResNet zeroes ``norm2.weight``, folding and diagnostics test isinstance: the per-device
    norm is the same module with a per-device forward."""
    bn = norm_builder("batch", "image", {}, device_batch=2)(4)
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(bn.weight, nn.Parameter)
    assert "device_batch=2" in repr(bn)
    assert isinstance(copy.deepcopy(bn), type(bn))


def test_a_batch_the_devices_do_not_divide_is_refused() -> None:
    bn = norm_builder("batch", "vector", {}, device_batch=4)(3)
    with pytest.raises(
        ConfigError, match=r"batch=4: \(the per-device batch\) does not divide this batch of 10"
    ):
        bn(torch.randn(10, 3))
    bn.eval()(torch.randn(10, 3))  # eval: running statistics, any batch
    with pytest.raises(ValueError, match="3 shards do not divide a batch of 10"):
        per_shard(bn, bn, torch.randn(10, 3), 3)


# ---- through the runner ---------------------------------------------------------------------


def _train_epoch(built) -> list[torch.Tensor]:
    """The losses, parameters and buffers after one epoch (TINY: 4 steps of 8 samples)."""
    losses = built.trainer.train_epoch()
    return [losses, *built.trainer.model.state_dict().values()]


@pytest.mark.parametrize(
    "model", ["mlp", pytest.param("resnet", marks=pytest.mark.slow)]
)  # 1.6 s: the suite's
def test_one_device_is_bit_identical_to_the_plain_batch(make_cfg, model: str) -> None:
    """devices=1 builds the norms without the per-device forward; a per-device batch as large as
    the whole batch is the same computation through it: both train bit-identically."""
    cfg = make_cfg(f"model={model}", "norm=batch", *TINY, "devices=1")
    plain = build(cfg)
    assert not any(hasattr(m, "device_batch") for m in plain.trainer.model.modules())
    through = build(cfg)
    for m in through.trainer.model.modules():  # what devices=k builds, with k=1
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            per_device(m, cfg.batch)
    for a, b in zip(_train_epoch(plain), _train_epoch(through)):
        assert torch.equal(a, b)


def test_devices_1_keeps_the_identity_of_runs_from_before_the_key(make_cfg) -> None:
    cfg = make_cfg("model=mlp", *TINY, "devices=1")
    old = resolved_config(cfg)
    del old["devices"]
    assert config_identity(cfg) == config_identity(old)
    assert config_identity(make_cfg("model=mlp", *TINY, "devices=2")) != config_identity(cfg)


def test_the_sgd_batch_is_batch_times_devices(make_cfg) -> None:
    built = build(make_cfg("model=resnet", "norm=batch", *TINY, "batch=2", "devices=4", "optim.lr=0.1"))
    t = built.trainer
    assert t.batch == 8 and t.steps_per_epoch == 32 // 8
    assert t.optimizer.param_groups[0]["initial_lr"] == pytest.approx(0.1 * 8 / 32)  # linear rule: total
    bns = [m for m in t.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.device_batch == 2 for m in bns)


def test_devices_trains_an_rnn_with_per_step_norms(make_cfg) -> None:
    built = build(make_cfg("model=rnn", "norm=batch", *TINY, "batch=2", "devices=4"))
    assert torch.isfinite(_train_epoch(built)[0]).all()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["batch=8", "devices=5"],
            "devices=5: makes an SGD batch of batch x devices = 8 x 5 = 40 samples, more than the "
            "training set (32); use devices<=4 or a smaller per-device batch",
        ),
        (["batch=1", "devices=8", "norm=batch"], "batch=1: norm=batch normalises with statistics"),
        (
            ["batch=4", "devices=2", "norm=ghost_batch", "norm.ghost_size=8"],
            "norm.ghost_size=8: does not divide batch=4",
        ),
        (["devices=0"], "devices=0:"),
    ],
)
def test_bad_device_shapes_are_one_line_before_training(cli, args: list[str], line: str) -> None:
    result = cli("model=mlp", *TINY, *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert line in result.stderr and "Traceback" not in result.stderr


def test_the_bn_noise_probe_measures_the_per_device_batch(make_cfg) -> None:
    assert not any(type(p).__name__ == "BNNoise" for p in build(make_cfg("norm=batch", *TINY)).probes)
    built = build(make_cfg("model=resnet", "norm=batch", *TINY, "batch=2", "devices=4", "bn_noise=true"))
    probe = next(p for p in built.probes if type(p).__name__ == "BNNoise")
    assert probe.batch == 2  # the batch BN trained its statistics on, not the SGD batch
    model = built.trainer.model
    before = [t.clone() for t in model.state_dict().values()]
    rows = probe.at_end(Point(built.trainer, 1, 4, {}))
    layers = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert {r[3] for r in rows} == {f"{layer}/{kind}" for layer in layers for kind in ("mean", "var")}
    assert all(r[2] == "bn_noise" and r[4] > 0 for r in rows)
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values()))


@pytest.mark.slow
def test_summary_and_loaded_runs_say_which_batch_is_which(make_cfg, tmp_path) -> None:
    for batch, devices in ((4, 2), (8, 1)):
        cfg = make_cfg("model=mlp", "norm=batch", *TINY, f"batch={batch}", f"devices={devices}")
        summary = run(cfg, tmp_path / f"b{batch}d{devices}")
        assert (summary["per_device_batch"], summary["sgd_batch"]) == (batch, 8)
        assert summary["steps"] == 32 // 8
    runs = load(tmp_path).runs.set_index("batch")
    assert runs.loc[4, "sgd_batch"] == runs.loc[8, "sgd_batch"] == 8
    assert runs.loc[4, "devices"] == 2


def test_fused_sweeps_keep_per_device_runs_unfused(make_cfg) -> None:
    assert why_not(make_cfg("model=mlp", *TINY, "devices=2"), seeds=5) == (
        "devices=2: per-device batch statistics are not stacked"
    )
    assert why_not(make_cfg("model=mlp", *TINY, "devices=1"), seeds=5) is None


def test_a_step_on_k_devices_is_k_model_replicas_with_averaged_gradients(make_cfg) -> None:
    """Data-parallel training without synchronised statistics: each replica runs the whole model
    on its shard; the step's gradient is the replicas' mean (equal shards), the running
    statistics the replicas' mean."""
    overrides = ("model=resnet", "model.width=4", "norm=batch", *TINY, "batch=2")
    devices = build(make_cfg(*overrides, "devices=4")).trainer.model.double()
    single = build(make_cfg(*overrides, "devices=1")).trainer.model.double()  # the same init
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (8,))
    nn.functional.cross_entropy(devices.train()(x), y).backward()
    replicas = [copy.deepcopy(single).train() for _ in range(4)]
    for r, xs, ys in zip(replicas, x.chunk(4), y.chunk(4)):
        nn.functional.cross_entropy(r(xs), ys).backward()
    for name, p in devices.named_parameters():
        expected = torch.stack([dict(r.named_parameters())[name].grad for r in replicas]).mean(0)
        torch.testing.assert_close(p.grad, expected, rtol=1e-9, atol=1e-12)
    for name, b in devices.named_buffers():
        if b.is_floating_point():
            expected = torch.stack([dict(r.named_buffers())[name] for r in replicas]).mean(0)
            torch.testing.assert_close(b, expected, rtol=1e-9, atol=1e-12)
