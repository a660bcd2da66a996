"""What a run shows while it trains: a progress bar (on a terminal only) and a line per epoch."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig

from normbench.probes.evaluation import due


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str) -> None: ...


@contextlib.contextmanager
def progress_bar(cfg: DictConfig, total: int) -> Iterator[Any]:
    """A tqdm bar on an interactive terminal; nothing in CI, in logs or with progress=false."""
    show = cfg.progress is True or (
        cfg.progress == "auto" and sys.stderr.isatty() and not os.environ.get("CI")
    )
    if not show:
        yield _NoBar()
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="step", dynamic_ncols=True, leave=False) as bar:
        yield bar


def epoch_line(epoch: int, epochs: int, summary: dict[str, Any], eval_every: int = 1) -> str:
    """The epoch's log line; the test numbers only on the epochs the test set was scored."""
    f = summary["final"]
    line = f"epoch {epoch}/{epochs}  train loss {f['train/loss']:.4f}  "
    if "train_eval/loss" in f:
        line += f"(eval mode {f['train_eval/loss']:.4f})  "
    if due(epoch, eval_every, epochs):
        line += f"test loss {f['test/loss']:.4f}  test acc {100 * f['test/accuracy']:.2f}%"
        if "test_batchstats/accuracy" in f:
            line += f" (batch stats {100 * f['test_batchstats/accuracy']:.2f}%)"
    return line + f"  {summary['train_samples_per_s']:.0f} samples/s"
