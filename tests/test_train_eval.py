"""The convergence probe (``train_eval_size``: eval-mode scores on a fixed training subset)
and ``eval_every`` (the test evaluation every N epochs and at the last), on tiny real runs."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from normbench.errors import ConfigError
from normbench.probes.train_eval import train_subset
from normbench.run.progress import epoch_line
from normbench.run.runner import build, run
from normbench.run.train import evaluate

TINY = ["data.train_size=48", "data.test_size=16", "batch=8", "progress=false", "threads=1"]


def rows(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


def epochs_of(table: list[dict[str, str]], split: str, metric: str) -> list[int]:
    return [int(r["epoch"]) for r in table if r["split"] == split and r["metric"] == metric]


def test_train_eval_scores_the_subset_at_step_0_and_every_epoch(make_cfg, tmp_path):
    summary = run(make_cfg(*TINY, "epochs=3", "norm=batch", "train_eval_size=20"), tmp_path / "r")
    table = rows(tmp_path / "r")
    assert epochs_of(table, "train_eval", "loss") == [0, 1, 2, 3]
    assert epochs_of(table, "train_eval", "accuracy") == [0, 1, 2, 3]
    losses = [float(r["value"]) for r in table if r["split"] == "train_eval" and r["metric"] == "loss"]
    assert summary["final"]["train_eval/loss"] == losses[-1]
    assert losses[-1] < losses[0]  # it trained; the probe follows it
    steps = [int(r["step"]) for r in table if r["split"] == "train_eval" and r["metric"] == "loss"]
    assert steps == [0, 6, 12, 18]  # 48 samples / batch 8 = 6 steps an epoch
    for r in table:
        if r["split"] == "train_eval" and r["metric"] == "accuracy":
            assert float(r["value"]) * 20 == pytest.approx(round(float(r["value"]) * 20))  # k of 20


def test_train_eval_at_step_0_is_evaluate_on_the_training_images(make_cfg, tmp_path):
    """The whole training set (size = train size): the step-0 row is what
    normbench.run.train.evaluate gives the freshly built model on those images, in eval mode."""
    cfg = make_cfg(*TINY, "epochs=1", "norm=batch", "model=mlp", "train_eval_size=48")
    built = build(cfg)
    data = built.trainer.data
    want = evaluate(built.trainer.model, train_subset(data, 48))
    assert train_subset(data, 48).x_test is data.x_train
    run(make_cfg(*TINY, "epochs=1", "norm=batch", "model=mlp", "train_eval_size=48"), tmp_path / "r")
    table = rows(tmp_path / "r")
    first = {r["metric"]: float(r["value"]) for r in table if (r["split"], r["epoch"]) == ("train_eval", "0")}
    assert first["loss"] == pytest.approx(want[0], rel=1e-6)
    assert first["accuracy"] == pytest.approx(want[1])


def test_the_subset_is_fixed_and_stratified(make_cfg):
    data = build(make_cfg(*TINY, "epochs=1")).trainer.data
    a, b = train_subset(data, 20), train_subset(data, 20)
    assert torch.equal(a.x_test, b.x_test) and a.y_test.shape == (20,)
    share = torch.bincount(data.y_train) / len(data.y_train)
    got = torch.bincount(a.y_test, minlength=len(share))
    assert (got - 20 * share).abs().max() < 1  # each class within one image of its share
    # rows of the training set, not of the test set
    assert all(any(torch.equal(x, t) for t in data.x_train) for x in a.x_test)


def test_default_is_off_and_test_runs_every_epoch(make_cfg, tmp_path):
    summary = run(make_cfg(*TINY, "epochs=2", "norm=batch"), tmp_path / "r")
    table = rows(tmp_path / "r")
    assert not epochs_of(table, "train_eval", "loss") and "train_eval/loss" not in summary["final"]
    assert epochs_of(table, "test", "accuracy") == [1, 2]


def test_eval_every_scores_every_nth_epoch_and_the_last(make_cfg, tmp_path):
    every = run(make_cfg(*TINY, "epochs=5", "norm=batch", "eval_every=2"), tmp_path / "two")
    table = rows(tmp_path / "two")
    assert epochs_of(table, "test", "accuracy") == [2, 4, 5]
    assert epochs_of(table, "test_batchstats", "accuracy") == [2, 4, 5]
    assert epochs_of(table, "train", "loss") == [1, 2, 3, 4, 5]  # training is logged as before
    assert epochs_of(table, "test_precise", "accuracy") == [5]  # Precise BN at the end as before
    # the evaluation draws nothing: the same training, the same final numbers as eval_every=1
    each = run(make_cfg(*TINY, "epochs=5", "norm=batch"), tmp_path / "one")
    for key in ("train/loss", "test/loss", "test/accuracy", "test_batchstats/loss", "test_precise/loss"):
        assert every["final"][key] == each["final"][key], key
    last = [r for r in table if r["split"] == "test" and r["metric"] == "loss"][-1]
    assert float(last["value"]) == every["final"]["test/loss"]


def test_epoch_line_shows_test_numbers_only_when_scored():
    summary = {
        "final": {"train/loss": 0.5, "train_eval/loss": 0.4, "test/loss": 0.7, "test/accuracy": 0.9},
        "train_samples_per_s": 100.0,
    }
    assert "test loss" not in epoch_line(1, 5, summary, eval_every=2)
    assert "test loss 0.7000" in epoch_line(2, 5, summary, eval_every=2)
    assert "test loss" in epoch_line(5, 5, summary, eval_every=2)
    assert "(eval mode 0.4000)" in epoch_line(1, 5, summary)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train_eval_size=-1"], r"^train_eval_size=-1: is below 0; use an integer >= 0 \(0: off"),
        (["train_eval_size=2.5"], r"^train_eval_size=2.5: is not an integer"),
        (
            ["train_eval_size=49"],
            r"^train_eval_size=49: is larger than the training set \(48 samples\); "
            r"use train_eval_size<=48 \(0: off\)$",
        ),
        (["eval_every=0"], r"^eval_every=0: is below 1; use an integer >= 1"),
    ],
)
def test_bad_sizes_are_one_config_error_before_training(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build(make_cfg(*TINY, "epochs=1", *overrides))


def test_losses_are_finite_numbers(make_cfg, tmp_path):
    summary = run(make_cfg(*TINY, "epochs=1", "model=resnet", "norm=group", "train_eval_size=16"), tmp_path)
    final = summary["final"]
    assert math.isfinite(final["train_eval/loss"]) and 0 <= final["train_eval/accuracy"] <= 1
