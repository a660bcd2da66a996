"""A model or a generated dataset too large for the machine stops before anything large is
allocated: one line with the estimate (the machine's free memory is set by the test)."""

from __future__ import annotations

import pytest
from conftest import TINY

from normbench.errors import ConfigError
from normbench.models import build_model, get_model_spec
from normbench.norms import norm_builder
from normbench.run import memory
from normbench.run.runner import build

GIB = 2**30


@pytest.fixture
def small_machine(monkeypatch):
    """22 GiB free, as on the machine where model.width=100000000 was killed by the kernel."""
    monkeypatch.setattr(memory, "free_bytes", lambda device: 22 * GIB)


@pytest.mark.parametrize(
    "overrides, start",
    [
        (["model.width=100000000"], "model=mlp depth=1 width=100000000: the model (1.7e+09 parameters, "),
        (["model.depth=100000000"], "model=mlp depth=100000000 width=128: the model (1.7e+12 parameters, "),
        (["model=resnet", "model.depth=200000000"], "model=resnet depth=200000000 width=16: the model ("),
        (
            ["model=rnn", "model.num_layers=1000000"],
            "model=rnn hidden_size=128 num_layers=1000000: the model (",
        ),
    ],
)
def test_a_model_too_large_is_one_line_with_the_estimate(make_cfg, small_machine, overrides, start):
    with pytest.raises(ConfigError) as exc:
        build(make_cfg(*TINY, *overrides))
    line = str(exc.value)
    assert line.startswith(start) and "\n" not in line, line
    assert "GiB, more than the 22.0 GiB free (cpu); use a smaller model." in line


def test_the_default_models_fit_a_small_machine(make_cfg, monkeypatch):
    monkeypatch.setattr(memory, "free_bytes", lambda device: GIB)
    for model in ("mlp", "resnet", "rnn"):
        build(make_cfg(*TINY, f"model={model}"))


def test_a_data_size_too_large_is_one_line_before_it_is_drawn(make_cfg, small_machine):
    with pytest.raises(ConfigError) as exc:
        build(make_cfg(*TINY, "data.train_size=1000000000"))
    assert str(exc.value) == (
        "data.train_size=1000000000: drawing 1,000,000,000 samples of 10 values needs about 149.0 GiB, "
        "more than the 22.0 GiB free (cpu); use a smaller size (null: the task's default)"
    )
    with pytest.raises(
        ConfigError, match=r"^data.test_size=10000000: drawing 10,000,000 samples of 768 values"
    ):
        build(make_cfg(*TINY, "data=glyphs", "data.test_size=10000000"))


@pytest.mark.parametrize(
    "name, shape, layout, options",
    [
        ("mlp", (3, 8, 8), "vector", {"depth": 3, "width": 40, "dropout": 0.1}),
        ("resnet", (3, 12, 12), "image", {"depth": 14, "width": 8}),
        ("rnn", (12, 5), "recurrent", {"cell": "gru", "num_layers": 2, "hidden_size": 16}),
    ],
)
def test_the_estimate_counts_the_parameters_the_model_has(name, shape, layout, options):
    # within 20% of the built model's parameters and buffers (norms vary: an upper bound)
    spec = get_model_spec(name)
    model = build_model(
        name,
        input_shape=shape,
        num_classes=4,
        norm_layer=norm_builder("batch", layout, steps=spec.norm_steps(shape)),
        **options,
    )
    real = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    assert 0.95 * real <= spec.footprint(shape, 4, **options).params <= 1.2 * real


@pytest.mark.slow
def test_on_the_command_line_a_model_no_machine_holds_is_exit_2_before_training(cli, tmp_path):
    result = cli(*TINY, "model.width=1000000000000")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: model=mlp depth=1 width=1000000000000: the model (1.7e+13 parameters, ")
    assert not list(tmp_path.rglob("metrics.csv"))
