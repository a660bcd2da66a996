"""Where measurements go: a tidy CSV and TensorBoard, behind one small interface.

Rows are ``(step, epoch, split, metric, value)``. Writes are buffered and flushed once per
epoch, so logging cost does not grow with the step rate.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from normbench.files import open_private

Row = tuple[int, int, str, str, float]
CSV_HEADER = ("step", "epoch", "split", "metric", "value")


class CSVSink:
    """Appends to ``metrics.csv``; flushed and fsynced per epoch so a killed run keeps every
    finished epoch."""

    def __init__(self, path: Path) -> None:
        new = not path.exists() or path.stat().st_size == 0
        self._file = open_private(path, "a", newline="")  # open for the whole run
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(CSV_HEADER)

    def write(self, rows: Iterable[Row]) -> None:
        self._writer.writerows((s, e, sp, m, repr(float(v))) for s, e, sp, m, v in rows)

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self, hparams: Mapping[str, Any], final: Mapping[str, float]) -> None:
        self._file.close()


class TensorBoardSink:
    """Scalars tagged ``split/metric``, and the run's hyperparameters for the HParams tab."""

    def __init__(self, logdir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when used

        # a resumed run opens a new event file: what a killed run logged past its checkpoint
        # was cut from the old ones first (checkpoint.cut_to)
        self._writer = SummaryWriter(log_dir=str(logdir))

    def write(self, rows: Iterable[Row]) -> None:
        for step, _epoch, split, metric, value in rows:
            self._writer.add_scalar(f"{split}/{metric}", value, step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self, hparams: Mapping[str, Any], final: Mapping[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        # Written into this run's own event file (SummaryWriter.add_hparams would open a
        # second writer in a timestamped subfolder); metric tags point at the logged scalars.
        metrics = {tag: value for tag, value in final.items() if math.isfinite(value)}
        for summary in hparams_summary(_hparam_values(hparams), metrics):
            self._writer.file_writer.add_summary(summary)
        self._writer.close()


def _hparam_values(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """TensorBoard takes bool, int, float or str; lists become strings, None is dropped."""
    return {
        k: v if isinstance(v, (bool, int, float, str)) else str(v)
        for k, v in hparams.items()
        if v is not None
    }


class Sinks:
    """Fans rows out to every sink."""

    def __init__(self, sinks: list[Any]) -> None:
        self.sinks = sinks

    def write(self, rows: list[Row]) -> None:
        for sink in self.sinks:
            sink.write(rows)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self, hparams: Mapping[str, Any], final: Mapping[str, float]) -> None:
        for sink in self.sinks:
            sink.close(hparams, final)


def open_sinks(run_dir: Path) -> Sinks:
    return Sinks([CSVSink(run_dir / "metrics.csv"), TensorBoardSink(run_dir / "tb")])
