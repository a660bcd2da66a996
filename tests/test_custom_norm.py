"""norm=custom and model=custom: a norm and a model from the user's own package, what the
harness learns about them, the label in reports, and one line for each bad target."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import TINY

from normbench.errors import ConfigError
from normbench.norms import check_batch, get_norm_spec, norm_builder
from normbench.norms.base import _PerDevice
from normbench.run.runner import build

PKG = "nb_user_norms"  # the user's package, written to a temporary folder on sys.path

NORMS_MODULE = '''
import torch
from torch import nn


class MyNorm(nn.Module):
    """docs/usage.md's example: per sample, divided by the mean absolute value to the alpha."""

    def __init__(self, num_features, alpha=1.0):
        super().__init__()
        self.alpha = alpha
        self.weight = nn.Parameter(torch.ones(num_features))

    def forward(self, x):
        scale = x.abs().flatten(1).mean(1).view(-1, *[1] * (x.dim() - 1))
        return x / (scale + 1e-5) ** self.alpha * self.weight.view(1, -1, *[1] * (x.dim() - 2))


class ImageOnly(nn.Module):
    layouts = ("image",)

    def __init__(self, num_features, layout):
        super().__init__()
        self.norm = nn.GroupNorm(1, num_features)

    def forward(self, x):
        return self.norm(x)


def batchish(num_features, layout):
    """A factory taking the layout; torch's BN: batch statistics and running buffers, undeclared."""
    return nn.BatchNorm2d(num_features) if layout == "image" else nn.BatchNorm1d(num_features)


class Shrinks(nn.Module):
    def __init__(self, num_features):
        super().__init__()

    def forward(self, x):
        return x[:, :1]


class Nan(nn.Module):
    def __init__(self, num_features):
        super().__init__()

    def forward(self, x):
        return x * float("nan")


def not_module(num_features):
    return 3


class NoFeatures(nn.Module):
    def __init__(self):
        super().__init__()
'''

MODELS_MODULE = """
from torch import nn


class MyNet(nn.Module):
    def __init__(self, input_shape, num_classes, norm_layer, width=8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False), norm_layer(width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
        )

    def forward(self, x):
        return self.body(x)


def no_norm_layer(input_shape, num_classes):
    return nn.Linear(1, 1)


def not_module(input_shape, num_classes, norm_layer):
    return "a model"


class OneOutput(MyNet):
    def __init__(self, input_shape, num_classes, norm_layer):
        super().__init__(input_shape, 1, norm_layer)
"""

# the user's own preset, so that a sweep can hold their norm beside the built-in ones
PRESET = f"""
defaults:
  - custom
  - _self_
_target_: {PKG}.norms.MyNorm
label: MyNorm
alpha: 0.5
"""


@pytest.fixture(autouse=True)
def user_pkg(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.getbasetemp() / "user_norms"
    if not root.exists():
        (root / PKG).mkdir(parents=True)
        (root / PKG / "__init__.py").write_text("")
        (root / PKG / "norms.py").write_text(textwrap.dedent(NORMS_MODULE))
        (root / PKG / "models.py").write_text(textwrap.dedent(MODELS_MODULE))
        (root / "conf" / "norm").mkdir(parents=True)
        (root / "conf" / "norm" / "mynorm.yaml").write_text(PRESET)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", str(root))  # the processes the slow tests start
    return root


def norm(target: str, **options) -> dict:
    return {"_target_": f"{PKG}.norms.{target}", **options}


def test_what_the_harness_learns_is_declared_or_measured() -> None:
    mine = get_norm_spec("custom", norm("MyNorm", alpha=0.5))
    assert mine.layouts == ("vector", "image") and not mine.batch_statistics
    assert "probed" in mine.note and "measured" in mine.note and "label MyNorm" in mine.note
    image_only = get_norm_spec("custom", norm("ImageOnly", label="mine"))
    assert (
        image_only.layouts == ("image",)
        and "(declared)" in image_only.note
        and "label mine" in image_only.note
    )
    bn = get_norm_spec("custom", norm("batchish"))
    assert bn.batch_statistics and "running statistics: yes" in bn.note


def test_a_measured_batch_statistics_norm_is_treated_as_one() -> None:
    with pytest.raises(ConfigError, match=r"^batch=1: norm=custom normalises with statistics over the batch"):
        check_batch("custom", norm("batchish"), 1)
    check_batch("custom", norm("MyNorm"), 1)
    sharded = norm_builder("custom", "image", norm("batchish"), device_batch=2)(4)
    assert isinstance(sharded, _PerDevice)
    assert not isinstance(norm_builder("custom", "image", norm("MyNorm"), device_batch=2)(4), _PerDevice)


def test_the_users_options_reach_the_norm() -> None:
    assert norm_builder("custom", "vector", norm("MyNorm", alpha=0.25))(3).alpha == 0.25


@pytest.mark.parametrize(
    "overrides, line",
    [
        (
            [f"norm._target_={PKG}.nope.MyNorm"],
            f"norm._target_={PKG}.nope.MyNorm: cannot import it (",
        ),
        (
            [f"norm._target_={PKG}.norms.not_module"],
            "returned int, not a torch.nn.Module; return a norm module",
        ),
        ([f"norm._target_={PKG}.norms.NoFeatures"], "cannot be called as"),
        (
            [f"norm._target_={PKG}.norms.MyNorm", "+norm.beta=1"],
            "(norm.beta): got an unexpected keyword argument",
        ),
        (
            [f"norm._target_={PKG}.norms.Shrinks"],
            "changed the shape of vector features from (4, 8) to (4, 1)",
        ),
        ([f"norm._target_={PKG}.norms.Nan"], "returned NaN or infinite values on standard normal"),
        (
            ["model=mlp", f"norm._target_={PKG}.norms.ImageOnly"],
            "declares layouts=['image'] on model=mlp; use one of",
        ),
        ([], "norm._target_=None: set it to the dotted path of a norm class or factory"),
    ],
)
def test_each_bad_norm_target_is_one_line_before_training(make_cfg, overrides, line) -> None:
    with pytest.raises(ConfigError) as err:
        build(make_cfg("norm=custom", *overrides, *TINY))
    assert line in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "target, line",
    [
        (f"{PKG}.nope.MyNet", "cannot import it ("),
        (f"{PKG}.models.no_norm_layer", "got an unexpected keyword argument 'norm_layer'"),
        (f"{PKG}.models.not_module", "returned str, not a torch.nn.Module"),
    ],
)
def test_each_bad_model_target_is_one_line_before_training(make_cfg, target, line) -> None:
    with pytest.raises(ConfigError) as err:
        build(make_cfg("model=custom", f"model._target_={target}", *TINY))
    assert str(err.value).startswith(f"model._target_={target}: ") and line in str(err.value)


@pytest.mark.slow
def test_a_users_model_trains_with_a_built_in_norm(make_cfg) -> None:
    built = build(
        make_cfg("model=custom", f"model._target_={PKG}.models.MyNet", "+model.width=6", "norm=group", *TINY)
    )
    assert type(built.trainer.model).__name__ == "MyNet"


def test_a_users_norm_in_a_users_model_sweeps_beside_built_in_norms_and_reports_under_its_label(
    cli, tmp_path, user_pkg
) -> None:
    result = cli(
        "-m",
        f"hydra.searchpath=[file://{user_pkg / 'conf'}]",
        "norm=batch,group8,mynorm",
        "model=custom",
        f"model._target_={PKG}.models.MyNet",
        *TINY,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in tmp_path.rglob("summary.json")]
    assert sorted(s["status"] for s in summaries) == ["done"] * 3
    logs = "".join(p.read_text() for p in tmp_path.rglob("*.log"))
    assert f"norm=custom {PKG}.norms.MyNorm (label MyNorm): layouts vector, image" in logs + result.stderr
    report = next(tmp_path.rglob("report.md")).read_text()
    assert "| MyNorm |" in report and "| group8 |" in report  # rows of its tables, by label


def test_a_bad_norm_target_stops_run_py_with_exit_2(cli) -> None:
    result = cli("norm=custom", f"norm._target_={PKG}.norms.Shrinks", *TINY)
    assert result.returncode == 2
    assert f"norm._target_={PKG}.norms.Shrinks: changed the shape" in result.stderr


def test_a_model_that_returns_no_logits_is_one_line_before_training(make_cfg) -> None:
    with pytest.raises(ConfigError) as err:
        build(make_cfg("model=custom", f"model._target_={PKG}.models.OneOutput", *TINY))
    assert str(err.value) == (
        "model=custom: returns (8, 1) for a batch of 8 samples; a classifier returns logits "
        "(N, num_classes) = (8, 10)"
    )


def test_a_users_preset_composes_into_the_remedies_grid_by_the_documented_command(make_cfg, user_pkg) -> None:
    # experiments/remedies.yaml: the preset's norms plus the user's, one sweep of norm=
    from normbench.config.checks import check_keys
    from normbench.run.identity import resolved_config

    searchpath = f"hydra.searchpath=[file://{user_pkg / 'conf'}]"
    for batch in (2, 32):
        cfg = make_cfg("experiment=remedies", searchpath, "norm=mynorm", f"batch={batch}")
        assert (cfg.name, cfg.norm.name, cfg.norm._target_) == ("remedies", "custom", f"{PKG}.norms.MyNorm")
        check_keys(resolved_config(cfg))
        assert cfg.devices == 8 and cfg.data.name == "glyphs"  # the preset's design, not the defaults
