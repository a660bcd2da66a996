"""The defaults train: every model x every norm it accepts learns at batch 4 and 32
with nothing but smaller data, and a model's own optimizer choice yields to the command line."""

from __future__ import annotations

import pytest

from normbench.run.learned import chance_accuracy
from normbench.run.runner import build, run

NORMS = {
    "mlp": ["none", "batch", "layer", "group"],
    "rnn": ["none", "batch", "layer", "group"],
    "resnet": ["none", "batch", "layer", "instance", "group"],
}
# Sizes small enough for CI, the only change from the defaults. The MLP's task is small already;
# the RNN and the ResNet get 1,600 training samples instead of 4,000 (10 epochs: 4,000 steps at
# batch 4, 500 at batch 32). With 400 at batch 4 (1,000 steps at the scaled lr 0.00625) the
# ResNet without a norm, with LN or with GN stayed at 11-21%, and the LSTM without a norm or
# with BN reached 36-42%; with 1,000 the LSTM without a norm reached 43%.
TRAIN = 1600
TEST = 400  # 3 binomial SE at chance 25%: 6.5 points, far below the floor
FLOOR = 0.20  # accuracy above chance (50% threshold task, 25% sequences, 10% images)
# Instance norm learns the synthetic texture task slowly: 37.0% at batch 4 and 26.5% at batch
# 32 here (seed 0, chance 10%), 84-87% error after 4 epochs in the small_batch and norm_compare
# reports made on this task before they moved to the glyphs task, every other norm below 12%.
# Likely a limit of the task and the norm (normalising each channel per sample removes the
# channel energies that encode the texture's orientation), not of the defaults; expected below
# the floor, reported if it passes.
LIMITS = {("resnet", "instance"): pytest.mark.xfail(strict=False, reason="IN learns the texture task slowly")}
CELLS = [
    pytest.param(m, n, b, marks=LIMITS.get((m, n), ()))
    for m, norms in NORMS.items()
    for n in norms
    for b in (4, 32)
]


def sizes(model: str, batch: int) -> list[str]:
    return [] if model == "mlp" else [f"data.train_size={TRAIN}", f"data.test_size={TEST}"]


@pytest.mark.slow
@pytest.mark.science
@pytest.mark.parametrize(("model", "norm", "batch"), CELLS)
def test_the_defaults_learn(make_cfg, tmp_path, model, norm, batch):
    cfg = make_cfg(
        f"model={model}",
        f"norm={norm}",
        f"batch={batch}",
        *sizes(model, batch),
        "threads=1",
        "progress=false",
    )
    summary = run(cfg, tmp_path)
    chance = chance_accuracy(build(cfg).trainer.data.y_test)
    accuracy = summary["final"]["test/accuracy"]
    print(f"\n{model} {norm} batch {batch}: test accuracy {100 * accuracy:.1f}% (chance {100 * chance:.1f}%)")
    assert accuracy >= chance + FLOOR, f"{model} {norm} batch {batch}: {accuracy:.3f} (chance {chance:.3f})"
    assert summary["learned"] is True


@pytest.mark.parametrize(
    ("overrides", "optim"),
    [
        (["model=rnn"], ("adam", 3e-3, False)),
        (["model=rnn", "optim=sgd"], ("sgd", 0.05, True)),
        (["model=mlp"], ("sgd", 0.05, True)),
        (["model=mlp", "optim=adam"], ("adam", 3e-3, False)),
        (["model=resnet"], ("sgd", 0.05, True)),
        (["model=rnn", "optim.lr=0.01"], ("adam", 0.01, False)),
        (["experiment=small_batch_single", "model=rnn"], ("sgd", 0.1, True)),  # lr: not the default's
    ],
)
def test_a_models_optimizer_yields_to_the_command_line_and_presets(make_cfg, overrides, optim):
    cfg = make_cfg(*overrides)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.linear_scaling) == optim


def test_the_default_schedule_warms_up_then_decays(make_cfg):
    cfg = make_cfg()
    assert (cfg.epochs, cfg.sched.name, cfg.sched.warmup_epochs, cfg.model.name) == (10, "cosine", 1.0, "mlp")
