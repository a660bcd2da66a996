"""data=custom: a user's function named by data._target_, its arrays checked, one line per error."""

from __future__ import annotations

import logging
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from normbench.data import build_dataset
from normbench.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf" / "data" / "custom.yaml"
PKG = "nb_user_pkg"  # the user's package, written to a temporary folder on sys.path

USER_MODULE = '''
import numpy as np
import torch


def make_data(n=40, d=5, classes=4, seed=0):
    """docs/usage.md's example: a blob per class."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(size=(n, d)) + y[:, None]
    h = n // 2
    return {"x_train": x[:h], "y_train": y[:h], "x_test": x[h:], "y_test": y[h:]}


def echo(value):
    """Returns what the test hands it through a data.* key."""
    return value


def one_pixel_images(n=40):
    """(N, 3, 1, 1) images: a ResNet makes 1x1 feature maps of them."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 3, 1, 1)).astype(np.float32) + y[:, None, None, None]
    return {"x_train": x, "y_train": y, "x_test": x, "y_test": y}


NOT_CALLABLE = 3
'''


@pytest.fixture(autouse=True)
def user_pkg(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.getbasetemp() / "user_code"
    if not root.exists():
        (root / PKG).mkdir(parents=True)
        (root / PKG / "__init__.py").write_text("")
        (root / PKG / "data.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(root))
    return root


def custom(target=f"{PKG}.data.echo", **options):
    return build_dataset("custom", model_modality="tabular", _target_=target, **options)


def arrays(n_train=12, n_test=6, shape=(5,), classes=3, **over):
    rng = np.random.default_rng(0)
    data = {
        "x_train": rng.normal(size=(n_train, *shape)).astype(np.float32),
        "y_train": np.arange(n_train) % classes,
        "x_test": rng.normal(size=(n_test, *shape)).astype(np.float32),
        "y_test": np.arange(n_test) % classes,
    }
    data.update(over)
    return data


def error(target=f"{PKG}.data.echo", **options) -> str:
    with pytest.raises(ConfigError) as exc:
        custom(target, **options)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"data._target_={target}:"), msg
    return msg


# ----------------------------------------------------------------------------- what works


@pytest.mark.parametrize("shape,modality", [((5,), "tabular"), ((7, 4), "sequence"), ((3, 8, 8), "image")])
def test_modality_follows_the_shape(shape, modality):
    ds = custom(value=arrays(shape=shape))
    assert ds.modality == modality and ds.input_shape == shape and ds.name == "custom"
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.x_train.shape == (12, *shape) and ds.x_test.shape == (6, *shape)
    assert ds.prepare is None and ds.augment is None


def test_tensors_and_integer_inputs_are_accepted():
    data = {
        "x_train": torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8),
        "y_train": torch.arange(10, dtype=torch.int32) % 2,
        "x_test": torch.randint(0, 256, (4, 1, 4, 4), dtype=torch.uint8),
        "y_test": torch.tensor([0, 1, 0, 1], dtype=torch.uint8),
    }
    ds = custom(value=data)
    assert ds.x_train.dtype == torch.float32 and torch.equal(ds.x_train, data["x_train"].float())
    assert ds.y_test.dtype == torch.int64 and ds.y_test.tolist() == [0, 1, 0, 1]


def test_num_classes_is_inferred_over_both_splits():
    ds = custom(value=arrays(y_test=np.array([0, 1, 2, 6, 1, 0])))
    assert ds.num_classes == 7
    assert custom(value=arrays(classes=3)).num_classes == 3


def test_extra_keys_reach_the_function():
    ds = custom(f"{PKG}.data.make_data", n=30, d=2, classes=3)
    assert ds.x_train.shape == (15, 2) and ds.x_test.shape == (15, 2) and ds.num_classes == 3


def test_subsets_are_stratified_and_seeded():
    data = arrays(n_train=60, n_test=30, classes=3)
    a = custom(value=data, train_size=15, test_size=6, seed=1)
    assert torch.bincount(a.y_train).tolist() == [5, 5, 5] and torch.bincount(a.y_test).tolist() == [2, 2, 2]
    assert torch.equal(custom(value=data, train_size=15, test_size=6, seed=1).x_train, a.x_train)
    assert not torch.equal(custom(value=data, train_size=15, test_size=6, seed=2).x_train, a.x_train)
    assert a.num_classes == 3


def test_yaml_keys_are_the_function_arguments():
    cfg = OmegaConf.to_container(OmegaConf.load(CONF))
    assert cfg.pop("name") == "custom" and cfg["_target_"] is None
    cfg["_target_"] = f"{PKG}.data.make_data"
    ds = build_dataset("custom", model_modality="image", **cfg)
    assert ds.modality == "tabular" and len(ds.x_train) == 20


def test_command_line_overrides_compose(tmp_path):
    # python run.py data=custom data._target_=nb_user_pkg.data.make_data +data.n=30
    (tmp_path / "data").mkdir()
    shutil.copy(CONF, tmp_path / "data" / "custom.yaml")
    (tmp_path / "config.yaml").write_text("defaults:\n  - data: custom\n  - _self_\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        cfg = compose("config", overrides=[f"data._target_={PKG}.data.make_data", "+data.n=30"])
    options = OmegaConf.to_container(cfg.data)
    ds = build_dataset(options.pop("name"), model_modality="tabular", **options)
    assert len(ds.x_train) == 15


# ----------------------------------------------------------------------------- one line each


def test_missing_target():
    with pytest.raises(ConfigError) as exc:
        build_dataset("custom", model_modality="tabular")
    msg = str(exc.value)
    assert msg.startswith("data._target_=None:") and "dotted path" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "target,expect",
    [
        ("no_such_pkg_xyz.mod.make_data", "No module named 'no_such_pkg_xyz'"),
        (f"{PKG}.data.nope", "nope"),
        (f"{PKG}.missing_module.make_data", "missing_module"),
        (f"{PKG}.data.NOT_CALLABLE", "non-callable"),
    ],
)
def test_import_failures(target, expect, caplog):
    with caplog.at_level(logging.DEBUG):
        msg = error(target)
    assert "cannot import it" in msg and expect in msg and "PYTHONPATH" in msg
    assert not [r for r in caplog.records if r.name == "hydra.utils"]  # no multi-line log


def test_unknown_key_for_the_function():
    msg = error(f"{PKG}.data.make_data", size=3)
    assert "cannot be called with the keys under data (data.size)" in msg


def test_not_a_mapping():
    assert "returned list; return a dict" in error(value=[1, 2])


def test_missing_keys():
    data = arrays()
    del data["y_test"], data["x_train"]
    msg = error(value=data)
    assert "without x_train, y_test" in msg


@pytest.mark.parametrize("shape", [(12,), (12, 2, 3, 4, 5)])
def test_wrong_input_ndim(shape):
    msg = error(value=arrays(x_train=np.zeros(shape, np.float32)))
    assert f"x_train of shape {shape}" in msg and "(N, C, H, W) image" in msg


def test_train_and_test_shapes_differ():
    msg = error(value=arrays(x_test=np.zeros((6, 4), np.float32)))
    assert "x_train of shape (12, 5) and x_test of shape (6, 4)" in msg


def test_mismatched_lengths():
    assert "returned 11 labels in y_train for 12 samples in x_train" in error(
        value=arrays(y_train=np.arange(11) % 3)
    )
    assert "returned 7 labels in y_test for 6 samples in x_test" in error(
        value=arrays(y_test=np.arange(7) % 3)
    )


@pytest.mark.parametrize(
    "labels,expect",
    [
        (np.arange(12) % 3 + 0.5, "y_train of dtype torch.float64; labels must be integer"),
        ((np.arange(12) % 3).astype(np.float32), "y_train of dtype torch.float32"),
        (np.arange(12) % 2 == 0, "y_train of dtype torch.bool"),
        ((np.arange(12) % 3)[:, None], "y_train of shape (12, 1); labels must be (N,)"),
        (np.arange(12) % 3 - 1, "negative labels in y_train (min -1)"),
    ],
)
def test_bad_labels(labels, expect):
    assert expect in error(value=arrays(y_train=labels))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_non_finite_inputs(bad):
    x = np.zeros((6, 5))
    x[4, 2] = bad
    msg = error(value=arrays(x_test=x))
    assert "x_test with 1 NaN or infinite values" in msg and "sample 4" in msg


def test_not_numeric():
    assert "x_train as list that is not a numeric array" in error(value=arrays(x_train=[["a", "b"]] * 12))


def test_empty_split():
    assert "empty x_test" in error(value=arrays(x_test=np.zeros((0, 5)), y_test=np.zeros(0, int)))


def test_subset_larger_than_the_data():
    with pytest.raises(ConfigError) as exc:
        custom(value=arrays(), train_size=13)
    assert str(exc.value) == "data.train_size=13: must be at most 12, the samples available"


# ----------------------------------------------------------------------------- sizes and layouts


def test_a_stray_huge_label_is_refused_before_a_huge_head_is_allocated():
    y = np.arange(12) % 3
    y[5] = 999_999_999
    msg = error(value=arrays(y_train=y))
    assert "returned labels up to 999999999 in y_train, i.e. 1,000,000,000 classes" in msg
    assert "at most 100,000 classes: number them 0..K-1" in msg


def test_a_uint64_label_past_int64_is_named_not_called_negative():
    y = (np.arange(12) % 3).astype(np.uint64)
    y[5] = 2**64 - 1
    msg = error(value=arrays(y_train=y))
    assert (
        "returned labels up to 18446744073709551615 in y_train, i.e. 18,446,744,073,709,551,616 classes"
        in msg
    )
    assert "negative" not in msg


@pytest.mark.parametrize(
    ("x", "expect"),
    [
        (torch.zeros(12, 5, device="meta"), "returned x_train on the meta device (a shape without values)"),
        (torch.eye(12, 5).to_sparse(), "returned x_train as a torch.sparse_coo tensor; return a dense one"),
    ],
)
def test_meta_and_sparse_tensors_are_one_line(x, expect):
    assert expect in error(value=arrays(x_train=x))


def test_inputs_without_features_or_labels_of_one_class_are_refused_before_training():
    assert "returned x_train of shape (12, 0): a sample without features" in error(
        value=arrays(x_train=np.zeros((12, 0)), x_test=np.zeros((6, 0)))
    )
    msg = error(value=arrays(y_train=np.ones(12, int), y_test=np.ones(6, int)))
    assert "returned one class only in y_train (label 1); a classifier needs two or more" in msg


def test_a_huge_broadcast_view_is_refused_before_it_is_copied():
    # a view of 4 bytes that would be 256 GB as a contiguous float32 array
    x = np.broadcast_to(np.zeros((1, 1), np.float32), (1000, 2**26))
    msg = error(value=arrays(x_train=x, y_train=np.arange(1000) % 3))
    assert "returned x_train of shape (1000, 67108864): 67,108,864,000 values, 250 GiB as float32" in msg
    assert "at most 2,147,483,648 values (8 GiB) per array" in msg
    huge = torch.zeros(1, 1).expand(1000, 2**26)  # the same as a torch view
    assert "67,108,864,000 values" in error(value=arrays(x_test=huge, y_test=np.arange(1000) % 3))


@pytest.mark.slow
def test_images_too_small_for_the_norm_are_refused_before_training_with_norms_that_fit(make_cfg):
    from normbench.run.runner import build

    cfg = make_cfg(
        "data=custom",
        f"data._target_={PKG}.data.one_pixel_images",
        "model=resnet",
        "norm=instance",
        "batch=8",
        "epochs=1",
        "threads=1",
    )
    with pytest.raises(ConfigError) as exc:
        build(cfg)
    assert str(exc.value) == (
        "norm=instance: cannot normalise what model=resnet makes of samples of shape (3, 1, 1) "
        "(Expected more than 1 spatial element when training, got input size torch.Size([8, 16, 1, 1])); "
        "use one of batch, batch_renorm, evonorm_b0, evonorm_s0, frn, ghost_batch, group, layer, none"
    )
    build(make_cfg(*cfg_overrides(cfg), "norm=layer"))  # what the line offers works


def cfg_overrides(cfg) -> list[str]:
    return ["data=custom", f"data._target_={cfg.data._target_}", "model=resnet", "batch=8", "threads=1"]
