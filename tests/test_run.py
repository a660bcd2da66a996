"""run.py end to end: every model x norm, sweeps, bad input, divergence, skip and rerun."""

from __future__ import annotations

import csv
import itertools
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import TINY, summaries

from normbench.errors import ConfigError
from normbench.models import MODELS
from normbench.norms import NORMS, norm_builder
from normbench.probes import Point
from normbench.probes.train_loss import train_rows
from normbench.probes.weights import NEAR_ZERO, Weights
from normbench.run.identity import config_identity
from normbench.run.runner import build, run
from normbench.run.train import evaluate_batch_statistics

BUILTIN_NORMS = ["none", "batch", "layer", "instance", "group"]


def layout_ok(model: str, norm: str) -> bool:
    layout = MODELS[model].layout
    return ("vector" if layout == "recurrent" else layout) in NORMS[norm].layouts


def test_every_model_x_norm_trains_through_run_py_in_one_sweep(cli, tmp_path):
    result = cli("-m", f"model={','.join(MODELS)}", f"norm={','.join(BUILTIN_NORMS)}", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {(s["config"]["model"]["name"], s["config"]["norm"]["name"]): s for s in summaries(tmp_path)}
    assert set(runs) == set(itertools.product(MODELS, BUILTIN_NORMS))
    for (model, norm), s in runs.items():
        if not layout_ok(model, norm):
            assert s["status"] == "failed" and s["error"].startswith(f"norm={norm}:"), s
            continue
        assert s["status"] == "done", (model, norm, s["error"])
        assert 0 <= s["final"]["test/accuracy"] <= 1 and s["final"]["train/loss"] > 0
        assert ("test_batchstats/accuracy" in s["final"]) == NORMS[norm].batch_statistics
    done = next(
        p.parent for p in tmp_path.rglob("summary.json") if json.loads(p.read_text())["status"] == "done"
    )
    rows = list(csv.DictReader((done / "metrics.csv").open()))
    assert {"train", "test"} <= {r["split"] for r in rows}
    assert list(rows[0]) == ["step", "epoch", "split", "metric", "value"]
    assert any(p.name.startswith("events.out.tfevents") for p in (done / "tb").iterdir())
    assert (done / ".hydra" / "config.yaml").exists()
    assert (tmp_path / "default" / "multirun.yaml").exists()


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(make_cfg, tmp_path):
    for model in MODELS:
        cfgs = [make_cfg(f"model={model}", *TINY, "seed=3") for _ in range(2)]
        texts = []
        for i, cfg in enumerate(cfgs):
            run(cfg, tmp_path / f"{model}{i}")
            texts.append((tmp_path / f"{model}{i}" / "metrics.csv").read_text())
        assert texts[0] == texts[1] and len(texts[0].splitlines()) > 3, model
    other = make_cfg("model=mlp", *TINY, "seed=4")
    run(other, tmp_path / "other")
    assert (tmp_path / "other" / "metrics.csv").read_text() != (tmp_path / "mlp0" / "metrics.csv").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model=mlp", "norm=instance"],
            r"^norm=instance: .*on model=mlp; use one of .*batch, .*group, layer",
        ),
        (["model=rnn", "norm=instance"], r"^norm=instance: .*on model=rnn"),
        (["norm=batch", "batch=1"], r"^batch=1: norm=batch .*at least 2 samples"),
        (["data.train_size=32", "batch=64"], r"^batch=64: is larger than the training set \(32 samples\)"),
        (
            ["model=resnet", "norm=group", "norm.num_groups=3"],
            r"^norm.num_groups=3: does not divide the 16 channels.*layer '",
        ),
        (["epochs=0"], r"^epochs=0: is below 1; use an integer >= 1"),
        (["batch=-4"], r"^batch=-4: is below 1; use an integer >= 1"),
        (["data.train_size=0"], r"^data.train_size=0: "),
        (["model=resnet", "model.depth=9"], r"^model.depth=9: .*6n\+2"),
        (["model=mlp", "model.width=0"], r"^model.width=0: "),
        (
            ["model=resnet", "data.task=threshold"],
            r"^data=synthetic: gives tabular inputs .*model=resnet reads image",
        ),
        (["optim.lr=0"], r"^optim.lr=0: is not above 0; use a finite number in \(0, 1e\+30\]"),
        (["log_every=0"], r"^log_every=0: is below 1; use an integer >= 1"),
        (["optim.l1=-1"], r"^optim.l1=-1: is below 0; use a finite number in \[0, 1\]"),
        pytest.param(
            ["amp=true"],
            r"^amp=True: bf16 autocast is for CUDA devices",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present"),
        ),
    ],
)
def test_bad_input_is_one_config_error_before_training(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build(make_cfg(*overrides))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_refused(make_cfg):
    with pytest.raises(ConfigError, match=r"^device=cuda: CUDA is not available"):
        build(make_cfg("device=cuda"))


def test_bad_input_on_the_command_line_is_one_line_and_exit_2(cli, tmp_path):
    result = cli("model=mlp", "norm=instance", *TINY)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        "error: norm=instance: instance norm normalises each channel of each sample over its "
        "spatial positions, and vector features have none (one value per channel and sample) on "
        "model=mlp; use one of batch, "
    )
    (s,) = summaries(tmp_path)
    assert s["status"] == "failed" and not list(tmp_path.rglob("metrics.csv"))


@pytest.mark.parametrize("mode", [["--cfg", "job"], ["--info", "all"]])
def test_two_hydra_modes_at_once_are_one_line_and_exit_2(cli, mode):
    result = cli("-m", *mode)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: Only one of --run, --multirun, --cfg, --info") and "without -m" in line


def test_unknown_option_gets_hydras_message(cli):
    result = cli("norm=bogus")
    assert result.returncode != 0 and "Could not find 'norm/bogus'" in result.stderr


def test_divergence_is_recorded_exits_non_zero_and_a_sweep_goes_on(cli, tmp_path):
    # lr 1e6 at every step, as before the defaults were piloted (scaled and warmed up, this tiny
    # run ended finite)
    old_defaults = ["sched=constant", "optim.linear_scaling=false"]
    single = cli("norm=none", "optim.lr=1e6", *old_defaults, *TINY, results=tmp_path / "single")
    assert single.returncode == 3
    assert summaries(tmp_path / "single")[0]["status"] == "diverged"
    sweep = cli("-m", "norm=none", "optim.lr=1e6,0.01", *old_defaults, *TINY, results=tmp_path / "sweep")
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert sorted(s["status"] for s in summaries(tmp_path / "sweep")) == ["diverged", "done"]


@pytest.mark.slow
def test_finished_run_is_skipped_and_force_reruns(make_cfg, tmp_path):
    first = run(make_cfg(*TINY), tmp_path)
    again = run(make_cfg(*TINY, "log_every=3"), tmp_path)  # logging frequency: same identity
    assert again["started"] == first["started"]
    forced = run(make_cfg(*TINY, "force=true"), tmp_path)
    with pytest.raises(ConfigError, match="holds a finished run of another config"):
        run(make_cfg(*TINY, "seed=1"), tmp_path)  # a different run: kept out
    changed = run(make_cfg(*TINY, "seed=1", "force=true"), tmp_path)  # replaces the old
    assert forced["status"] == changed["status"] == "done"
    assert changed["identity"] != first["identity"]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows.count("step,epoch,split,metric,value") == 1


@pytest.mark.slow
def test_identity_ignores_key_order_and_output_keys_but_not_results(make_cfg):
    base = config_identity(make_cfg("batch=4", "norm=group"))
    assert base == config_identity(make_cfg("norm=group", "batch=4"))
    assert base == config_identity(
        make_cfg("batch=4", "norm=group", "log_every=1", "name=x", "results_dir=/elsewhere", "progress=false")
    )
    for changed in (
        ["batch=8", "norm=group"],
        ["batch=4", "norm=layer"],
        ["batch=4", "norm=group", "norm.num_groups=4"],
        ["batch=4", "norm=group", "seed=1"],
    ):
        assert config_identity(make_cfg(*changed)) != base, changed


def test_train_rows_average_windows_and_stamp_global_steps():
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    rows = train_rows(losses, epoch=2, step0=5, every=2, lr_at=lambda s: 0.1 * s)
    loss_rows = [r for r in rows if r[3] == "loss"]
    assert loss_rows == [
        (7, 2, "train", "loss", 1.5),
        (9, 2, "train", "loss", 3.5),
        (10, 2, "train", "loss", 5.0),
    ]
    assert [r[4] for r in rows if r[3] == "lr"] == pytest.approx([0.6, 0.8, 0.9])


def test_batch_statistics_evaluation_leaves_running_statistics_alone(make_cfg):
    built = build(make_cfg("model=mlp", "norm=batch", *TINY))
    bn = next(m for m in built.trainer.model.modules() if hasattr(m, "running_mean"))
    before = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    evaluate_batch_statistics(built.trainer.model, built.trainer.data, batch=8)
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert int(bn.num_batches_tracked) == before[2] and built.trainer.model.training  # as before


def test_public_builders_work_without_hydra():
    from normbench.models import build_model

    model = build_model(
        "resnet",
        input_shape=(3, 32, 32),
        num_classes=10,
        norm_layer=norm_builder("group", "image", {"num_groups": 8}),
        depth=8,
    )
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_l1_penalty_covers_weight_matrices_only(make_cfg):
    built = build(make_cfg("model=mlp", "reg=l1", "optim.l1=0.01", *TINY))
    weights = [p for p in built.trainer.model.parameters() if p.dim() > 1]
    expected = 0.01 * sum(w.abs().sum() for w in weights)
    assert torch.allclose(built.trainer.penalty(), expected)
    assert build(make_cfg("model=mlp", *TINY)).trainer.penalty is None


def test_weight_rows_count_near_zero_entries_of_weight_matrices(make_cfg):
    built = build(make_cfg("model=mlp", "norm=batch", *TINY))
    weights = [p for p in built.trainer.model.parameters() if p.dim() > 1]
    with torch.no_grad():
        for w in weights:
            w.fill_(0.5)
        weights[0].view(-1)[:10] = 1e-4  # below NEAR_ZERO
        for p in built.trainer.model.parameters():
            if p.dim() == 1:
                p.fill_(0.0)  # biases and BN scales are not counted
    final: dict[str, float] = {}
    rows = Weights().at_epoch(Point(built.trainer, 1, 7, final))
    total = sum(w.numel() for w in weights)
    assert final["weights/near_zero"] == pytest.approx(10 / total)
    assert final["weights/abs_mean"] == pytest.approx((0.5 * (total - 10) + 1e-4 * 10) / total)
    assert [r[2:4] for r in rows] == [("weights", "near_zero"), ("weights", "abs_mean")]
    from normbench.report.sections import UNDECLARED_NOTES

    # the report states the cut in use: the probe's declaration, and the note of older trees
    declared = {m.name: m.note for m in Weights.metrics}["weights/near_zero"]
    for note in (declared, UNDECLARED_NOTES["weights/near_zero"]):
        stated = re.search(r"\|w\| < ([0-9.e-]+)", note)
        assert stated and float(stated.group(1)) == NEAR_ZERO


@pytest.mark.slow
def test_every_model_trains_a_step_on_a_fake_cifar10(make_cfg, tmp_path):
    from cifar_fake import make_fake_cifar

    make_fake_cifar(tmp_path / "cifar", n_per_batch=10, n_test=20)
    for model in MODELS:
        cfg = make_cfg(
            f"model={model}",
            "data=cifar10",
            f"data.root={tmp_path / 'cifar'}",
            "data.download=false",
            "data.train_size=20",
            "data.test_size=20",
            "batch=4",
            "epochs=1",
            "progress=false",
            "threads=1",
        )
        summary = run(cfg, tmp_path / model)
        assert summary["status"] == "done" and summary["steps"] == 5, model
        assert summary["config"]["data"]["name"] == "cifar10"


def test_an_unexpected_error_in_one_cell_does_not_stop_the_sweep(cli, tmp_path, monkeypatch):
    # a bug in a user's data function: no config check can foresee it
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    result = cli("-m", "data=custom", "data._target_=user_data.tiny,user_data.broken", "model=mlp", *TINY)
    assert result.returncode == 0, result.stderr[-2000:]
    statuses = sorted((s["status"], s["error"] or "") for s in summaries(tmp_path))
    assert [s for s, _ in statuses] == ["done", "failed"]
    assert statuses[1][1].startswith("RuntimeError: a bug in the user's data code")
    assert "report: " in result.stdout + result.stderr


@pytest.mark.slow
def test_channels_last_gives_the_same_numbers_on_cpu(make_cfg, tmp_path):
    plain = run(make_cfg("model=resnet", *TINY, "norm=group"), tmp_path / "plain")
    nhwc = run(make_cfg("model=resnet", *TINY, "norm=group", "channels_last=true"), tmp_path / "nhwc")
    assert nhwc["status"] == "done"
    assert nhwc["final"]["train/loss"] == pytest.approx(plain["final"]["train/loss"], rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_cuda_path_with_amp_channels_last_and_compile(make_cfg, tmp_path):
    cfg = make_cfg("model=resnet", *TINY, "device=cuda", "amp=true", "channels_last=true", "compile=true")
    summary = run(cfg, tmp_path)
    assert summary["status"] == "done" and summary["device"].startswith("cuda")


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            ["norm=batch", "activations=true", "bn_noise=true"],
            ["TrainLoss", "Evaluation", "BatchStatsEval", "DivergenceGuard", "Activations", "BNDrift"]
            + ["Weights", "PreciseBN", "BNNoise"],
        ),
        (
            ["norm=batch", "norm.precise_bn_samples=0"],
            ["TrainLoss", "Evaluation", "BatchStatsEval", "DivergenceGuard", "BNDrift", "Weights"],
        ),
        (["model=resnet", "norm=group"], ["TrainLoss", "Evaluation", "DivergenceGuard", "Weights"]),
    ],
)
def test_build_picks_the_probes_the_config_and_the_norms_call_for(make_cfg, overrides, expected):
    probes = [type(p).__name__ for p in build(make_cfg(*overrides, *TINY)).probes]
    assert probes == expected


def test_precise_bn_logs_the_samples_it_used_not_the_ones_asked_for(cli):
    # 1024 asked (the default), 32 training samples: the statistics come from 32
    result = cli("model=mlp", "norm=batch", "norm.precise_bn_samples=1024", *TINY)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "precise BN over 32 samples" in result.stdout + result.stderr


def test_a_summary_nested_thousands_deep_is_started_over_not_a_recursion_error(cli, tmp_path):
    assert cli(*TINY).returncode == 0
    (summary,) = tmp_path.rglob("summary.json")
    summary.write_text('{"status": "done", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    again = cli(*TINY)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "RecursionError" not in again.stderr
    assert json.loads(summary.read_text())["status"] == "done"
