"""Loss and accuracy in eval mode on a fixed subset of the training set (``train_eval_size``
images; 0: off), split ``train_eval``, at step 0 and after every epoch.

The convergence measure: the training set scored as the test set is (running statistics, no
augmentation, no dropout), so "did every batch size converge" and the generalization gap
compare like with like. The train-mode loss of :mod:`.train_loss` mixes in batch-statistics
noise, which differs by batch size, and moves with the weights within the epoch. It runs every
epoch whatever ``eval_every`` says: it is the convergence curve, and its cost is set by its
own size. The subset is the same at every epoch and for every run seed: class-stratified
indices drawn with a fixed seed (:func:`normbench.data.subsets.stratified_subset`), so a
dataset stored sorted by class still gives every class its share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from omegaconf import DictConfig
from torch import nn

from normbench.config.rules import Rule
from normbench.data import Dataset
from normbench.data.subsets import stratified_subset
from normbench.probes.base import Point, Probe, scores
from normbench.probes.evaluation import score_rows, trained_finitely
from normbench.run.sinks import Row
from normbench.run.train import evaluate

# the config key this probe reads, with the values it takes (checks.all_rules)
CONFIG = {"train_eval_size": Rule(int, lo=0, note="0: off; at most the training set's size")}
SPLIT = "train_eval"
SUBSET_SEED, SUBSET_STREAM = 0, 2  # streams 0 and 1 are data.train_size's and data.test_size's


def train_subset(data: Dataset, size: int) -> Dataset:
    """``data`` with its test split replaced by ``size`` fixed training samples (all of them
    when ``size`` is the training set's size), for :func:`normbench.run.train.evaluate`."""
    n = data.y_train.shape[0]
    if size >= n:
        return replace(data, x_test=data.x_train, y_test=data.y_train)
    picked = stratified_subset(data.y_train.cpu().numpy(), size, SUBSET_SEED, SUBSET_STREAM)
    idx = torch.from_numpy(picked).to(data.y_train.device)
    return replace(data, x_test=data.x_train[idx], y_test=data.y_train[idx])


class TrainEval(Probe):
    metrics = scores(SPLIT, "a fixed training subset scored in eval mode", table=True)

    def __init__(self, size: int) -> None:
        self.size = size
        self.subset: Dataset | None = None  # chosen at the first look: the data is on its device then

    def at_start(self, at: Point) -> list[Row]:
        return self._score(at)

    def at_epoch(self, at: Point) -> list[Row]:
        return self._score(at) if trained_finitely(at) else []

    def _score(self, at: Point) -> list[Row]:
        if self.subset is None:
            self.subset = train_subset(at.trainer.data, self.size)
        return score_rows(at, SPLIT, *evaluate(at.trainer.model, self.subset))


def make(cfg: DictConfig, model: nn.Module, lr_at: Callable[[int], float]) -> Probe | None:
    return TrainEval(cfg.train_eval_size) if cfg.train_eval_size else None
