"""Learning rate: the linear scaling rule and the schedules with warm-up."""

import math

import pytest

from normbench.errors import ConfigError
from normbench.optim import base_lr, lr_factor_fn


def test_linear_scaling_rule_is_relative_to_batch_32():
    assert base_lr(0.1, 4, linear_scaling=True) == pytest.approx(0.0125)
    assert base_lr(0.1, 64, linear_scaling=True) == pytest.approx(0.2)
    assert base_lr(0.1, 4, linear_scaling=False) == 0.1


def test_warmup_then_constant():
    f = lr_factor_fn("constant", total_steps=100, steps_per_epoch=10, warmup_epochs=0.5)
    assert [f(s) for s in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])


def test_step_schedule_decays_at_fractions_of_training():
    f = lr_factor_fn("step", total_steps=100, steps_per_epoch=10, milestones=[0.5, 0.75], gamma=0.1)
    assert (f(0), f(49), f(50), f(74), f(75), f(99)) == pytest.approx((1, 1, 0.1, 0.1, 0.01, 0.01))


def test_cosine_goes_from_peak_to_floor():
    f = lr_factor_fn("cosine", total_steps=100, steps_per_epoch=10, min_lr_ratio=0.1)
    assert f(0) == pytest.approx(1.0)
    assert f(50) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(99) == pytest.approx(0.1, abs=1e-3)


def test_bad_schedule_keys():
    with pytest.raises(ConfigError, match=r"sched.milestones=\[1.5\]"):
        lr_factor_fn("step", 10, 5, milestones=[1.5])
    with pytest.raises(ConfigError, match=r"sched.warmup_epochs=-1"):
        lr_factor_fn("cosine", 10, 5, warmup_epochs=-1)
