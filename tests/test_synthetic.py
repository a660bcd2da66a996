"""data=synthetic: determinism, shapes, the article's threshold draw, config errors, and cheap
learnability checks that fail if a generator loses (or leaks) its class structure."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from normbench.data import DATASETS, build_dataset
from normbench.data.synthetic import KNOBS, TASKS, make_synthetic
from normbench.errors import ConfigError

YAML = Path(__file__).resolve().parents[1] / "conf" / "data" / "synthetic.yaml"
SMALL = {"train_size": 200, "test_size": 100}
TASK_SHAPES = {"threshold": (10,), "images": (3, 32, 32), "sequence": (TASKS["sequence"].knobs["seq_len"], 8)}


def small(task: str, **kw):
    return make_synthetic(model_modality="tabular", task=task, **{**SMALL, **kw})


def tensors(d):
    return d.x_train, d.y_train, d.x_test, d.y_test


@pytest.mark.parametrize("task", list(TASKS))
def test_same_seed_same_tensors_other_seed_other_tensors(task):
    a, b, c = small(task, seed=7), small(task, seed=7), small(task, seed=8)
    for ta, tb in zip(tensors(a), tensors(b)):
        assert torch.equal(ta, tb)
    assert not torch.equal(a.x_train, c.x_train)
    assert not torch.equal(a.x_test, c.x_test)


def test_generation_leaves_global_rngs_alone():
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    for task in TASKS:
        small(task)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.parametrize("task", list(TASKS))
def test_shapes_dtypes_labels_and_balance(task):
    d = small(task)
    spec = TASKS[task]
    assert (d.modality, d.num_classes, d.name) == (spec.modality, spec.num_classes, f"synthetic-{task}")
    assert d.x_train.shape == (200, *TASK_SHAPES[task]) and d.x_test.shape == (100, *TASK_SHAPES[task])
    assert d.x_train.dtype == d.x_test.dtype == torch.float32
    assert d.y_train.dtype == d.y_test.dtype == torch.int64
    for y in (d.y_train, d.y_test):
        assert y.min() >= 0 and y.max() < spec.num_classes
        counts = torch.bincount(y, minlength=spec.num_classes).double()
        assert counts.min() >= 0.7 * len(y) / spec.num_classes  # every class well represented
    assert torch.isfinite(d.x_train).all() and torch.isfinite(d.x_test).all()


def test_threshold_is_the_article_draw_and_rule():
    d = make_synthetic(model_modality="tabular")
    state = np.random.get_state()
    np.random.seed(42)
    article = np.random.rand(1000, 10)  # source article 1, verbatim
    rest = np.random.rand(1000, 10)  # the test rows continue the same stream
    np.random.set_state(state)
    assert torch.equal(d.x_train, torch.from_numpy(article.astype(np.float32)))
    assert torch.equal(d.x_test, torch.from_numpy(rest.astype(np.float32)))
    assert torch.equal(d.y_train, torch.from_numpy((article.sum(1) > 5).astype(np.int64)))
    assert torch.equal(d.y_test, torch.from_numpy((rest.sum(1) > 5).astype(np.int64)))


@pytest.mark.parametrize("modality, task", [("tabular", "threshold"), ("sequence", "sequence")])
def test_auto_follows_the_model_modality(modality, task):
    d = make_synthetic(model_modality=modality)
    assert d.name == f"synthetic-{task}" and d.modality == modality
    assert (len(d.x_train), len(d.x_test)) == (TASKS[task].train_size, TASKS[task].test_size)


def test_auto_gives_images_to_image_models():
    d = make_synthetic(model_modality="image", train_size=10, test_size=10)  # defaults: too slow here
    assert d.name == "synthetic-images" and d.modality == "image" and d.x_train.shape == (10, 3, 32, 32)


def test_explicit_task_overrides_the_modality():
    d = make_synthetic(model_modality="tabular", task="images", train_size=20, test_size=10)
    assert d.modality == "image" and d.x_train.shape == (20, 3, 32, 32)


def test_registered_and_built_through_the_registry():
    assert DATASETS["synthetic"] is make_synthetic
    d = build_dataset("synthetic", model_modality="sequence", train_size=16, test_size=8, seq_len=10)
    assert d.x_train.shape == (16, 10, 8) and d.x_test.shape == (8, 10, 8)


@pytest.mark.parametrize("task", list(TASKS))
def test_sizes_are_honoured(task):
    d = make_synthetic(model_modality="image", task=task, train_size=37, test_size=11)
    assert (len(d.x_train), len(d.y_train), len(d.x_test), len(d.y_test)) == (37, 37, 11, 11)


@pytest.mark.parametrize("task", ["images", "sequence"])
def test_test_split_does_not_depend_on_train_size(task):
    a, b = small(task), small(task, train_size=120)
    assert torch.equal(a.y_test, b.y_test) and torch.equal(a.x_test, b.x_test)


@pytest.mark.parametrize("kwargs", [{}, {"noise": 0.0}, {"noise": 4.0, "spread": 40}])
def test_images_are_roughly_standardised(kwargs):
    d = small("images", train_size=1000, **kwargs)
    for x in (d.x_train, d.x_test):
        assert x.mean(dim=(0, 2, 3)).abs().max() < 0.1
        assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.1


def test_sequence_steps_have_unit_scale():
    x = small("sequence", noise=3.0).x_train
    assert (x.std(dim=(0, 2)) - 1).abs().max() < 0.35  # signal and distractor steps alike


@pytest.mark.parametrize(
    "kwargs, key, value, hint",
    [
        ({"task": "bogus"}, "data.task", "bogus", "threshold, images, sequence"),
        ({"train_size": 0}, "data.train_size", "0", "positive int"),
        ({"train_size": -5}, "data.train_size", "-5", "positive int"),
        ({"test_size": 2.5}, "data.test_size", "2.5", "positive int"),
        ({"test_size": True}, "data.test_size", "True", "positive int"),
        ({"seed": -1}, "data.seed", "-1", "2**32"),
        ({"task": "images", "noise": -0.5}, "data.noise", "-0.5", "[0, 100]"),
        ({"task": "images", "noise": "high"}, "data.noise", "high", "[0, 100]"),
        ({"task": "images", "spread": 0}, "data.spread", "0", "(0, 90]"),
        ({"task": "images", "spread": 120}, "data.spread", "120", "(0, 90]"),
        ({"task": "sequence", "seq_len": 1}, "data.seq_len", "1", "[2, 4096]"),
        ({"task": "sequence", "signal_steps": 0}, "data.signal_steps", "0", ">= 1"),
        ({"task": "sequence", "seq_len": 8, "signal_steps": 8}, "data.signal_steps", "8", "seq_len=8"),
        ({"task": "images", "seq_len": 16}, "data.seq_len", "16", "applies to task sequence"),
        ({"task": "threshold", "noise": 1.0}, "data.noise", "1.0", "images and sequence"),
        ({"colour": "red"}, "data.colour", "red", "keys are"),
    ],
)
def test_bad_keys_raise_config_error_naming_key_and_value(kwargs, key, value, hint):
    with pytest.raises(ConfigError) as err:
        make_synthetic(model_modality="image", **kwargs)
    assert err.value.key == key
    assert str(err.value).startswith(f"{key}={value}:") and hint in str(err.value)


def test_auto_with_an_unknown_modality_says_what_works():
    with pytest.raises(ConfigError, match=r"^data\.task=auto: .*graph.*threshold, images, sequence"):
        make_synthetic(model_modality="graph")


def test_yaml_lists_every_keyword_with_the_code_defaults():
    conf = yaml.safe_load(YAML.read_text())
    params = inspect.signature(make_synthetic).parameters
    explicit = {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k != "model_modality"}
    assert conf.pop("name") == "synthetic"
    # data.resample is every dataset's switch, read by build_dataset (same default there)
    assert conf.pop("resample") is inspect.signature(build_dataset).parameters["resample"].default
    assert list(conf) == [*explicit, *KNOBS]  # every key once, knobs in table order
    assert {k: conf[k] for k in explicit} == explicit  # same defaults in YAML and signature
    assert all(conf[k] is None for k in KNOBS)  # task defaults live only in TASKS
    # every task's own defaults pass the checks users' values go through
    for spec in TASKS.values():
        assert all(KNOBS[k].ok(v) for k, v in spec.knobs.items())


def _nearest_mean_accuracy(f_train, y_train, f_test, y_test, num_classes):
    means = torch.stack([f_train[y_train == k].mean(0) for k in range(num_classes)])
    return (torch.cdist(f_test, means).argmin(1) == y_test).double().mean().item()


def test_images_classes_are_translation_invariant_textures():
    d = make_synthetic(model_modality="image", train_size=600, test_size=400)
    # raw pixels: class means are flat (random phase), so nearest-mean is at chance
    raw = _nearest_mean_accuracy(d.x_train.flatten(1), d.y_train, d.x_test.flatten(1), d.y_test, 10)
    assert raw < 0.2

    def spectrum(x):  # translation-invariant: log power of the channel-summed image
        return torch.fft.rfft2(x.sum(1)).abs().pow(2).add(1e-3).log().flatten(1)

    spec = _nearest_mean_accuracy(spectrum(d.x_train), d.y_train, spectrum(d.x_test), d.y_test, 10)
    assert 0.3 < spec < 0.95  # the structure is there, but default noise keeps it hard


def test_sequence_class_lives_only_in_the_first_steps():
    d = make_synthetic(model_modality="sequence", train_size=1000, test_size=1000)
    s, c = TASKS["sequence"].knobs["signal_steps"], d.num_classes
    first = _nearest_mean_accuracy(
        d.x_train[:, :s].flatten(1), d.y_train, d.x_test[:, :s].flatten(1), d.y_test, c
    )
    last = _nearest_mean_accuracy(
        d.x_train[:, s:].flatten(1), d.y_train, d.x_test[:, s:].flatten(1), d.y_test, c
    )
    assert first > 0.6
    assert last < 1 / c + 0.08  # distractor steps carry nothing
