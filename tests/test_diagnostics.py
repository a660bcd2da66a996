"""Precise BN and running-statistics drift: exact statistics, no side effects, the gap closes."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from normbench.norms import batch_noise, precise_bn_, reference, running_stats_drift


def _mlp(bn1d: type[nn.Module] = nn.BatchNorm1d, momentum: float = 0.1) -> nn.Module:
    return nn.Sequential(
        nn.Linear(5, 6),
        bn1d(6, momentum=momentum),
        nn.ReLU(),
        nn.Linear(6, 4),
        bn1d(4, momentum=momentum),
        nn.ReLU(),
        nn.Linear(4, 3),
    )


def _data(n: int = 100) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(n, 5) * 2 + 3


@pytest.mark.parametrize("bn1d", [nn.BatchNorm1d, reference.BatchNorm1d], ids=["torch", "reference"])
@pytest.mark.parametrize("batch", [20, 30], ids=["equal-batches", "smaller-last-batch"])
def test_precise_bn_gives_the_exact_statistics(bn1d: type[nn.Module], batch: int) -> None:
    model = _mlp(bn1d)
    x = _data()
    batches = list(x.split(batch))
    with torch.no_grad():
        first = model[0](x)  # the first BN's input is known outright
        # the second BN's input, as in training: the first BN normalises each batch by itself
        second = torch.cat(
            [
                model[3](
                    model[2](
                        nn.functional.batch_norm(
                            model[0](b),
                            None,
                            None,
                            model[1].weight,
                            model[1].bias,
                            True,
                            0.0,
                            model[1].eps,
                        )
                    )
                )
                for b in batches
            ]
        )
    model.train()
    assert precise_bn_(model, batches) == 100
    for bn, inputs in ((model[1], first), (model[4], second)):
        torch.testing.assert_close(bn.running_mean, inputs.mean(0), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bn.running_var, inputs.var(0), rtol=1e-5, atol=1e-5)
        assert int(bn.num_batches_tracked) == 0, "a diagnostic is not a training step"
    assert all(m.training for m in model.modules()), "modes restored"


def test_precise_bn_on_images_and_tuples() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    torch.manual_seed(0)
    x = torch.randn(12, 3, 6, 6) + 1
    batches = [(xb, torch.zeros(len(xb))) for xb in x.split(4)]  # (inputs, labels) pairs
    model.eval()
    assert precise_bn_(model, batches) == 12
    with torch.no_grad():
        inputs = model[0](x).transpose(0, 1).reshape(4, -1)  # (C, N * H * W)
    torch.testing.assert_close(model[1].running_mean, inputs.mean(1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model[1].running_var, inputs.var(1), rtol=1e-5, atol=1e-5)
    assert not any(m.training for m in model.modules())


def _gap(model: nn.Module, x: torch.Tensor) -> float:
    """Mean |eval-mode output - batch-statistics output| over x, state untouched."""
    probe = copy.deepcopy(model)
    with torch.no_grad():
        return (probe.eval()(x) - probe.train()(x)).abs().mean().item()


def test_precise_bn_closes_a_train_test_gap() -> None:
    """A few SGD steps at batch 2 with momentum 0.01 leave the running statistics near their
    initial (0, 1) while the features have mean 3, std 2: eval and batch-stats predictions
    disagree. Precise BN over the training data removes most of the disagreement."""
    model, x = _mlp(momentum=0.01), _data(64)
    y = (x.sum(1) > 15).long()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for xb, yb in zip(x.split(2)[:10], y.split(2)[:10]):
        loss = nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    before = _gap(model, x)
    precise_bn_(model, x.split(16))
    after = _gap(model, x)
    assert before > 0.1 and after < 0.1 * before, (before, after)


def test_precise_bn_draws_no_random_numbers_and_keeps_dropout_modes() -> None:
    model, batches = (
        nn.Sequential(nn.Linear(5, 6), nn.Dropout(0.5), nn.BatchNorm1d(6)),
        _data().split(10),
    )
    state = torch.random.get_rng_state()
    precise_bn_(model, batches)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model[1].training


def test_precise_bn_without_bn_does_nothing() -> None:
    assert precise_bn_(nn.Sequential(nn.Linear(5, 5), nn.LayerNorm(5)), [_data()]) == 0


def test_drift_of_fresh_statistics() -> None:
    """Running stats (0, 1), inputs with mean 3 and std 2: the mean is 3 running stds off and
    the variance 4 times larger, log 4 = 1.386."""
    bn = nn.BatchNorm1d(5)
    torch.manual_seed(0)
    x = torch.randn(10_000, 5) * 2 + 3
    drift = running_stats_drift(nn.Sequential(bn), x)
    assert set(drift) == {"0/mean", "0/var"}
    assert drift["0/mean"] == pytest.approx(3, abs=0.05)
    assert drift["0/var"] == pytest.approx(math.log(4), abs=0.05)


def test_drift_changes_nothing_and_vanishes_after_precise_bn() -> None:
    model, x = _mlp(), _data()
    model.train()
    model(x)
    model[4].eval()  # mixed modes are restored as they were
    before = copy.deepcopy(model.state_dict())
    drift = running_stats_drift(model, x)
    assert set(drift) == {"1/mean", "1/var", "4/mean", "4/var"} and drift["1/mean"] > 0.1
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert [m.training for m in model] == [True] * 4 + [False, True, True]
    precise_bn_(model, [x])
    after = running_stats_drift(model, x)
    assert max(after.values()) < 1e-6


def test_batch_noise_is_each_batch_against_the_pooled_population() -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    x = torch.randn(12, 3, 4, 4) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1) + 1
    batches = list(x.split(2))
    before = copy.deepcopy(bn.state_dict())
    noise = batch_noise(nn.Sequential(bn), batches)
    pooled = x.transpose(0, 1).reshape(3, -1).double()
    mean, var = pooled.mean(1), pooled.var(1) + bn.eps
    shifts, ratios = [], []
    for b in batches:
        values = b.transpose(0, 1).reshape(3, -1).double()
        shifts.append(((values.mean(1) - mean).abs() / var.sqrt()).mean())
        ratios.append(((values.var(1) + bn.eps) / var).log().abs().mean())
    assert noise["0/mean"] == pytest.approx(torch.stack(shifts).mean().item(), rel=1e-6)
    assert noise["0/var"] == pytest.approx(torch.stack(ratios).mean().item(), rel=1e-6)
    assert all(torch.equal(bn.state_dict()[k], v) for k, v in before.items())  # on a copy
