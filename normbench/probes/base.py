"""What a probe is: a measurement the runner takes at the start, after every epoch and at the
end of a run, as metrics.csv rows, also filling summary.json's ``final``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from normbench.data import Dataset
from normbench.sinks import Row
from normbench.train import Trainer


@dataclass
class Point:
    """Where the run stands when a probe looks."""

    trainer: Trainer
    epoch: int
    step: int
    final: dict[str, float]  # summary.json's ``final``: the last value of each metric
    losses: torch.Tensor | None = None  # the epoch's per-step training losses (at_epoch only)


class Probe:
    """A measurement; each hook returns its rows (none by default)."""

    def at_start(self, at: Point) -> list[Row]:
        """Before the first training step (not on a resumed run)."""
        return []

    def at_epoch(self, at: Point) -> list[Row]:
        """After every epoch; may raise :class:`Diverged`."""
        return []

    def at_end(self, at: Point) -> list[Row]:
        """After the last epoch."""
        return []


class Diverged(Exception):
    """The run cannot go on: its losses are not finite. ``rows``: what the epoch measured."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.rows: list[Row] = []


def first_batches(data: Dataset, batch: int, samples: int) -> list[torch.Tensor]:
    """The first ``samples`` training inputs (at least one batch) in batches of ``batch``."""
    n = max(min(samples, data.x_train.shape[0]) // batch, 1) * batch
    chunks = data.x_train[:n].split(batch)
    return [data.prepare(x) for x in chunks] if data.prepare is not None else list(chunks)
