"""Subsets of a dataset's splits: ``data.train_size`` / ``data.test_size`` (class-stratified,
seeded by ``data.seed``), shared by every dataset that reads arrays (``data=cifar10``,
``data=custom``), and the checks of those keys."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from normbench.errors import ConfigError


def check_size(key: str, value: Any, available: int | None) -> int | None:
    """``None`` (all) or a positive int no larger than ``available`` (when known); else a
    ConfigError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(key, value, "must be a positive integer, or null for all samples")
    if available is not None and value > available:
        raise ConfigError(key, value, f"must be at most {available}, the samples available")
    return int(value)


def stratified_subset(labels: Any, size: int, seed: int, stream: int = 0) -> np.ndarray:
    """Sorted indices of ``size`` samples whose class proportions follow ``labels``'.

    Each class gets ``floor(size * share)``; the few left over go to the classes with the largest
    remainders (ties in a seeded random order). Samples within a class are drawn without
    replacement. The result depends on ``(seed, stream)`` alone; use one stream per split.
    """
    y = np.asarray(labels)
    rng = np.random.default_rng([seed, stream])
    classes, counts = np.unique(y, return_counts=True)
    exact = size * counts / len(y)
    quota = np.floor(exact).astype(np.int64)
    left = size - int(quota.sum())
    if left:
        order = np.lexsort((rng.random(len(classes)), quota - exact))  # largest remainder first
        quota[order[:left]] += 1
    by_class = np.split(np.argsort(y, kind="stable"), np.cumsum(counts)[:-1])
    picks = [rng.choice(idx, q, replace=False) for idx, q in zip(by_class, quota, strict=True)]
    return np.sort(np.concatenate(picks))


def check_seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError("data.seed", value, "must be a non-negative integer")
    return int(value)


def take_subsets(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    train_size: Any,
    test_size: Any,
    seed: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply ``data.train_size`` / ``data.test_size`` (null = all) as stratified, seeded subsets."""
    seed = check_seed(seed)
    train_size = check_size("data.train_size", train_size, len(y_train))
    test_size = check_size("data.test_size", test_size, len(y_test))
    if train_size is not None and train_size < len(y_train):
        idx = torch.from_numpy(stratified_subset(y_train.cpu().numpy(), train_size, seed, 0))
        x_train, y_train = x_train[idx.to(x_train.device)], y_train[idx.to(y_train.device)]
    if test_size is not None and test_size < len(y_test):
        idx = torch.from_numpy(stratified_subset(y_test.cpu().numpy(), test_size, seed, 1))
        x_test, y_test = x_test[idx.to(x_test.device)], y_test[idx.to(y_test.device)]
    return x_train, y_train, x_test, y_test
