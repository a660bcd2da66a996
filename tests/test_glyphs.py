"""data=glyphs: digits from matplotlib's fonts over clutter, generated in memory."""

from __future__ import annotations

import inspect
import time

import pytest
import torch
import yaml
from conftest import REPO, TINY

from normbench.data import build_dataset
from normbench.data.glyphs import CLASSES, FONTS, KNOBS, make_glyphs, templates
from normbench.errors import ConfigError
from normbench.run.runner import build, run

YAML = REPO / "conf" / "data" / "glyphs.yaml"


def small(**kwargs):
    return make_glyphs(model_modality="image", **{"train_size": 200, "test_size": 100, **kwargs})


def test_same_seed_same_tensors_other_seed_other_tensors():
    a, b, c = small(seed=3), small(seed=3), small(seed=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)


def test_generation_leaves_torch_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    small()
    assert torch.equal(torch.rand(3), expected)


def test_shapes_dtypes_and_balanced_labels():
    d = small(train_size=203, test_size=100, size=20)
    assert d.x_train.shape == (203, 3, 20, 20) and d.x_test.shape == (100, 3, 20, 20)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.num_classes == 10 and d.modality == "image"
    assert torch.bincount(d.y_test, minlength=10).tolist() == [10] * 10
    counts = torch.bincount(d.y_train, minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 203


def test_train_and_test_come_from_disjoint_streams():
    # the test split does not move with train_size, and no test image is a training image
    a, b = small(), small(train_size=500)
    assert torch.equal(a.x_test, b.x_test)
    flat_train, flat_test = b.x_train.flatten(1), a.x_test.flatten(1)
    assert torch.cdist(flat_test, flat_train).min() > 1.0


def test_every_font_renders_every_digit_and_they_differ():
    canvas, half = templates(16)
    assert canvas.shape == (len(FONTS) * len(CLASSES), 1, 16, 16)
    ink = canvas.sum(dim=(1, 2, 3))
    assert (ink > 5).all()  # no blank glyph (a font without the digit would render nothing)
    assert ((half > 0.5) & (half <= 1)).all()
    per_font = canvas.view(len(FONTS), len(CLASSES), -1)
    distance = torch.cdist(per_font, per_font)  # (font, digit, digit)
    off_diagonal = distance[:, ~torch.eye(len(CLASSES), dtype=torch.bool)]
    assert off_diagonal.min() > 1.0  # two digits of one font never coincide


def test_images_are_roughly_standardised():
    x = small(train_size=2000).x_train
    assert x.mean(dim=(0, 2, 3)).abs().max() < 0.15
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.15


def test_generation_is_fast():
    # the preset's sizes (6,500 images): about 1 s of CPU on this machine; loose for slow CI
    start = time.process_time()
    make_glyphs(model_modality="image")
    assert time.process_time() - start < 15


def test_the_class_is_in_the_shape_not_the_colour():
    # a per-image colour summary (channel means and stds) barely beats chance: what IN, LN and
    # GN divide out carries no class, so they lose nothing by removing it
    d = small(train_size=2000, test_size=1000)

    def colour(x):
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], 1)

    f_tr, f_te = colour(d.x_train), colour(d.x_test)
    means = torch.stack([f_tr[d.y_train == k].mean(0) for k in range(10)])
    accuracy = (torch.cdist(f_te, means).argmin(1) == d.y_test).double().mean().item()
    assert accuracy < 0.2


@pytest.mark.parametrize(
    "kwargs, key, value, hint",
    [
        ({"size": 8}, "data.size", "8", "[12, 64]"),
        ({"size": 16.0}, "data.size", "16.0", "an int"),
        ({"clutter": -1}, "data.clutter", "-1", "[0, 32]"),
        ({"texture": "lots"}, "data.texture", "lots", "[0, 10]"),
        ({"colour": 5}, "data.colour", "5", "[0, 2]"),
        ({"rotation": 200}, "data.rotation", "200", "degrees"),
        ({"contrast": -0.1}, "data.contrast", "-0.1", "log gain"),
        ({"shift": 1.5}, "data.shift", "1.5", "an int in [0, 8]"),
        ({"seed": -1}, "data.seed", "-1", "2**32"),
        ({"train_size": 0}, "data.train_size", "0", "positive int"),
    ],
)
def test_bad_keys_raise_one_line_naming_key_and_value(kwargs, key, value, hint):
    with pytest.raises(ConfigError) as err:
        small(**kwargs)
    assert err.value.key == key
    assert str(err.value).startswith(f"{key}={value}: must be") and hint in str(err.value)
    assert "\n" not in str(err.value)


def test_a_typo_in_a_key_is_refused_before_training(make_cfg):
    cfg = make_cfg("data=glyphs", "model=resnet", "+data.cluter=2", *TINY)
    with pytest.raises(ConfigError, match=r"^data\.cluter=2: is not a key of data=glyphs; its keys are"):
        build(cfg)


def test_yaml_lists_every_keyword_with_the_code_defaults():
    conf = yaml.safe_load(YAML.read_text())
    params = inspect.signature(make_glyphs).parameters
    explicit = {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k != "model_modality"}
    assert conf.pop("name") == "glyphs"
    assert conf.pop("resample") is inspect.signature(build_dataset).parameters["resample"].default
    assert conf == explicit
    assert set(KNOBS) <= set(explicit)
    assert all(KNOBS[k].ok(explicit[k]) for k in KNOBS)


# A short run of each norm on an easy version of the task (no clutter, 12 pixels, ResNet-8 of
# width 8; 2-3 s of CPU each). Measured (seed 0, threads=1): BN 75.3%, group8 58.0%, LN 40.3%,
# IN 71.0% test accuracy, chance 10%; 300 test images give about 2.7 points of binomial error.
EASY = [
    *("data.train_size=800", "data.test_size=300", "data.clutter=0", "data.texture=0.1", "data.size=12"),
    *("model=resnet", "model.width=8", "epochs=8", "batch=16", "optim.lr=0.2", "threads=1", "progress=false"),
]
FLOOR = 0.30


@pytest.mark.slow
@pytest.mark.science
@pytest.mark.parametrize("norm", ["batch", "group8", "layer", "instance"])
def test_every_norm_learns_a_short_run(make_cfg, tmp_path, norm):
    summary = run(make_cfg("data=glyphs", f"norm={norm}", *EASY), tmp_path)
    accuracy = summary["final"]["test/accuracy"]
    print(f"\nglyphs {norm}: test accuracy {100 * accuracy:.1f}% (chance 10%)")
    assert accuracy >= FLOOR, f"{norm}: {accuracy:.3f}"


# ---- the nuisance knobs and the data-rich shift ---------------------------------------------


def test_contrast_and_brightness_vary_each_image_and_leave_the_labels():
    base, varied = small(), small(contrast=0.8, brightness=0.5)
    assert torch.equal(base.y_train, varied.y_train) and torch.equal(base.y_test, varied.y_test)
    spread = {name: d.x_train.std(dim=(1, 2, 3)).std().item() for name, d in (("b", base), ("v", varied))}
    shift = {name: d.x_train.mean(dim=(1, 2, 3)).std().item() for name, d in (("b", base), ("v", varied))}
    assert spread["v"] > 2 * spread["b"] and shift["v"] > 2 * shift["b"]


@pytest.mark.slow
def test_shift_augments_training_batches_only_deterministically_per_seed(make_cfg):
    def one_epoch(seed: int, shift: int = 2) -> list[torch.Tensor]:
        built = build(
            make_cfg(
                "data=glyphs", "model=resnet", "model.width=4", *TINY, f"data.shift={shift}", f"seed={seed}"
            )
        )
        losses = built.trainer.train_epoch()
        return [losses, *built.trainer.model.state_dict().values()]

    a, b, c = one_epoch(0), one_epoch(0), one_epoch(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], one_epoch(0, shift=0)[0])  # the shift is in the training batches
    data = small(shift=2)
    assert data.augment is not None and small().augment is None
    torch.manual_seed(0)
    x = data.x_train[:64]
    moved = data.augment(x)
    assert not torch.equal(moved, x)
    # a circular shift permutes each image's pixels: what the norms see of it is unchanged
    torch.testing.assert_close(moved.mean(dim=(2, 3)), x.mean(dim=(2, 3)))
    torch.testing.assert_close(moved.flatten(2).sort(-1)[0], x.flatten(2).sort(-1)[0])
