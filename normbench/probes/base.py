"""What a probe is: a measurement the runner takes at the start, after every epoch and at the
end of a run, as metrics.csv rows, also filling summary.json's ``final``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from normbench.data import Dataset
from normbench.run.sinks import Row
from normbench.run.train import Trainer


@dataclass(frozen=True)
class Metric:
    """What a probe measures, declared beside it: each run records its probes' declarations
    (summary.json ``metrics``), and the report tables what the runs declared, so a new
    measurement reaches the report from its own module."""

    name: str  # summary.json's ``final`` key, "<split>/<metric>"; an accuracy is tabled as its error
    unit: str  # "fraction" (shown in %), "nats", "samples/s", ...
    higher_is_better: bool
    note: str  # one line: what it is, after the table's caption
    table: bool = False  # a table per norm and batch size in the report

    def record(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "note": self.note,
            "table": self.table,
        }


def scores(split: str, what: str, table: bool) -> tuple[Metric, Metric]:
    """The loss and accuracy a scoring probe writes for ``split`` (evaluation.score_rows);
    ``table``: the accuracy is tabled (as its error), the loss only where it is the test's."""
    return (
        Metric(f"{split}/loss", "nats", False, f"cross-entropy, {what}", table=table and split == "test"),
        Metric(f"{split}/accuracy", "fraction", True, f"accuracy, {what}", table=table),
    )


@dataclass
class Point:
    """Where the run stands when a probe looks."""

    trainer: Trainer
    epoch: int
    step: int
    final: dict[str, float]  # summary.json's ``final``: the last value of each metric
    losses: torch.Tensor | None = None  # the epoch's per-step training losses (at_epoch only)


class Probe:
    """A measurement; each hook returns its rows (none by default), and ``metrics`` declares
    the ``final`` values they leave."""

    metrics: tuple[Metric, ...] = ()

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
