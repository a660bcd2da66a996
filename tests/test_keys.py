"""Every config key type- and range-checked before training, one line each."""

from __future__ import annotations

import pytest
from conftest import REPO, TINY
from omegaconf import OmegaConf

from normbench.config.checks import CHECKED_BY_TASK, CHOSEN_BY_REGISTRY, all_rules
from normbench.errors import ConfigError
from normbench.norms import NORMS
from normbench.run.runner import build

CONF = REPO / "conf"
GROUPS = ("model", "norm", "data", "optim", "sched", "reg")


def leaves(node: dict, prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in node.items():
        if key in ("defaults", "hydra"):
            continue
        out += leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return out


def every_leaf_key() -> dict[str, list[str]]:
    """The group choice that brings them ("" for conf/config.yaml) -> the dotted leaf keys of
    its file, for every file in conf/."""
    found = {"": leaves(OmegaConf.to_container(OmegaConf.load(CONF / "config.yaml")))}
    for group in GROUPS:
        for path in sorted((CONF / group).glob("*.yaml")):
            global_ = path.read_text().startswith("# @package _global_")
            node = OmegaConf.to_container(OmegaConf.load(path))
            found[f"{group}={path.stem}"] = leaves(node, "" if global_ else f"{group}.")
    return found


def wrong_value(key: str) -> object:
    """A value of the wrong type: text for a number or flag, a number for a name, a list for text."""
    rule = all_rules().get(key)
    if rule is None:
        return 12345 if key in CHOSEN_BY_REGISTRY else "abc"
    return [1, 2] if rule.kind is str else "abc"


def test_every_leaf_key_has_a_check():
    keys = {k for ks in every_leaf_key().values() for k in ks}
    unchecked = keys - set(all_rules()) - set(CHOSEN_BY_REGISTRY) - set(CHECKED_BY_TASK)
    assert not unchecked, (
        f"add these keys to normbench.config.checks.RULES or their probe's CONFIG: {sorted(unchecked)}"
    )


def by_tier(choices) -> list:
    """The top level and each group's first choice in the fast tier, the other choices slow
    (a compose each: ~0.4 s)."""
    seen: set[str] = set()
    params = []
    for choice in choices:
        group = choice.partition("=")[0]
        params.append(pytest.param(choice, marks=pytest.mark.slow) if group in seen else choice)
        seen.add(group)
    return params


@pytest.mark.parametrize("choice", by_tier(every_leaf_key()), ids=lambda x: x or "top")
def test_a_wrong_type_for_any_key_is_one_line_naming_it(make_cfg, choice):
    # run the norms on the ResNet (instance norm, FRN, EvoNorm-B0 normalise only images), those
    # that have no image layout (RMSNorm) on the MLP
    vector_only = {f"norm={n}" for n, s in NORMS.items() if "image" not in s.layouts}
    model = "model=mlp" if choice in vector_only else "model=resnet"
    chosen = [choice, model] if choice.startswith("norm=") else [choice] if choice else []
    composed = make_cfg(*chosen, *TINY)  # once per file: composing is the slow part
    wrong = {}
    for key in every_leaf_key()[choice]:
        cfg = composed.copy()
        OmegaConf.update(cfg, key, wrong_value(key))
        try:
            build(cfg)
            wrong[key] = "accepted"
        except ConfigError as err:
            line = str(err)
            # a registry names a bad choice by its group: norm.name=12345 -> "norm=12345: unknown norm"
            if not line.startswith((f"{key}=", f"{key.removesuffix('.name')}=")) or "\n" in line:
                wrong[key] = line
    assert not wrong


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["optim.lr=abc"],
            "optim.lr=abc: is not a number; use a finite number in (0, 1e+30] (the rate at batch 32)",
        ),
        (
            ["optim.lr=inf"],
            "optim.lr=inf: is not finite; use a finite number in (0, 1e+30] (the rate at batch 32)",
        ),
        (
            ["optim.lr=1e308"],
            "optim.lr=1e+308: is above 1e+30; use a finite number in (0, 1e+30] (the rate at batch 32)",
        ),
        (
            ["optim.weight_decay=1e300"],
            "optim.weight_decay=1e+300: is above 1; use a finite number in [0, 1] (the L2",
        ),
        (["optim.l1=1e300"], "optim.l1=1e+300: is above 1; use a finite number in [0, 1] (0: off)"),
        (["seed=99999999999999999999999"], "seed=99999999999999999999999: is not below 2**63; "),
        (["optim.momentum=-1"], "optim.momentum=-1: is below 0; use a finite number in [0, 1)"),
        (["sched.warmup_epochs=abc"], "sched.warmup_epochs=abc: is not a number; use a finite number >= 0"),
        (["optim.l1=abc"], "optim.l1=abc: is not a number; "),
        (["norm.eps=-1"], "norm.eps=-1: is not above 0; use a finite number > 0"),
        (["norm.momentum=abc"], "norm.momentum=abc: is not a number; use a finite number in [0, 1]"),
        (["optim=adam", "optim.betas=[0.9,2]"], "optim.betas=[0.9, 2]: holds 2, which is not below 1; "),
        (["sched=step", "sched.milestones=[0.5,1.5]"], "sched.milestones=[0.5, 1.5]: holds 1.5, "),
        (["model.dropout=1"], "model.dropout=1: is not below 1; use a finite number in [0, 1)"),
        (["compile=abc"], "compile=abc: is not true or false; use true or false"),
        (["threads=0"], "threads=0: is below 1; use an integer >= 1 or null (null: all cores)"),
        (["batch=2.5"], "batch=2.5: is not an integer; use an integer >= 1"),
    ],
)
def test_the_issues_bad_values_are_refused_with_what_works(make_cfg, overrides, message):
    cfg = make_cfg(*TINY, *overrides)  # later overrides win over TINY's
    with pytest.raises(ConfigError) as exc:
        build(cfg)
    assert str(exc.value).startswith(message)


@pytest.mark.parametrize(
    "choice, key, known",
    [
        ("norm=group", "num_group", "affine, channels_per_group, eps, impl, name, num_groups"),
        ("norm=batch", "num_groups", "affine, eps, impl, momentum, name, precise_bn_samples"),
        ("norm=ghost_batch", "ghostsize", "ghost_size"),
        ("model=resnet", "dropout", "depth, name, width, zero_init_residual"),
        ("optim=adam", "momentum", "betas, l1, linear_scaling, lr, name, weight_decay"),
        ("sched=cosine", "gamma", "min_lr_ratio, name, warmup_epochs"),
        ("data=cifar10", "noise", "augment, download, md5, name, resample, root"),
    ],
)
def test_a_key_the_choice_does_not_take_is_refused_with_those_it_does(make_cfg, choice, key, known):
    group = choice.split("=")[0]
    cfg = make_cfg(choice, *TINY, f"+{group}.{key}=4")
    with pytest.raises(ConfigError) as exc:
        build(cfg)
    line = str(exc.value)
    assert line.startswith(f"{group}.{key}=4: is not a key of {choice}; its keys are "), line
    assert known in line


def test_an_unknown_top_level_key_is_refused(make_cfg):
    # a typo of epochs or seed added with + was taken and ignored: the run used the defaults
    with pytest.raises(ConfigError) as exc:
        build(make_cfg(*TINY, "+seeds=3"))
    assert str(exc.value).startswith("seeds=3: is not a key of the config; its keys are ")
    assert "epochs" in str(exc.value) and "norm" in str(exc.value)


def test_user_keys_of_custom_data_and_synthetic_knobs_are_not_refused_as_unknown(make_cfg):
    # data=custom passes extra keys to the user's function; synthetic checks its knobs itself
    with pytest.raises(ConfigError, match=r"^data._target_=None: "):
        build(make_cfg("data=custom", *TINY, "+data.n=30"))
    with pytest.raises(ConfigError, match=r"^data.noise=2.0: applies to task"):
        build(make_cfg(*TINY, "data.noise=2.0"))


@pytest.mark.parametrize(
    "override, line",
    [
        ("optim.lr=abc", "error: optim.lr=abc: is not a number; use a finite number in (0, 1e+30]"),
        (
            "optim.weight_decay=1e300",
            "error: optim.weight_decay=1e+300: is above 1; use a finite number in [0, 1]",
        ),
        ("+norm.num_group=4", "error: norm.num_group=4: is not a key of norm=batch; its keys are "),
        ("seed=99999999999999999999999", "error: seed=99999999999999999999999: is not below 2**63; "),
        ("+epoch=3", "error: epoch=3: is not a key of the config; its keys are "),  # ran 5 epochs
    ],
)
def test_on_the_command_line_exit_2_one_line_and_no_metrics(cli, tmp_path, override, line):
    result = cli(*TINY, override)
    assert result.returncode == 2, result.stderr[-2000:]
    (only,) = result.stderr.strip().splitlines()
    assert only.startswith(line), only
    assert not list(tmp_path.rglob("metrics.csv"))
