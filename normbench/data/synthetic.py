"""``data=synthetic``: three generated tasks, one per model modality, fixed by a data seed.

- ``threshold`` (tabular, 2 classes): source article 1 exactly. Ten features uniform in
  [0, 1), label 1 when the row sum exceeds 5.
- ``images`` (image (N, 3, 32, 32), 10 classes): oriented band-pass noise textures. Class k's
  texture is oriented at k x 18 degrees (bandwidth ``spread``) at a random spatial frequency,
  with a random phase everywhere (so translation-invariant: suits a ResNet with global pooling,
  while the class means of raw pixels are flat), painted in a random per-sample colour
  (contrast and polarity included) on a random background colour, plus Gaussian ``noise``.
  Standardised by construction (per-channel mean 0, std 1 in expectation).
- ``sequence`` (sequence (N, T, F=8), 4 classes): the first ``signal_steps`` steps carry the
  class prototype plus ``noise``; the remaining steps are pure noise of the same scale. Only
  memory of the first steps tells the class at the end.

The task-specific defaults live in :data:`TASKS` only; ``null`` in ``conf/data/synthetic.yaml``
means "the task's default". Every tensor is a function of ``seed`` alone (explicit generator
objects, never the global RNG), so the dataset stays fixed while the run seed varies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from normbench.data.base import Dataset
from normbench.data.registry import register_dataset
from normbench.errors import ConfigError
from normbench.run.memory import check_fits

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_test, y_test

AUTO_TASK = {"tabular": "threshold", "image": "images", "sequence": "sequence"}


@dataclass(frozen=True)
class Knob:
    """A task option: ``ok(value)`` says whether it is usable; ``works`` says what is."""

    ok: Callable[[Any], bool]
    works: str


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


KNOBS: dict[str, Knob] = {
    "noise": Knob(lambda v: _is_real(v) and 0 <= v <= 100, "a number in [0, 100] (0 = no noise)"),
    "spread": Knob(lambda v: _is_real(v) and 0 < v <= 90, "a number of degrees in (0, 90]"),
    "seq_len": Knob(lambda v: _is_int(v) and 2 <= v <= 4096, "an int in [2, 4096]"),
    "signal_steps": Knob(lambda v: _is_int(v) and v >= 1, "an int >= 1, below data.seq_len"),
}


@dataclass(frozen=True)
class Task:
    modality: str
    num_classes: int
    train_size: int
    test_size: int
    knobs: dict[str, Any]  # knob -> default; only these knobs apply to the task
    generate: Callable[..., Arrays]  # (seed, train_size, test_size, **knobs) -> arrays
    sample_values: Callable[..., int]  # (**knobs) -> values in one sample's input


# ---------------------------------------------------------------------------------------
# threshold: source article 1


def _threshold(seed: int, train_size: int, test_size: int) -> Arrays:
    # One legacy draw, train rows first: with seed 42 and train_size 1000 the training inputs
    # are the article's `np.random.seed(42); np.random.rand(1000, 10)`.
    x = np.random.RandomState(seed).rand(train_size + test_size, 10)  # (N, 10) float64
    y = (x.sum(axis=1) > 5).astype(np.int64)
    return x[:train_size], y[:train_size], x[train_size:], y[train_size:]


# ---------------------------------------------------------------------------------------
# images: oriented textures

IMG, IMG_CLASSES = 32, 10
BACKGROUND_STD = 0.5  # per-sample background colour: brightness nuisance that IN/LN remove
FREQ_RANGE = (0.12, 0.3)  # cycles per pixel; drawn per sample, a nuisance the class ignores
FREQ_WIDTH = 0.04  # radial bandwidth of the texture, cycles per pixel
_FY = np.fft.fftfreq(IMG)[:, None]  # cycles per pixel, (32, 1)
_FX = np.fft.rfftfreq(IMG)[None, :]  # (1, 17)
_RADIUS, _ANGLE = np.hypot(_FY, _FX), np.arctan2(_FY, _FX)  # (32, 17) each


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for the class structure, the train split and the test split,
    so the test set does not change with train_size."""
    return tuple(np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(3))


def _balanced_labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def _draw_images(rng: np.random.Generator, n: int, noise: float, spread: float):
    y = _balanced_labels(rng, n, IMG_CLASSES)
    # class k: band-pass noise oriented at k * 18 degrees, at a random spatial frequency, built
    # in the Fourier domain: gain = Gaussian in orientation (width `spread`) x ring at `freq`
    theta = np.pi * y / IMG_CLASSES
    freq = rng.uniform(*FREQ_RANGE, n)[:, None, None]
    d_angle = (_ANGLE - theta[:, None, None] + np.pi / 2) % np.pi - np.pi / 2  # (N, 32, 17)
    gain = np.exp(-0.5 * (d_angle / np.radians(spread)) ** 2 - 0.5 * ((_RADIUS - freq) / FREQ_WIDTH) ** 2)
    white = rng.standard_normal((n, IMG, IMG), dtype=np.float32)
    texture = np.fft.irfft2(np.fft.rfft2(white) * gain, s=(IMG, IMG)).astype(np.float32)  # (N, 32, 32)
    texture /= texture.std(axis=(1, 2), keepdims=True)  # unit contrast before colour
    colour = rng.standard_normal((n, 3, 1, 1), dtype=np.float32)  # colour, contrast and polarity
    background = BACKGROUND_STD * rng.standard_normal((n, 3, 1, 1), dtype=np.float32)
    x = rng.standard_normal((n, 3, IMG, IMG), dtype=np.float32)  # (N, 3, H, W)
    x *= noise
    x += colour * texture[:, None] + background
    # standardised by construction: every term has mean 0, and per channel the variances add
    # up to 1 (colour x unit texture) + background^2 + noise^2; no statistics cross the splits
    x /= np.float32(np.sqrt(1.0 + BACKGROUND_STD**2 + noise**2))
    return x, y


def _images(seed: int, train_size: int, test_size: int, noise: float, spread: float) -> Arrays:
    _, train, test = _streams(seed)  # the class structure is fixed: no structure stream needed
    x_tr, y_tr = _draw_images(train, train_size, noise, spread)
    x_te, y_te = _draw_images(test, test_size, noise, spread)
    return x_tr, y_tr, x_te, y_te


# ---------------------------------------------------------------------------------------
# sequence: remember the first steps through many distractors

SEQ_FEATURES, SEQ_CLASSES = 8, 4


def _draw_sequences(rng, prototypes, n: int, seq_len: int, signal_steps: int, noise: float):
    y = _balanced_labels(rng, n, SEQ_CLASSES)
    scale = np.sqrt(1.0 + noise**2)  # std of a signal step's entries: prototype + noise
    x = rng.standard_normal((n, seq_len, SEQ_FEATURES))  # distractor steps: noise, (N, T, F)
    x[:, :signal_steps] = (prototypes[y][:, None] + noise * x[:, :signal_steps]) / scale
    return x, y  # every step has unit-variance entries: only content and position differ


def _sequence(
    seed: int, train_size: int, test_size: int, seq_len: int, signal_steps: int, noise: float
) -> Arrays:
    if signal_steps >= seq_len:
        raise ConfigError("data.signal_steps", signal_steps, f"must be below data.seq_len={seq_len}")
    structure, train, test = _streams(seed)
    prototypes = structure.standard_normal((SEQ_CLASSES, SEQ_FEATURES))
    x_tr, y_tr = _draw_sequences(train, prototypes, train_size, seq_len, signal_steps, noise)
    x_te, y_te = _draw_sequences(test, prototypes, test_size, seq_len, signal_steps, noise)
    return x_tr, y_tr, x_te, y_te


# ---------------------------------------------------------------------------------------
# the table: every task-specific default lives here and nowhere else

TASKS: dict[str, Task] = {
    "threshold": Task("tabular", 2, 1000, 1000, {}, _threshold, lambda: 10),
    "images": Task(
        "image", IMG_CLASSES, 4000, 1000, {"noise": 2.0, "spread": 10.0}, _images, lambda **_: 3 * IMG * IMG
    ),
    "sequence": Task(
        "sequence",
        SEQ_CLASSES,
        4000,
        1000,
        {"seq_len": 24, "signal_steps": 4, "noise": 2.0},
        _sequence,
        lambda seq_len, **_: seq_len * SEQ_FEATURES,
    ),
}
# Bytes per input value while a split is drawn: float64 draws (threshold, sequence) or the
# float64 Fourier terms of the images, then the float32 copy that is kept.
GENERATE_BYTES = 16


def check_generated_size(train_size: int, test_size: int, sample_values: int) -> None:
    """Drawing the splits fits the host's memory: ``data.train_size=1000000000`` was a numpy
    allocation error of 74.5 GiB."""
    for key, n in (("data.train_size", train_size), ("data.test_size", test_size)):
        need = n * sample_values * GENERATE_BYTES
        what = f"drawing {n:,} samples of {sample_values:,} values"
        check_fits(key, n, need, what, "use a smaller size (null: the task's default)")


def _resolve_task(task: Any, model_modality: str) -> str:
    if task == "auto":
        if model_modality not in AUTO_TASK:
            raise ConfigError(
                "data.task",
                task,
                f"no synthetic task for model modality {model_modality!r}; "
                f"set data.task to one of {', '.join(TASKS)}",
            )
        return AUTO_TASK[model_modality]
    if not isinstance(task, str) or task not in TASKS:
        raise ConfigError("data.task", task, f"unknown task; choose auto or one of {', '.join(TASKS)}")
    return task


def _size(key: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if not _is_int(value) or value < 1:
        raise ConfigError(f"data.{key}", value, "must be a positive int, or null for the task's default")
    return int(value)


@register_dataset("synthetic")
def make_synthetic(
    *,
    model_modality: str,
    task: str = "auto",
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 42,
    **knobs: Any,
) -> Dataset:
    """Generate a synthetic task; ``None`` for a size or knob means the task's default in
    :data:`TASKS`. ``task="auto"`` picks the task of ``model_modality`` (:data:`AUTO_TASK`);
    ``seed`` is the data seed, independent of the run seed. Raises :class:`ConfigError` naming
    ``data.<key>`` for any unusable key."""
    name = _resolve_task(task, model_modality)
    spec = TASKS[name]
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise ConfigError("data.seed", seed, "must be an int in [0, 2**32)")
    options = dict(spec.knobs)
    for key, value in knobs.items():
        if key not in KNOBS:
            raise ConfigError(
                f"data.{key}",
                value,
                "not a key of data=synthetic; keys are task, train_size, "
                f"test_size, seed, {', '.join(KNOBS)}",
            )
        if value is None:
            continue
        if key not in spec.knobs:
            users = [t for t, s in TASKS.items() if key in s.knobs]
            raise ConfigError(
                f"data.{key}", value, f"applies to task {' and '.join(users)}, not {name}; leave it null"
            )
        if not KNOBS[key].ok(value):
            raise ConfigError(f"data.{key}", value, f"must be {KNOBS[key].works}")
        options[key] = value
    train_size = _size("train_size", train_size, spec.train_size)
    test_size = _size("test_size", test_size, spec.test_size)
    check_generated_size(train_size, test_size, spec.sample_values(**options))
    x_tr, y_tr, x_te, y_te = spec.generate(int(seed), train_size, test_size, **options)
    return Dataset(
        name=f"synthetic-{name}",
        modality=spec.modality,
        x_train=torch.from_numpy(np.ascontiguousarray(x_tr, dtype=np.float32)),
        y_train=torch.from_numpy(y_tr.astype(np.int64)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_te, dtype=np.float32)),
        y_test=torch.from_numpy(y_te.astype(np.int64)),
        num_classes=spec.num_classes,
    )
