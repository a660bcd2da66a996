"""Fused seeds (normbench.run.fused): each member trains, measures and writes exactly what its
unfused run does, to float reassociation."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import NO_REPORT, summaries
from omegaconf import OmegaConf
from torch import nn

from normbench.run import record
from normbench.run.fused import plan
from normbench.run.fused.stack import MemberRng, Stack, check_stackable
from normbench.run.fused.stepper import run_group
from normbench.run.runner import build, run
from normbench.sweep.fused_sweeper import fuse_jobs

# 80 samples at batch 8: one epoch is the 10 steps the issue asks about
SMALL = ["data.train_size=80", "data.test_size=32", "batch=8", "epochs=1", "progress=false", "threads=1"]
CASES = [
    ("mlp", "batch"),
    ("mlp", "group"),
    ("mlp", "layer"),
    ("resnet", "batch"),
    pytest.param("resnet", "group", marks=pytest.mark.slow),  # fast tier: one case per model
    pytest.param("resnet", "layer", marks=pytest.mark.slow),
    pytest.param("resnet", "instance", marks=pytest.mark.slow),
    pytest.param("rnn", "batch", marks=pytest.mark.slow),
    ("rnn", "layer"),
]
# recurrent BN at batch 8 is chaotic: one ulp on one weight of an unfused run moves its weights
# by 0.9% after 10 steps; at batch 32 it is not (measured), so that case runs there
BIGGER = {("rnn", "batch"): ["data.train_size=320", "batch=32"]}
SMALL4 = ["data.train_size=40", "data.test_size=16", "batch=4", "epochs=2", "progress=false", "threads=1"]
# float reassociation: a vmapped conv is a grouped conv, a matmul a bmm. After 10 steps it moves
# the norms' biases (norm ~1e-3) by up to 1.75e-5 on an AMD EPYC (batch renorm at batch 4) and
# 2.05e-5 on another EPYC (GN + weight standardisation under vmap), while a one-ulp nudge of the
# initial weights moves them by ~1e-9: this is per-step rounding, not chaos, and its size
# depends on the CPU kind, so ATOL leaves 2.5x over the largest seen on any kind.
RTOL, ATOL = 1e-4, 5e-5


def assert_close(fused: torch.Tensor, alone: torch.Tensor, what: str, rtol: float = RTOL) -> None:
    """Relative to the tensor's size (norm), not entry by entry: after 10 steps of BN at batch 8
    an entry near zero can differ by 1e-5 while the tensor agrees to 1e-6 of its norm; ATOL
    covers the norms' biases, whose norm is ~1e-3 after 10 steps."""
    if not fused.dtype.is_floating_point:
        assert torch.equal(fused, alone), what
        return
    error = (fused.double() - alone.double()).norm().item()
    assert error <= rtol * alone.double().norm().item() + ATOL, f"{what}: |diff| {error:.3g}"


def stacked(make_cfg, seeds, *overrides):
    trainers, rngs = [], []
    for seed in seeds:
        cfg = make_cfg(*overrides, f"seed={seed}")
        trainers.append(build(cfg).trainer)
        rngs.append(MemberRng.capture())
    return Stack(trainers, rngs, l1=cfg.optim.l1), trainers


@pytest.mark.slow
@pytest.mark.parametrize(("model", "norm"), CASES)
def test_members_start_as_unfused_runs_and_match_them_after_10_steps(make_cfg, model, norm):
    check_10_steps(make_cfg, [f"model={model}", f"norm={norm}", *SMALL, *BIGGER.get((model, norm), [])])


@pytest.mark.parametrize(
    "options",
    [
        [
            "reg=l1",
            "optim.weight_decay=1e-3",
            "sched=step",
            "sched.warmup_epochs=0.5",
            "sched.milestones=[0.3]",
        ],
        ["optim=adam", "optim.weight_decay=1e-3", "optim.linear_scaling=false"],
        pytest.param(
            ["model=resnet", "norm=group", "norm.weight_std=true", "batch=4", "data.train_size=40"],
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ["model=resnet", "norm=batch_renorm", "batch=4", "data.train_size=40"], marks=pytest.mark.slow
        ),
        pytest.param(["model=resnet", "norm=ghost_batch", "norm.ghost_size=4"], marks=pytest.mark.slow),
        ["data.resample=true"],  # each member its own data draw: gathered member by member
        ["model=rnn", "model.cell=gru", "norm=group8"],
        pytest.param(["model=rnn", "norm=layer", "data.task=images"], marks=pytest.mark.slow),
    ],
)
def test_optimizer_options_schedules_and_norm_variants_match_unfused_runs(make_cfg, options):
    keys = {o.split("=")[0] for o in options}
    check_10_steps(make_cfg, [*options, *(o for o in SMALL if o.split("=")[0] not in keys)])


@pytest.mark.slow
def test_each_member_draws_its_own_augmentation_as_its_unfused_run(make_cfg, tmp_path):
    from cifar_fake import make_fake_cifar

    make_fake_cifar(tmp_path / "cifar", n_per_batch=10, n_test=20)
    cifar = ["data=cifar10", f"data.root={tmp_path / 'cifar'}", "data.download=false", "data.train_size=40"]
    overrides = ["model=resnet", "norm=batch", *cifar, "data.test_size=20", "batch=4", "epochs=2"]
    overrides += ["progress=false", "threads=1"]
    assert build(make_cfg(*overrides)).trainer.data.augment is not None
    fused = run_group(make_cfg(*overrides), [0, 1], [tmp_path / "fused" / str(s) for s in (0, 1)])
    assert [s["status"] for s in fused] == ["done", "done"] and fused[0]["fused_with"] == [0, 1]
    for seed in (0, 1):
        run(make_cfg(*overrides, f"seed={seed}"), tmp_path / "alone" / str(seed))
        assert_same_rows(tmp_path / "fused" / str(seed), tmp_path / "alone" / str(seed))


# one case per layout in the fast tier (a compose and two models each, ~0.5 s); the rest in the suite
@pytest.mark.parametrize(
    ("overrides", "layout"),
    [
        (["model=resnet", "norm=batch"], "channels"),
        pytest.param(["model=resnet", "norm=group8"], "channels", marks=pytest.mark.slow),
        pytest.param(["model=resnet", "norm=layer"], "channels", marks=pytest.mark.slow),
        pytest.param(["model=resnet", "norm=instance"], "channels", marks=pytest.mark.slow),
        pytest.param(["model=resnet", "norm=none"], "channels", marks=pytest.mark.slow),
        pytest.param(["model=mlp", "norm=batch"], "channels", marks=pytest.mark.slow),
        pytest.param(["model=mlp", "norm=group8"], "channels", marks=pytest.mark.slow),
        pytest.param(["model=mlp", "norm=layer"], "channels", marks=pytest.mark.slow),
        (["model=rnn", "norm=layer"], "members"),  # gates.chunk(4) would split channel blocks
        pytest.param(["model=rnn", "norm=batch", "model.cell=gru"], "members", marks=pytest.mark.slow),
        pytest.param(["model=rnn", "norm=none"], "members", marks=pytest.mark.slow),
        (["model=resnet", "norm=group8", "norm.weight_std=true"], "vmap"),  # a ParametrizedConv2d
        pytest.param(
            ["model=resnet", "norm=ghost_batch", "norm.ghost_size=4"], "vmap", marks=pytest.mark.slow
        ),
        pytest.param(["model=mlp", "norm=batch_renorm"], "vmap", marks=pytest.mark.slow),
        pytest.param(["model=rnn", "norm=batch_renorm"], "vmap", marks=pytest.mark.slow),
    ],
)
def test_the_stacked_forward_is_taken_where_every_module_has_one(make_cfg, overrides, layout):
    stack, _ = stacked(make_cfg, [0, 1], *overrides, *SMALL)
    assert stack.layout == layout


@pytest.mark.parametrize(("model", "layer"), [("resnet", "stages.0.0"), ("rnn", "layers.0")])
def test_a_model_class_is_stacked_by_its_own_entry_in_the_layout_table_not_inherited(make_cfg, model, layer):
    from normbench.run.fused.layout import why_not_stacked

    model = build(make_cfg(f"model={model}", "norm=batch", *SMALL)).trainer.model
    assert why_not_stacked(model) is None
    own = type(model)
    model.__class__ = type("Subclass", (own,), {})  # could compute anything in its forward
    assert why_not_stacked(model) == "the model is a Subclass"
    model.__class__ = own
    module = model.get_submodule(layer)
    module.__class__ = type("Layer", (type(module),), {})
    assert why_not_stacked(model) == f"{layer} is a Layer"


def _members_and_input(
    make: Callable[[], nn.Module], shape: tuple[int, ...]
) -> tuple[list[nn.Module], torch.Tensor]:
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        module = make()
        for p in module.parameters():  # not torch's ones and zeros: members must differ
            p.data.normal_()
        members.append(module)
    return members, torch.randn(3, *shape, requires_grad=True)  # (S, B, C, ...)


@pytest.mark.parametrize(
    ("make", "shape", "layout"),
    [
        # few input channels (on a CPU member by member), many (grouped), 1x1 (a matmul)
        (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=True), (2, 4, 5, 5), "channels"),
        (lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2, padding_mode="reflect"), (2, 4, 5, 5), "channels"),
        (lambda: nn.Conv2d(16, 6, 3, padding=1, bias=True), (2, 16, 5, 5), "channels"),
        (lambda: nn.Conv2d(4, 6, 1, stride=2, bias=False), (2, 4, 5, 5), "channels"),
        (lambda: nn.Linear(6, 5), (2, 6), "channels"),
        (lambda: nn.Linear(6, 5, bias=False), (2, 6), "channels"),
        (lambda: nn.BatchNorm2d(4), (2, 4, 3, 3), "channels"),
        (lambda: nn.BatchNorm2d(4, momentum=None), (2, 4, 3, 3), "channels"),
        (lambda: nn.BatchNorm1d(4, affine=False), (3, 4), "channels"),
        (lambda: nn.GroupNorm(2, 4), (2, 4, 3, 3), "channels"),
        (lambda: nn.GroupNorm(1, 4, affine=False), (2, 4, 3, 3), "channels"),
        (lambda: nn.BatchNorm2d(4, track_running_stats=False), (2, 4, 3, 3), "channels"),
        (lambda: nn.InstanceNorm2d(4, affine=True), (2, 4, 3, 3), "channels"),
        (lambda: nn.InstanceNorm2d(4, track_running_stats=True), (2, 4, 3, 3), "channels"),
        (lambda: nn.LayerNorm(6), (2, 6), "channels"),
        (lambda: nn.Linear(6, 5), (2, 6), "members"),  # the RNN: members a second batch dim
        (lambda: nn.Linear(6, 5, bias=False), (2, 4, 6), "members"),  # (B, T, F): w_x
        (lambda: nn.BatchNorm1d(4), (3, 4), "members"),
        (lambda: nn.GroupNorm(2, 4), (3, 4), "members"),
        (lambda: nn.LayerNorm(6), (2, 6), "members"),
    ],
)
def test_each_stacked_forward_computes_its_members_forwards(make, shape, layout):
    from torch.func import stack_module_state

    from normbench.run.fused.layout import stacked_forward

    members, x = _members_and_input(make, shape)
    params, buffers = stack_module_state(members)
    forward = stacked_forward(members[0], 3, layout=layout)
    for _ in range(2):  # twice: BN's running statistics and counts, updated in place
        out = forward(params, buffers, x)
        alone = torch.stack([m(xi) for m, xi in zip(members, x, strict=True)])  # (S, B, C, ...)
        assert_close(out, alone, "output")
    out.square().sum().backward()
    alone.square().sum().backward()
    for name, _ in members[0].named_parameters():  # each member's gradient from its own block
        assert_close(params[name].grad, torch.stack([m.get_parameter(name).grad for m in members]), name)
    for name, _ in members[0].named_buffers():
        assert_close(buffers[name], torch.stack([m.get_buffer(name) for m in members]), name)


class _Recurrent(nn.Module):
    """One Linear used at three steps, as W_h in a recurrent cell (run in the members layout:
    the test adds it to the layout table)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(3):
            x = torch.tanh(self.w(x))
        return x


def test_a_weight_used_at_every_step_gets_the_sum_of_its_members_gradients_each_pass(monkeypatch):
    """The members layout makes a Linear's gradient once per pass, from all its uses: two
    passes before one backward keep their own uses, and a pass without grad records none."""
    from torch.func import stack_module_state

    from normbench.run.fused.layout import OWN_LAYOUTS, stacked_forward

    monkeypatch.setitem(OWN_LAYOUTS, _Recurrent, "members")
    members, x = _members_and_input(_Recurrent, (2, 4))
    params, _ = stack_module_state(members)
    forward = stacked_forward(members[0], 3)
    with torch.no_grad():
        forward(params, {}, x)
    out = forward(params, {}, x).square().sum() + forward(params, {}, 2 * x).sum()
    out.backward()
    x_alone = x.detach().clone().requires_grad_()
    alone = sum(m(xi).square().sum() + m(2 * xi).sum() for m, xi in zip(members, x_alone, strict=True))
    alone.backward()
    for name in ("w.weight", "w.bias"):
        assert_close(params[name].grad, torch.stack([m.get_parameter(name).grad for m in members]), name)
    assert_close(x.grad, x_alone.grad, "input")


def check_10_steps(make_cfg, overrides: list[str]) -> None:
    """Fused members start exactly as their unfused runs and match them after an epoch."""
    stack, members = stacked(make_cfg, [0, 1], *overrides)
    resampled = "data.resample=true" in overrides
    assert stack.shared_data is not resampled
    alone = [build(make_cfg(*overrides, f"seed={seed}")).trainer for seed in (0, 1)]
    for i, trainer in enumerate(alone):  # the same init, exactly, and different across seeds
        for name, p in trainer.model.named_parameters():
            assert torch.equal(stack.params[name][i], p), name
    weight = next(n for n in stack.names if stack.params[n].dim() > 2)
    assert not torch.equal(stack.params[weight][0], stack.params[weight][1])

    losses = stack.train_epoch()  # (steps, 2)
    stack.unstack()
    assert losses.shape == (members[0].steps_per_epoch, 2)
    for i, trainer in enumerate(alone):
        torch.testing.assert_close(losses[:, i], trainer.train_epoch(), rtol=RTOL, atol=ATOL)  # each step
        fused_state, own_state = members[i].model.state_dict(), trainer.model.state_dict()
        for name, value in own_state.items():  # parameters and BN's running statistics
            assert_close(fused_state[name], value, name)
        fused_opt, own_opt = members[i].optimizer.state_dict(), trainer.optimizer.state_dict()
        for j, state in own_opt["state"].items():  # each member's own slice of momentum, moments
            for key, value in state.items():  # sums of gradients: BN biases' cancel to 1e-2
                assert_close(fused_opt["state"][j][key], value, f"optimizer {j} {key}", rtol=5e-2)


def read_rows(run_dir: Path) -> list[list[str]]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.reader(f))


def assert_same_rows(fused: Path, alone: Path) -> None:
    a, b = read_rows(fused), read_rows(alone)
    assert [r[:4] for r in a] == [r[:4] for r in b]
    for x, y in zip(a[1:], b[1:], strict=True):
        assert float(x[4]) == pytest.approx(float(y[4]), rel=RTOL, abs=ATOL, nan_ok=True), x


@pytest.mark.slow
def test_a_fused_group_writes_what_the_unfused_runs_write(make_cfg, tmp_path):
    # batch 4: above it a CPU trains ResNets faster unfused (normbench.run.fused.plan)
    overrides = ["model=resnet", "norm=batch", "norm.precise_bn_samples=16", "activations=true", *SMALL4]
    cfg = make_cfg(*overrides)
    fused = run_group(cfg, [0, 1, 2], [tmp_path / "fused" / str(s) for s in (0, 1, 2)])
    for seed, summary in zip((0, 1, 2), fused, strict=True):
        alone = run(make_cfg(*overrides, f"seed={seed}"), tmp_path / "alone" / str(seed))
        assert summary["status"] == alone["status"] == "done"
        assert summary["fused_with"] == [0, 1, 2] and summary["config"]["seed"] == seed
        assert set(summary) == set(alone) | {"fused_with"}
        assert summary["identity"] == alone["identity"]
        assert_same_rows(tmp_path / "fused" / str(seed), tmp_path / "alone" / str(seed))
        assert list((tmp_path / "fused" / str(seed) / "tb").iterdir())
        assert not (tmp_path / "fused" / str(seed) / "checkpoint.pt").exists()


@pytest.mark.slow
def test_a_diverging_member_ends_diverged_and_leaves_the_others_alone(make_cfg, tmp_path, monkeypatch):
    import normbench.run.runner

    def build_with_a_nan(cfg):
        built = build(cfg)
        if cfg.seed == 1:  # a NaN weight: this member's loss is NaN from its first step
            with torch.no_grad():
                next(built.trainer.model.parameters()).view(-1)[0] = float("nan")
        return built

    cfg = make_cfg("model=resnet", "norm=batch", *SMALL4)
    without = run_group(cfg, [0, 2], [tmp_path / "without" / str(s) for s in (0, 2)])
    monkeypatch.setattr(normbench.run.runner, "build", build_with_a_nan)  # as each member builds
    with_it = run_group(cfg, [0, 1, 2], [tmp_path / "with" / str(s) for s in (0, 1, 2)])
    assert [s["status"] for s in with_it] == ["done", "diverged", "done"]
    assert with_it[1]["epochs_done"] == 1  # stopped after the epoch that went NaN
    for seed, summary in zip((0, 2), without, strict=True):
        assert summary["status"] == "done"
        assert_same_rows(tmp_path / "with" / str(seed), tmp_path / "without" / str(seed))


@pytest.mark.slow
def test_an_interrupted_group_resumes_every_member_without_duplicated_rows(make_cfg, tmp_path, monkeypatch):
    overrides = ["model=mlp", "norm=batch", *SMALL]
    overrides[-3] = "epochs=3"
    cfg = make_cfg(*overrides)
    whole = run_group(cfg, [0, 1], [tmp_path / "whole" / str(s) for s in (0, 1)])

    epochs = {"n": 0}
    train_epoch = Stack.train_epoch

    def interrupted_in_epoch_2(self, *args, **kwargs):
        epochs["n"] += 1
        if epochs["n"] == 2:
            raise KeyboardInterrupt  # what SIGTERM raises (normbench.run.interrupt)
        return train_epoch(self, *args, **kwargs)

    monkeypatch.setattr(Stack, "train_epoch", interrupted_in_epoch_2)
    dirs = [tmp_path / "killed" / str(s) for s in (0, 1)]
    first = run_group(cfg, [0, 1], dirs)
    assert [s["status"] for s in first] == ["interrupted", "interrupted"]
    assert all((d / "checkpoint.pt").exists() for d in dirs)
    monkeypatch.undo()
    resumed = run_group(cfg, [0, 1], dirs)
    assert [s["status"] for s in resumed] == ["done", "done"]
    for seed, summary in zip((0, 1), whole, strict=True):
        assert resumed[seed]["final"] == pytest.approx(summary["final"], rel=RTOL)
        assert_same_rows(dirs[seed], tmp_path / "whole" / str(seed))
        rows = [tuple(r[:4]) for r in read_rows(dirs[seed])]
        assert len(rows) == len(set(rows))


def test_ctrl_c_in_members_run_one_after_another_starts_no_further_member(make_cfg, tmp_path, monkeypatch):
    from normbench.run.train import Trainer

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C in the first member's first epoch

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    cfg = make_cfg("model=mlp", "norm=batch", "norm.impl=reference", *SMALL)  # the plan: unfused
    dirs = [tmp_path / str(s) for s in (0, 1, 2)]
    assert [s["status"] for s in run_group(cfg, [0, 1, 2], dirs)] == ["interrupted"]
    assert record.read_summary(dirs[1]) is None and record.read_summary(dirs[2]) is None


def test_a_finished_member_is_skipped_and_the_rest_train_fused(make_cfg, tmp_path, caplog):
    overrides = ["model=mlp", "norm=layer", *SMALL]
    run(make_cfg(*overrides, "seed=1"), tmp_path / "1")  # an unfused run, finished before
    before = (tmp_path / "1" / "summary.json").read_text()
    with caplog.at_level(logging.INFO, logger="normbench"):
        done = run_group(make_cfg(*overrides), [0, 1, 2], [tmp_path / str(s) for s in (0, 1, 2)])
    assert [s["status"] for s in done] == ["done", "done", "done"]
    assert (tmp_path / "1" / "summary.json").read_text() == before
    assert done[0]["fused_with"] == [0, 2] and "fused_with" not in done[1]


def test_a_member_that_cannot_start_fails_alone(make_cfg, tmp_path):
    from normbench.errors import ConfigError

    run(make_cfg("model=mlp", "norm=layer", *SMALL, "seed=1"), tmp_path / "1")  # another config's run
    dirs = [tmp_path / str(s) for s in (0, 1, 2)]
    with pytest.raises(ConfigError, match="holds a finished run of another config"):
        run_group(make_cfg("model=mlp", "norm=batch", *SMALL), [0, 1, 2], dirs)
    assert [record.read_summary(tmp_path / str(s))["status"] for s in (0, 2)] == ["done", "done"]
    assert record.read_summary(tmp_path / "1")["config"]["norm"]["name"] == "layer"  # left alone


@pytest.mark.parametrize("impl", ["torch", "reference"])  # fused, and run one after another (the plan)
def test_a_member_whose_directory_another_process_holds_fails_alone(make_cfg, tmp_path, impl):
    import fcntl
    import os

    from normbench.errors import ConfigError

    dirs = [tmp_path / str(s) for s in (0, 1, 2)]
    dirs[1].mkdir()
    fd = os.open(dirs[1] / ".lock", os.O_RDWR | os.O_CREAT)  # another run of seed 1, still going
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(ConfigError, match="is in use by another process"):
            run_group(make_cfg("model=mlp", "norm=batch", f"norm.impl={impl}", *SMALL), [0, 1, 2], dirs)
    finally:
        os.close(fd)
    assert [record.read_summary(d)["status"] for d in (dirs[0], dirs[2])] == ["done", "done"]
    assert record.read_summary(dirs[1]) is None  # the other process's run, left alone


def test_a_member_that_cannot_start_fails_alone_when_the_plan_runs_them_one_after_another(make_cfg, tmp_path):
    from normbench.errors import ConfigError

    run(make_cfg("model=mlp", "norm=layer", *SMALL, "seed=1"), tmp_path / "1")  # another config's run
    dirs = [tmp_path / str(s) for s in (0, 1, 2)]
    with pytest.raises(ConfigError, match="holds a finished run of another config"):
        run_group(make_cfg("model=mlp", "norm=batch", "norm.impl=reference", *SMALL), [0, 1, 2], dirs)
    assert [record.read_summary(tmp_path / str(s))["status"] for s in (0, 2)] == ["done", "done"]
    assert record.read_summary(tmp_path / "1")["config"]["norm"]["name"] == "layer"  # left alone


@pytest.mark.parametrize("impl", ["torch", "reference"])  # fused, and run one after another (the plan)
def test_ctrl_c_beside_a_member_that_cannot_start_still_stops_the_sweep(
    make_cfg, tmp_path, monkeypatch, impl
):
    # the job must report interrupted (the sweep stops), not the other member's refusal (failed)
    from normbench.run.train import Trainer

    run(make_cfg("model=mlp", "norm=layer", *SMALL, "seed=1"), tmp_path / "1")  # another config's run

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Stack, "train_epoch", interrupted)
    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    cfg = make_cfg("model=mlp", "norm=batch", f"norm.impl={impl}", *SMALL)
    done = run_group(cfg, [0, 1, 2], [tmp_path / str(s) for s in (0, 1, 2)])
    assert "interrupted" in [s["status"] for s in done]


def test_what_cannot_be_fused_runs_unfused_with_one_line_saying_why(make_cfg, tmp_path, caplog, monkeypatch):
    cfg = make_cfg("model=mlp", "norm=batch", "reg=dropout", *SMALL)
    assert plan.why_not(cfg, 2).startswith("model.dropout=0.5: ")
    monkeypatch.setattr(plan, "why_not", lambda cfg, seeds: None)  # the job's own trial step finds it
    with caplog.at_level(logging.INFO, logger="normbench"):
        done = run_group(cfg, [0, 1], [tmp_path / str(s) for s in (0, 1)])
    (line,) = [r.message for r in caplog.records if "one after another" in r.message]
    why = "dropout draws differ under vmap from the unfused run's draws"
    assert line == f"seeds [0, 1] run one after another: {why}"
    assert [s["status"] for s in done] == ["done", "done"] and "fused_with" not in done[0]
    alone = tmp_path / "alone"
    run(make_cfg("model=mlp", "norm=batch", "reg=dropout", *SMALL, "seed=1"), alone)
    assert_same_rows(tmp_path / "1", alone)


@pytest.mark.slow
def test_the_plan_keeps_compile_channels_last_and_slow_batches_unfused(make_cfg):
    assert plan.why_not(make_cfg("model=mlp", "compile=true"), 5).startswith("compile=true")
    assert plan.why_not(make_cfg("model=resnet", "channels_last=true"), 5).startswith("channels_last=true")
    assert plan.why_not(make_cfg("model=resnet", "batch=2", "device=cpu"), 5) is None
    limit = plan.MAX_BATCH["cpu"]["resnet"]
    slow = make_cfg("model=resnet", f"batch={limit * 2}", "device=cpu")
    assert f"above batch {limit}" in plan.why_not(slow, 5)
    assert plan.why_not(make_cfg("model=mlp"), 1) == "a single seed"
    assert plan.why_not(make_cfg("model=mlp", "norm.impl=reference"), 5).startswith("norm.impl=reference: ")


def test_reference_norms_either_stack_or_say_why(make_cfg):
    overrides = ["model=mlp", "norm=batch", "norm.impl=reference", *SMALL]
    members = [build(make_cfg(*overrides, f"seed={s}")) for s in (0, 1)]
    why = check_stackable([b.trainer for b in members])
    assert why is None or why.startswith("vmap rejects it (")


def test_the_fused_key_stays_out_of_directory_names():
    from normbench.run.fused import FUSED_KEY
    from normbench.run.identity import JOB_KEYS

    assert FUSED_KEY in JOB_KEYS


def test_the_sweeper_merges_jobs_that_differ_only_in_seed():
    jobs = [
        ["norm=batch", "seed=0"],
        ["norm=batch", "seed=1"],
        ["norm=layer", "seed=0"],
        ["norm=layer", "seed=1"],
        ["norm=group", "seed=0"],
    ]
    refused = {("norm=layer", "seed=0")}
    fused = fuse_jobs(jobs, lambda job, n: "slow" if tuple(job) in refused else None)
    assert fused == [
        ["norm=batch", "seed=0", "+fused_seeds=[0,1]"],
        ["norm=layer", "seed=0"],
        ["norm=layer", "seed=1"],
        ["norm=group", "seed=0"],
    ]


@pytest.mark.parametrize("text", ["007", "01"])
def test_seeds_that_are_not_hydra_integers_stay_unfused(text):
    # Hydra reads seed=007 as text, which the run refuses; fused it would train seed 7 in seed=7/
    jobs = [["norm=batch", f"seed={text}"], ["norm=batch", "seed=2"]]
    assert fuse_jobs(jobs, lambda job, n: None) == jobs


def test_a_members_overrides_keep_the_seed_overrides_prefix():
    # ++seed=0,1: Hydra names the unfused runs' directories ++seed=0,... and ++seed=1,...; the
    # fused members must land in the same ones, or a rerun in the other mode trains them again
    from normbench.sweep.fused_job import member_overrides

    task = ["++seed=0", "norm=batch", "+fused_seeds=[0,1]"]
    assert member_overrides(task, 1) == ["++seed=1", "norm=batch"]
    assert member_overrides(["seed=0", "+fused_seeds=[0,1]"], 1) == ["seed=1"]


def without_results_dir(overrides: list[str]) -> list[str]:
    return [o.removeprefix("- ") for o in overrides if "results_dir=" not in o]


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent.relative_to(root) for p in root.rglob("summary.json"))


def test_a_fused_sweep_writes_the_runs_an_unfused_sweep_writes(cli, tmp_path):
    grid = ["model=mlp", "norm=batch,layer", "seed=0,1,2", *SMALL]
    fused = cli("-m", "hydra/sweeper=fused", *grid, NO_REPORT, results=tmp_path / "fused")
    assert fused.returncode == 0, fused.stderr[-2000:]
    assert (fused.stdout + fused.stderr).count("+fused_seeds=[0,1,2]") == 2  # two jobs, one per norm
    alone = cli("-m", *grid, NO_REPORT, results=tmp_path / "alone")
    assert alone.returncode == 0, alone.stderr[-2000:]
    runs = run_dirs(tmp_path / "alone")
    assert len(runs) == 6 and runs == run_dirs(tmp_path / "fused")
    for run_dir in runs:
        a, b = (json.loads((tmp_path / k / run_dir / "summary.json").read_text()) for k in ("fused", "alone"))
        assert a["fused_with"] == [0, 1, 2] and set(a) == set(b) | {"fused_with"}
        assert (a["identity"], a["status"]) == (b["identity"], b["status"])
        assert without_results_dir(a["overrides"]) == without_results_dir(b["overrides"])
        assert_same_rows(tmp_path / "fused" / run_dir, tmp_path / "alone" / run_dir)
        recorded = [
            (tmp_path / k / run_dir / ".hydra" / "overrides.yaml").read_text() for k in ("fused", "alone")
        ]
        assert [without_results_dir(r.splitlines()) for r in recorded] == [
            without_results_dir(a["overrides"])
        ] * 2
        # Hydra's record of the job: the member's own, not the fused job's (its first member's)
        hydra = [
            OmegaConf.load(tmp_path / k / run_dir / ".hydra" / "hydra.yaml").hydra for k in ("fused", "alone")
        ]
        assert hydra[0].job.override_dirname == hydra[1].job.override_dirname == run_dir.name
        assert hydra[0].runtime.output_dir == str(tmp_path / "fused" / run_dir)
        assert without_results_dir(hydra[0].overrides.task) == without_results_dir(a["overrides"])
    rerun = cli("-m", *grid, NO_REPORT, results=tmp_path / "fused")  # an unfused rerun skips them all
    assert rerun.returncode == 0 and (rerun.stdout + rerun.stderr).count("already done, skipping") == 6


def test_bad_input_in_a_fused_sweep_fails_every_member_before_training(cli, tmp_path):
    result = cli("-m", "hydra/sweeper=fused", "model=mlp", "norm=instance", "seed=0,1", *SMALL)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines and lines[0].startswith("error: norm=instance: instance norm normalises each channel")
    assert sorted(s["status"] for s in summaries(tmp_path)) == ["failed", "failed"]
    assert not list(tmp_path.rglob("metrics.csv"))


def test_a_fused_sweep_names_each_diverged_member_in_its_log_line(cli, tmp_path):
    # a rate no MLP survives: both members diverge, and each line names its own directory
    result = cli("-m", "hydra/sweeper=fused", "model=mlp", "seed=0,1", "optim.lr=1e12", *SMALL)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "run diverged: " in line]
    named = sorted(line.rsplit(",", 1)[-1] for line in lines)
    assert sorted(s["status"] for s in summaries(tmp_path)) == ["diverged", "diverged"]
    assert named == ["seed=0", "seed=1"], lines


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_cuda_path_matches_unfused_runs(make_cfg, tmp_path):
    overrides = ["model=resnet", "norm=batch", "device=cuda", *SMALL]
    fused = run_group(make_cfg(*overrides), [0, 1], [tmp_path / "fused" / str(s) for s in (0, 1)])
    assert [s["status"] for s in fused] == ["done", "done"]
    for seed in (0, 1):
        run(make_cfg(*overrides, f"seed={seed}"), tmp_path / "alone" / str(seed))
        a, b = read_rows(tmp_path / "fused" / str(seed)), read_rows(tmp_path / "alone" / str(seed))
        assert [r[:4] for r in a] == [r[:4] for r in b]
        for x, y in zip(a[1:], b[1:], strict=True):  # TF32 and cuDNN algorithms: looser than CPU
            assert float(x[4]) == pytest.approx(float(y[4]), rel=1e-2, abs=1e-4), x
    assert record.read_summary(tmp_path / "fused" / "0")["device"] != "cpu"


# ~1 s per epoch: a kill lands in epoch 2 or 3, after every member's first checkpoint
KILLED_GRID = ["model=mlp", "norm=batch", "seed=0,1", "data.train_size=4000", "data.test_size=32"]
KILLED_GRID += ["batch=8", "epochs=4", "progress=false", "threads=1"]


@pytest.fixture(scope="module")
def uninterrupted_fused_sweep(tmp_path_factory) -> Path:
    """KILLED_GRID's fused sweep, run to its end once for both signals."""
    from conftest import run_python

    whole = tmp_path_factory.mktemp("whole")
    result = run_python("run.py", "-m", "hydra/sweeper=fused", *KILLED_GRID, NO_REPORT, results=whole)
    assert result.returncode == 0, result.stderr[-2000:]
    return whole


@pytest.mark.xdist_group("fused_killed")  # one worker: the uninterrupted sweep is run once
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_a_fused_sweep_killed_mid_epoch_resumes_every_member_without_duplicated_rows(
    cli, tmp_path, signal_name, uninterrupted_fused_sweep
):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    grid = KILLED_GRID
    args = [sys.executable, "run.py", "-m", "hydra/sweeper=fused", *grid, NO_REPORT]
    env = {**os.environ, "CI": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [*args, f"results_dir={killed}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while (
        len(list(killed.rglob("checkpoint.pt"))) < 2 and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    proc.send_signal(getattr(signal, signal_name))
    returncode = proc.wait()
    assert len(list(killed.rglob("checkpoint.pt"))) == 2  # killed before the end
    if signal_name == "SIGTERM":  # every member records it; the sweep exits 130
        assert returncode == 130
        assert [s["status"] for s in summaries(killed)] == ["interrupted", "interrupted"]
    assert not [s for s in summaries(killed) if s["status"] == "done"]

    rerun = cli("-m", "hydra/sweeper=fused", *grid, NO_REPORT, results=killed)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert (rerun.stdout + rerun.stderr).count("resuming after epoch") == 2
    whole = uninterrupted_fused_sweep
    runs = run_dirs(killed)
    assert len(runs) == 2 and runs == run_dirs(whole)
    for run_dir in runs:
        assert record.read_summary(killed / run_dir)["status"] == "done"
        rows = [tuple(r[:4]) for r in read_rows(killed / run_dir)]
        assert len(rows) == len(set(rows))  # no duplicated rows
        assert_same_rows(killed / run_dir, whole / run_dir)


@pytest.mark.slow
def test_eval_every_and_train_eval_in_a_fused_group_write_the_unfused_rows(make_cfg, tmp_path):
    # eval_every=2 over 3 epochs: epoch 1 has no test score, which the log line must not read
    overrides = ["model=mlp", "norm=batch", "eval_every=2", "train_eval_size=16", *SMALL4, "epochs=3"]
    fused = run_group(make_cfg(*overrides), [0, 1], [tmp_path / "fused" / str(s) for s in (0, 1)])
    assert [s["status"] for s in fused] == ["done", "done"]
    for seed in (0, 1):
        run(make_cfg(*overrides, f"seed={seed}"), tmp_path / "alone" / str(seed))
        assert_same_rows(tmp_path / "fused" / str(seed), tmp_path / "alone" / str(seed))


@pytest.mark.parametrize(
    "bad",
    [
        ["+fused_seeds=5", "seed=5"],  # not a list
        ["+fused_seeds=[a,b]", "seed=0"],  # not integers
        ["+fused_seeds=[1,1]", "seed=1"],  # one directory twice
        ["+fused_seeds=[0,1]"],  # no seed=: every member would get the same directory
        ["+fused_seeds=[0,1]", "seed=3"],  # seed=3 would be silently ignored
    ],
)
def test_fused_seeds_set_by_hand_is_refused_in_one_line(cli, tmp_path, bad):
    result = cli(*bad, "model=mlp", *SMALL)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: fused_seeds="), lines[-3:]
    assert "hydra/sweeper=fused seed=" in lines[-1]
    assert "Traceback" not in result.stderr and not list(tmp_path.rglob("metrics.csv"))


def test_every_member_logs_its_own_lines_into_its_own_run_log(make_cfg, tmp_path, caplog):
    # Hydra's file handler writes the job's log in its output directory, the first member's
    dirs = [tmp_path / str(s) for s in (0, 1, 2)]
    dirs[0].mkdir()
    job_log = logging.FileHandler(dirs[0] / "run.log", delay=True)
    root = logging.getLogger()
    root.addHandler(job_log)
    caplog.set_level(logging.INFO, logger="normbench")
    try:
        done = run_group(make_cfg("model=mlp", "norm=batch", *SMALL4), [0, 1, 2], dirs)
    finally:
        root.removeHandler(job_log)
        job_log.close()
    assert [s["status"] for s in done] == ["done"] * 3 and done[0]["fused_with"] == [0, 1, 2]
    for seed, run_dir in enumerate(dirs):
        lines = (run_dir / "run.log").read_text().splitlines()
        epochs = [line for line in lines if ": epoch " in line]
        assert len(epochs) == 2 and all(f"seed {seed}: epoch" in line for line in epochs), lines
        assert sum("precise BN over" in line for line in lines) == 1, lines


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "how"),
    [
        (["model=rnn", "norm=layer"], "without vmap, members as a batch dimension"),
        (["model=mlp", "norm=layer"], "without vmap, members side by side along the channels"),
        (["model=mlp", "norm=batch_renorm"], "under vmap (blocks.0.1 is a "),
    ],
)
def test_a_fused_group_logs_how_its_members_are_stacked(make_cfg, tmp_path, caplog, overrides, how):
    caplog.set_level(logging.INFO, logger="normbench")
    done = run_group(make_cfg(*overrides, *SMALL4), [0, 1], [tmp_path / "0", tmp_path / "1"])
    assert [s["status"] for s in done] == ["done", "done"]
    lines = [r.getMessage() for r in caplog.records if "stacked model" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"seeds [0, 1] train as one stacked model, {how}"), lines


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        [f"model.cell={cell}", f"norm={norm}"]
        for cell in ("lstm", "gru")
        for norm in ("batch", "layer", "group8", "none")
    ]
    + [["model.num_layers=2", "norm=batch"], ["data.task=images", "norm=layer"]],
)
def test_one_stacked_rnn_step_computes_each_members_gradients(make_cfg, overrides):
    """One forward and backward of the members layout against each member alone: no chaos of
    many steps in between, so every gradient and running statistic agrees to reassociation."""
    stack, members = stacked(make_cfg, [0, 1, 2], "model=rnn", "model.hidden_size=32", *overrides, *SMALL)
    assert stack.layout == "members"
    idx = torch.stack([torch.randperm(80, generator=torch.Generator().manual_seed(i))[:8] for i in range(3)])
    x, y = stack._batch(idx)
    weights = torch.tensor([1.0, 2.0, 3.0])  # a member's gradient must not pick up another's
    (stack.loss(x, y) * weights).sum().backward()
    for i, trainer in enumerate(members):
        model = trainer.model.train()
        (nn.functional.cross_entropy(model(x[i]), y[i]) * weights[i]).backward()
        for name, p in model.named_parameters():
            assert_close(stack.params[name].grad[i], p.grad, f"member {i} {name}")
        for name, b in model.named_buffers():
            assert_close(stack.buffers[name][i], b, f"member {i} {name}")


def test_fused_with_names_the_seeds_of_every_session(make_cfg, tmp_path, monkeypatch):
    """Seeds 0, 1, 2 stacked, interrupted in epoch 2; seed 1 then finished alone; 0 and 2
    resume stacked: each still trained epoch 1 with seed 1."""
    overrides = [
        o if not o.startswith("epochs=") else "epochs=2" for o in ["model=mlp", "norm=batch", *SMALL]
    ]
    dirs = [tmp_path / str(s) for s in (0, 1, 2)]
    epochs = {"n": 0}
    train_epoch = Stack.train_epoch

    def interrupted_in_epoch_2(self, *args, **kwargs):
        epochs["n"] += 1
        if epochs["n"] == 2:
            raise KeyboardInterrupt
        return train_epoch(self, *args, **kwargs)

    monkeypatch.setattr(Stack, "train_epoch", interrupted_in_epoch_2)
    assert {s["status"] for s in run_group(make_cfg(*overrides), [0, 1, 2], dirs)} == {"interrupted"}
    monkeypatch.undo()
    assert run(make_cfg(*overrides, "seed=1"), dirs[1])["status"] == "done"
    done = run_group(make_cfg(*overrides), [0, 1, 2], dirs)
    assert [s["status"] for s in done] == ["done"] * 3
    assert done[0]["fused_with"] == done[2]["fused_with"] == [0, 1, 2]
    assert done[1]["fused_with"] == [0, 1, 2]  # its checkpoint's: it resumed alone
