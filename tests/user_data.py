"""Functions for data=custom in subprocess tests (run.py with PYTHONPATH=tests)."""

from __future__ import annotations

import numpy as np


def tiny(n: int = 48) -> dict[str, np.ndarray]:
    """Two separable blobs, enough for TINY's train and test sizes."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = (rng.normal(size=(n, 4)) + 2 * y[:, None]).astype(np.float32)
    return {"x_train": x, "y_train": y, "x_test": x, "y_test": y}


def broken() -> dict[str, np.ndarray]:
    """A user's function with a bug: an error no config check can foresee."""
    raise RuntimeError("a bug in the user's data code")


def univariate(n: int = 1000, steps: int = 10, classes: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """(N, T, 1) sequences: class c is a level (c - 4.5) / 2 held over the steps, plus noise;
    only the magnitude of the one feature tells most classes apart (its sign splits them in two)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    level = (y[:, None, None] - (classes - 1) / 2) / 2  # (N, 1, 1)
    x = (level + 0.25 * rng.normal(size=(n, steps, 1))).astype(np.float32)  # (N, T, 1)
    h = n * 4 // 5
    return {"x_train": x[:h], "y_train": y[:h], "x_test": x[h:], "y_test": y[h:]}
