"""``data=custom``: bring your own arrays.

    python run.py data=custom data._target_=mypkg.mymodule.make_data +data.n=1000

calls ``mypkg.mymodule.make_data(n=1000)``: every key under ``data`` except ``_target_``,
``train_size``, ``test_size`` and ``seed`` (which normbench uses) is passed as a keyword. The
function returns a mapping with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (numpy arrays or
torch tensors). The inputs' shape sets the modality: (N, D) tabular, (N, T, F) sequence,
(N, C, H, W) image; they are held as float32. Labels are integer classes 0..K-1, K inferred as
the largest label + 1 over both splits, at most MAX_CLASSES; each array holds at most
MAX_ELEMENTS values (checked before anything is copied, so a broadcast view cannot blow up
into terabytes). Anything else stops with one line before training.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from normbench.data.base import Dataset
from normbench.data.registry import register_dataset
from normbench.data.subsets import check_seed, take_subsets
from normbench.errors import ConfigError
from normbench.errors import one_line as _one_line
from normbench.registry import locate

KEYS = ("x_train", "y_train", "x_test", "y_test")
MODALITY_BY_NDIM = {2: "tabular", 3: "sequence", 4: "image"}
TARGET_KEY = "data._target_"
EXAMPLE = "e.g. data._target_=mypkg.mymodule.make_data"
# The classifier head has one output per class: 100,000 classes is a 6.4M-weight head on
# 64 features; a stray label of 10**9 would ask for a 256 GB one.
MAX_CLASSES = 100_000
# Each split lives in memory as float32: 2**31 values is 8 GiB (CIFAR-10's training set is
# 154M values); larger is a mistake (a broadcast view, a wrong reshape) or needs a data loader.
MAX_ELEMENTS = 2**31


def _locate(target: Any) -> Callable[..., Any]:
    return locate(TARGET_KEY, target, f"a function that returns x_train, y_train, x_test, y_test ({EXAMPLE})")


def _call(fn: Callable[..., Any], target: str, options: dict[str, Any]) -> Any:
    try:
        inspect.signature(fn).bind(**options)
    except TypeError as err:
        keys = ", ".join(f"data.{k}" for k in options) or "none"
        raise ConfigError(
            TARGET_KEY,
            target,
            f"cannot be called with the keys under data ({keys}): {_one_line(err)}",
        ) from err
    except ValueError:  # no signature to inspect (some builtins): just call it
        pass
    return fn(**options)  # the user's own errors keep their traceback


def _as_tensor(target: str, name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        _check_elements(target, name, tuple(value.shape))
        _check_dense(target, name, value)
        t = value.detach()
    else:
        try:
            array = np.asarray(value)  # no copy for an array (a broadcast view stays a view)
        except (TypeError, ValueError) as err:
            raise _not_numeric(target, name, value, err) from err
        _check_elements(target, name, array.shape)
        try:
            t = torch.from_numpy(np.ascontiguousarray(array))
        except (TypeError, ValueError) as err:
            raise _not_numeric(target, name, value, err) from err
    if t.dtype.is_complex:
        raise ConfigError(TARGET_KEY, target, f"returned complex {name} ({t.dtype}); use real numbers")
    return t


def _check_dense(target: str, name: str, t: torch.Tensor) -> None:
    """A tensor that holds its values: a meta tensor has none, and a sparse one cannot be
    sliced into batches as the training loop does."""
    if t.is_meta:
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned {name} on the meta device (a shape without values); return tensors that hold "
            "data, or numpy arrays",
        )
    if t.layout != torch.strided:
        raise ConfigError(
            TARGET_KEY, target, f"returned {name} as a {t.layout} tensor; return a dense one (t.to_dense())"
        )


def _not_numeric(target: str, name: str, value: Any, err: Exception) -> ConfigError:
    return ConfigError(
        TARGET_KEY,
        target,
        f"returned {name} as {type(value).__name__} that is not a numeric array "
        f"({_one_line(err)}); return numpy arrays or torch tensors",
    )


def _check_elements(target: str, name: str, shape: tuple[int, ...]) -> None:
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned {name} of shape {shape}: {count:,} values, {4 * count / 2**30:,.0f} GiB as float32; "
            f"at most {MAX_ELEMENTS:,} values ({4 * MAX_ELEMENTS // 2**30} GiB) per array: "
            "subsample, or check the shape",
        )


def _inputs(target: str, name: str, x: torch.Tensor) -> torch.Tensor:
    if x.ndim not in MODALITY_BY_NDIM:
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned {name} of shape {tuple(x.shape)}; inputs must be (N, D) tabular, "
            "(N, T, F) sequence or (N, C, H, W) image",
        )
    if len(x) == 0:
        raise ConfigError(TARGET_KEY, target, f"returned an empty {name}")
    if math.prod(x.shape[1:]) == 0:
        raise ConfigError(
            TARGET_KEY, target, f"returned {name} of shape {tuple(x.shape)}: a sample without features"
        )
    x = x.to(torch.float32)
    bad = ~torch.isfinite(x)
    if bad.any():
        count = int(bad.sum())
        first = int(bad.flatten(1).any(1).nonzero()[0])
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned {name} with {count} NaN or infinite values (as float32), the first in "
            f"sample {first}; clean or impute them",
        )
    return x.contiguous()


def _labels(target: str, name: str, y: torch.Tensor, n: int, x_name: str) -> torch.Tensor:
    if y.dtype == torch.bool or y.dtype.is_floating_point:
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned {name} of dtype {y.dtype}; labels must be integer class indices "
            "(e.g. y.astype(np.int64))",
        )
    if y.ndim != 1:
        raise ConfigError(
            TARGET_KEY, target, f"returned {name} of shape {tuple(y.shape)}; labels must be (N,)"
        )
    if len(y) != n:
        raise ConfigError(
            TARGET_KEY, target, f"returned {len(y)} labels in {name} for {n} samples in {x_name}"
        )
    # the largest label before the cast to int64, where 2**64 - 1 (uint64) would become -1
    top = int(y.cpu().numpy().max()) if len(y) else 0
    if top >= MAX_CLASSES:
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned labels up to {top} in {name}, i.e. {top + 1:,} classes (one output each); "
            f"at most {MAX_CLASSES:,} classes: number them 0..K-1 "
            "(e.g. np.unique(y, return_inverse=True)[1])",
        )
    y = y.to(torch.int64)
    if (y < 0).any():
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned negative labels in {name} (min {int(y.min())}); classes are 0..K-1",
        )
    return y


@register_dataset("custom")
def make_custom(
    *,
    model_modality: str = "tabular",  # unused: the shape of the arrays sets the modality
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    **options: Any,
) -> Dataset:
    """Call ``options["_target_"]`` with the other options and check what it returns."""
    target = options.pop("_target_", None)
    seed = check_seed(seed)
    fn = _locate(target)
    result = _call(fn, target, options)
    if not isinstance(result, Mapping):
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned {type(result).__name__}; return a dict with keys {', '.join(KEYS)}",
        )
    missing = [k for k in KEYS if k not in result]
    if missing:
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned a mapping without {', '.join(missing)}; it needs {', '.join(KEYS)}",
        )
    raw = {k: _as_tensor(target, k, result[k]) for k in KEYS}
    x_train = _inputs(target, "x_train", raw["x_train"])
    x_test = _inputs(target, "x_test", raw["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned x_train of shape {tuple(x_train.shape)} and x_test of shape "
            f"{tuple(x_test.shape)}; one sample must have the same shape in both",
        )
    y_train = _labels(target, "y_train", raw["y_train"], len(x_train), "x_train")
    y_test = _labels(target, "y_test", raw["y_test"], len(x_test), "x_test")
    num_classes = int(max(y_train.max(), y_test.max())) + 1  # each at most MAX_CLASSES (_labels)
    present = torch.unique(y_train)
    if len(present) < 2:  # it would train, then be judged "did not learn"
        raise ConfigError(
            TARGET_KEY,
            target,
            f"returned one class only in y_train (label {int(present[0])}); a classifier needs two or more",
        )
    x_train, y_train, x_test, y_test = take_subsets(
        x_train, y_train, x_test, y_test, train_size, test_size, seed
    )
    return Dataset(
        name="custom",
        modality=MODALITY_BY_NDIM[x_train.ndim],
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
    )
