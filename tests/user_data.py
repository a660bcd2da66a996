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
