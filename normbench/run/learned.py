"""Did a run learn? A finished run whose test accuracy stays within a margin of chance, or whose
training loss ends above where it started, did not, and says what to try.

The margin is the wider of 5 points and 3 binomial standard errors of the test set around
chance: on 1,000 test samples at chance 50% that is 5 points (3 SE = 4.7), on 100 it is 15, so
a small test set does not call a lucky guess learning. Chance is the majority class's share of
the test labels (1/num_classes on a balanced set). The runner calls :func:`judge_run` once, at the
end of a run, and records ``learned`` and ``learned_note`` in summary.json.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from normbench.norms import get_norm_spec, make_options
from normbench.optim import base_lr, sgd_batch
from normbench.run import record

log = logging.getLogger("normbench")

MIN_MARGIN = 0.05  # accuracy within 5 points of chance is chance
Z = 3.0  # ... or within 3 standard errors of a binomial at chance on the test size


@dataclass(frozen=True)
class Verdict:
    learned: bool
    note: str  # why not, in a few words; "" when it learned


def chance_accuracy(labels: torch.Tensor) -> float:
    """The accuracy of always answering the most frequent label."""
    return torch.bincount(labels.flatten().long()).max().item() / labels.numel()


def margin(chance: float, test_size: int) -> float:
    """How far above chance an accuracy must be to count as learned."""
    return max(MIN_MARGIN, Z * math.sqrt(chance * (1 - chance) / max(test_size, 1)))


def judge(
    test_accuracy: float | None,
    chance: float,
    test_size: int,
    first_train_loss: float | None,
    final_train_loss: float | None,
) -> Verdict:
    """The verdict on a finished run (a diverged one has no usable accuracy: pass None)."""
    if test_accuracy is None or not math.isfinite(test_accuracy):
        return Verdict(False, "no finite test accuracy (diverged)")
    bound = margin(chance, test_size)
    if test_accuracy < chance + bound:
        return Verdict(
            False,
            f"test accuracy {100 * test_accuracy:.1f}% within {100 * bound:.1f} points of chance "
            f"({100 * chance:.1f}%)",
        )
    if first_train_loss is not None and final_train_loss is not None and final_train_loss > first_train_loss:
        return Verdict(
            False, f"train loss rose from {first_train_loss:.4g} (first logged) to {final_train_loss:.4g}"
        )
    return Verdict(True, "")


def advice(note: str, lr: float, epochs: int, norm: str, batch: int, batch_statistics: bool) -> str:
    """The one warning line of a run that did not learn: what happened, and what to try."""
    limit = (
        f"norm={norm} normalises over the batch and its statistics are noisy at batch {batch}: "
        f"try a larger batch or a per-sample norm"
        if batch_statistics
        else f"or another norm than norm={norm}"
    )
    return (
        f"warning: did not learn: {note}; try another optim.lr (peak {lr:.3g}; too large diverges or "
        f"oscillates, too small stays put), more epochs (now {epochs}), {limit}"
    )


def first_train_loss(metrics_csv: Path) -> float | None:
    """The first training loss a run logged (its first window), from its metrics.csv."""
    try:
        with Path(metrics_csv).open() as f:
            for row in csv.DictReader(f):
                if row["split"] == "train" and row["metric"] == "loss":
                    return float(row["value"])
    except OSError:
        return None
    return None


def judge_run(
    cfg: DictConfig, labels: torch.Tensor, summary: dict[str, Any], status: str, metrics: Path
) -> None:
    """A finished run's ``learned`` and ``learned_note`` into its summary (``labels``: the test
    labels; ``metrics``: its metrics.csv); one warning line when it did not learn."""
    final = summary["final"]
    verdict = judge(
        final.get("test/accuracy") if status == record.DONE else None,
        chance_accuracy(labels),
        labels.numel(),
        first_train_loss(metrics),
        final.get("train/loss"),
    )
    summary.update(learned=verdict.learned, learned_note=verdict.note)
    if not verdict.learned:
        lr = base_lr(cfg.optim.lr, sgd_batch(cfg), cfg.optim.linear_scaling)
        batch_stats = get_norm_spec(cfg.norm.name, make_options(cfg.norm)).batch_statistics
        log.warning(advice(verdict.note, lr, cfg.epochs, cfg.norm.name, cfg.batch, batch_stats))
