"""The small-batch remedies (FRN + TLU, EvoNorm-B0/S0, RMSNorm) against their papers' equations,
computed here by hand in float64 with explicit loops over the statistics' axes, and the papers'
properties: the per-sample ones give a sample the same output at batch 1 and 32."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY

from normbench.errors import ConfigError
from normbench.norms import NORMS, check_layout, norm_builder
from normbench.norms.base import _PerDevice
from normbench.norms.fold import is_batchnorm_like
from normbench.norms.remedies import EvoNormB0
from normbench.run.runner import build

C = 4


def _x(n: int = 3, shape: tuple[int, ...] = (C, 2, 3)) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(n, *shape, dtype=torch.float64) * 2 + 0.5


def _params(module: torch.nn.Module) -> None:
    """Parameters away from their identity-like init, so that each one shows in the output."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand_like(p) - 0.3)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _var(values: list[float]) -> float:
    m = _mean(values)
    return _mean([(v - m) ** 2 for v in values])


def _pixels(x: torch.Tensor, n: int, c: int) -> list[float]:
    return x[n, c].flatten().tolist()


@pytest.mark.parametrize("learned_eps", [False, True])
def test_frn_tlu_is_the_papers_equation(learned_eps: bool) -> None:
    x = _x()
    frn = norm_builder("frn", "image", {"learned_eps": learned_eps})(C).double()
    _params(frn)
    eps = 1e-6 + (abs(frn.eps_learned.item()) if learned_eps else 0.0)
    expected = torch.empty_like(x)
    for n in range(x.shape[0]):
        for c in range(C):
            nu2 = _mean([v * v for v in _pixels(x, n, c)])
            y = x[n, c] / math.sqrt(nu2 + eps) * frn.weight[c].item() + frn.bias[c].item()
            expected[n, c] = y.clamp(min=frn.tau[c].item())
    torch.testing.assert_close(frn(x), expected, rtol=1e-12, atol=1e-12)
    assert (frn(x) == frn.tau.view(1, C, 1, 1).expand_as(x)).any()  # TLU clips somewhere here


def test_frn_without_tlu_has_no_threshold() -> None:
    frn = norm_builder("frn", "image", {"tlu": False})(C)
    assert frn.tau is None and "tau" not in dict(frn.named_parameters())


def test_evonorm_b0_is_the_papers_equation_in_training_and_eval() -> None:
    x = _x(n=4)
    b0 = norm_builder("evonorm_b0", "image")(C).double()
    _params(b0)
    eps, momentum = 1e-5, 0.1
    count = x.shape[0] * 6
    for training in (True, False):
        expected = torch.empty_like(x)
        for c in range(C):
            channel = [v for n in range(x.shape[0]) for v in _pixels(x, n, c)]
            running = (1 - momentum) * 1.0 + momentum * _var(channel) * count / (count - 1)
            var_b = _var(channel) if training else running
            for n in range(x.shape[0]):
                right = b0.v[c].item() * x[n, c] + math.sqrt(_var(_pixels(x, n, c)) + eps)
                den = right.clamp(min=math.sqrt(var_b + eps))
                expected[n, c] = x[n, c] / den * b0.weight[c].item() + b0.bias[c].item()
        # eval runs after one training step: the running variance then holds one momentum update
        torch.testing.assert_close(b0.train(training)(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout, shape, groups", [("image", (C, 2, 3), 2), ("vector", (C,), 2)])
def test_evonorm_s0_is_the_papers_equation(layout: str, shape: tuple[int, ...], groups: int) -> None:
    x = _x(shape=shape)
    s0 = norm_builder("evonorm_s0", layout, {"num_groups": groups})(C).double()
    _params(s0)
    per = C // groups
    expected = torch.empty_like(x)
    for n in range(x.shape[0]):
        for c in range(C):
            group = range(c // per * per, c // per * per + per)
            var = _var([v for g in group for v in x[n, g].flatten().tolist()])
            num = x[n, c] * torch.sigmoid(s0.v[c].item() * x[n, c])
            expected[n, c] = num / math.sqrt(var + 1e-5) * s0.weight[c].item() + s0.bias[c].item()
    torch.testing.assert_close(s0(x), expected, rtol=1e-12, atol=1e-12)


def test_rms_norm_is_the_papers_equation_with_torchs_module() -> None:
    x = _x(shape=(C,))
    rms = norm_builder("rms", "vector")(C).double()
    _params(rms)
    assert isinstance(rms, torch.nn.RMSNorm)
    expected = torch.empty_like(x)
    for n in range(x.shape[0]):
        ms = _mean([v * v for v in x[n].tolist()])
        for c in range(C):
            expected[n, c] = x[n, c] / math.sqrt(ms + 1e-5) * rms.weight[c].item()
    torch.testing.assert_close(rms(x), expected, rtol=1e-12, atol=1e-12)


PER_SAMPLE = [("frn", "image"), ("evonorm_s0", "image"), ("evonorm_s0", "vector"), ("rms", "vector")]


@pytest.mark.parametrize("name, layout", PER_SAMPLE)
def test_per_sample_remedies_give_a_sample_the_same_output_at_batch_1_and_32(name: str, layout: str) -> None:
    x = _x(n=32, shape=(8, 3, 3) if layout == "image" else (8,))
    norm = norm_builder(name, layout, {"num_groups": 4} if name == "evonorm_s0" else {})(8).double().train()
    _params(norm)
    whole = norm(x)
    for i in (0, 17, 31):
        torch.testing.assert_close(norm(x[i : i + 1]), whole[i : i + 1], rtol=1e-13, atol=1e-13)
    assert not NORMS[name].batch_statistics


def test_evonorm_b0_depends_on_the_batch_and_declares_it() -> None:
    x = _x(n=32, shape=(C, 3, 3))
    b0 = norm_builder("evonorm_b0", "image")(C).double().train()
    assert NORMS["evonorm_b0"].batch_statistics
    assert not torch.allclose(b0(x[:1].repeat(2, 1, 1, 1))[:1], b0(x)[:1])


def test_evonorm_b0_is_not_folded_as_batch_norm() -> None:
    assert not is_batchnorm_like(norm_builder("evonorm_b0", "image")(C))
    assert is_batchnorm_like(norm_builder("batch", "image")(C))


@pytest.mark.parametrize(
    "name, layout, words",
    [
        ("frn", "vector", "FRN normalises each channel"),
        ("frn", "recurrent", "sign function"),
        ("evonorm_b0", "vector", "EvoNorm-B0 divides"),
        ("rms", "image", "RMSNorm normalises a feature vector"),
    ],
)
def test_each_remedy_refuses_the_layouts_it_lacks_in_one_line(name: str, layout: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_layout(name, layout, "mlp")
    line = str(err.value)
    assert words in line and "\n" not in line and "use one of" in line


def test_evonorm_b0_gets_the_batch_statistics_probes_and_devices_by_its_property(make_cfg) -> None:
    def built(norm: str):
        return build(make_cfg("model=resnet", f"norm={norm}", *TINY, "devices=2", "batch=4"))

    b0 = built("evonorm_b0")
    probes = {type(p).__name__ for p in b0.probes}
    assert {"BatchStatsEval", "BNDrift", "PreciseBN"} <= probes
    norms = [m for m in b0.trainer.model.modules() if isinstance(m, EvoNormB0)]
    assert norms and all(isinstance(m, _PerDevice) and m.device_batch == 4 for m in norms)
    frn = built("frn")
    assert not {"BatchStatsEval", "BNDrift", "PreciseBN"} & {type(p).__name__ for p in frn.probes}
    assert not any(isinstance(m, _PerDevice) for m in frn.trainer.model.modules())
