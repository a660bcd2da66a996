"""The did-not-learn judgement (normbench.run.learned), alone and at the end of a real run."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import summaries

from normbench.run.learned import Verdict, advice, chance_accuracy, first_train_loss, judge, margin


def test_chance_is_the_majority_class_share():
    assert chance_accuracy(torch.tensor([0, 1, 2, 3] * 5)) == 0.25
    assert chance_accuracy(torch.tensor([1, 1, 1, 0])) == 0.75


def test_the_margin_is_five_points_or_three_standard_errors_of_the_test_set():
    assert margin(0.5, 1000) == 0.05  # 3 SE = 4.74 points: the 5-point floor holds
    assert margin(0.5, 100) == pytest.approx(0.15)
    assert margin(0.1, 16) == pytest.approx(3 * math.sqrt(0.09 / 16))


def test_accuracy_near_chance_did_not_learn():
    verdict = judge(0.53, chance=0.5, test_size=1000, first_train_loss=0.7, final_train_loss=0.69)
    assert verdict == Verdict(False, "test accuracy 53.0% within 5.0 points of chance (50.0%)")


def test_accuracy_clear_of_chance_and_a_falling_loss_learned():
    assert judge(0.56, 0.5, 1000, 0.7, 0.3) == Verdict(True, "")


def test_a_rising_train_loss_did_not_learn_even_above_chance():
    verdict = judge(0.9, 0.5, 1000, first_train_loss=0.4, final_train_loss=0.6)
    assert not verdict.learned and verdict.note == "train loss rose from 0.4 (first logged) to 0.6"


@pytest.mark.parametrize("accuracy", [None, float("nan")])
def test_no_accuracy_did_not_learn(accuracy):
    assert judge(accuracy, 0.1, 1000, 2.3, None) == Verdict(False, "no finite test accuracy (diverged)")


def test_the_advice_names_lr_epochs_and_the_norms_limit():
    line = advice("x", lr=0.0125, epochs=10, norm="batch", batch=4, batch_statistics=True)
    assert line.startswith("warning: did not learn: x; try another optim.lr (peak 0.0125")
    assert "more epochs (now 10)" in line and "noisy at batch 4" in line
    assert "another norm than norm=layer" in advice("x", 0.1, 5, "layer", 32, batch_statistics=False)


def test_first_train_loss_is_the_first_logged_window(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(
        "step,epoch,split,metric,value\n0,0,activations,std/1,1.0\n10,1,train,loss,2.5\n"
        "10,1,train,lr,0.1\n20,1,train,loss,1.5\n"
    )
    assert first_train_loss(path) == 2.5
    assert first_train_loss(tmp_path / "absent.csv") is None


# the threshold MLP trains in a couple of seconds: three epochs at the defaults learn it
QUICK = ["model=mlp", "norm=layer", "epochs=3", "progress=false", "threads=1"]


def test_a_run_forced_to_chance_says_so_in_its_log_and_summary(cli, tmp_path):
    result = cli(*QUICK, "optim.lr=1e-9")  # lr 0 is refused before training
    assert result.returncode == 0, result.stderr[-2000:]
    (s,) = summaries(tmp_path)
    assert s["status"] == "done" and s["learned"] is False
    assert s["learned_note"].startswith("test accuracy ") and "of chance (5" in s["learned_note"]
    (log,) = tmp_path.rglob("run.log")
    last = log.read_text().strip().splitlines()[-1]
    assert "warning: did not learn: test accuracy" in last and "optim.lr" in last
    assert sum("did not learn" in line for line in log.read_text().splitlines()) == 1


def test_a_run_that_learned_says_so_in_its_summary_only(cli, tmp_path):
    result = cli(*QUICK)
    assert result.returncode == 0, result.stderr[-2000:]
    (s,) = summaries(tmp_path)
    assert s["final"]["test/accuracy"] > 0.8 and (s["learned"], s["learned_note"]) == (True, "")
    assert "did not learn" not in result.stderr


def test_a_failed_run_has_no_verdict(cli, tmp_path):
    assert cli(*QUICK, "batch=0").returncode == 2
    (s,) = summaries(tmp_path)
    assert s["status"] == "failed" and "learned" not in s
