"""Presets in experiments/: every cell of every grid composes; shrunken versions run end to end."""

from __future__ import annotations

import pytest
from conftest import REPO, summaries
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from normbench.config.checks import check_keys
from normbench.run.identity import resolved_config

PRESETS = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml"))


def grid(cfg) -> list[list[str]]:
    """The jobs of a preset's sweep, as Hydra's basic sweeper expands them."""
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    overrides = OverridesParser.create().parse_overrides(params)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def test_the_contract_presets_exist():
    assert {"mlp_threshold", "small_batch", "norm_compare", "rnn_norms", "depth_init"} <= set(PRESETS)


def register_with_hydra(name: str):
    """The preset's composed config including its hydra node (for the sweeper grid)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[f"experiment={name}"], return_hydra_config=True)


def test_small_batch_follows_the_groupnorm_paper(make_cfg):
    # Figure 1 on the paper's terms: BN statistics per device, SGD on all devices' images
    cfg = register_with_hydra("small_batch")
    assert cfg.optim.linear_scaling and cfg.devices == 8
    # ResNet-8 at width 8 for the 25-minute budget; residual scales not zeroed (the paper zeroes
    # them): with them zeroed GN at SGD batch 256 had not finished its 40 epochs in the pilot
    assert (cfg.model.depth, cfg.model.width, cfg.model.zero_init_residual) == (8, 8, False)
    assert (cfg.data.name, cfg.sched.name, cfg.sched.warmup_epochs) == ("glyphs", "cosine", 1.0)
    assert cfg.data.shift > 0 and cfg.data.brightness > 0 and cfg.data.contrast > 0  # photolike
    params = cfg.hydra.sweeper.params
    assert [int(b) for b in str(params.batch).split(",")] == [2, 4, 8, 16, 32]  # the paper's axis
    assert str(params.norm).split(",") == ["batch", "group8"]
    assert [int(s) for s in str(params.seed).split(",")] == [0, 1, 2]  # pilot seeds were 100, 101
    assert (cfg.eval_every, cfg.train_eval_size, cfg.bn_noise) == (cfg.epochs, 500, True)


def test_main_sh_runs_the_small_batch_design_by_its_documented_sweeps(make_cfg):
    # the preset's comment and scripts/main.sh name the same sweeps; each composes, and the
    # calibration measures the preset's own task file
    main = (REPO / "scripts" / "main.sh").read_text()
    preset = (REPO / "experiments" / "small_batch.yaml").read_text()
    extra = "norm=layer,instance batch=32"
    assert f'"${{run[@]}}" {extra} "$@"' in main and f"experiment=small_batch {extra}" in preset
    for norm in ("layer", "instance"):
        check_keys(resolved_config(make_cfg("experiment=small_batch", f"norm={norm}", "batch=32")))
    assert "--glyphs photolike" in main and "override /data: photolike" in preset
    model = make_cfg("experiment=small_batch").model  # the calibration measures the study's model
    zero_init = "--zero-init-residual" if model.zero_init_residual else "--no-zero-init-residual"
    assert f"--depth {model.depth} --width {model.width} {zero_init} " in main


def test_the_single_device_design_stays_its_own_preset(make_cfg):
    cfg = register_with_hydra("small_batch_single")
    assert (cfg.devices, cfg.name, cfg.model.depth) == (1, "small_batch_single", 14)
    assert [int(b) for b in str(cfg.hydra.sweeper.params.batch).split(",")] == [2, 32]


# the presets that run another preset's design with only their grid changed: Table 1 and
# Table 3 on Figure 1's per-device design, the lr check on the single-device design it studied
SAME_DESIGN = {
    "norm_compare": "small_batch",
    "group_sweep": "small_batch",
    "lr_sensitivity": "small_batch_single",
}


@pytest.mark.parametrize("name", SAME_DESIGN)
def test_the_table_presets_run_their_parents_design_and_only_their_grid_differs(make_cfg, name):
    # Table 1 / Table 3 / the lr check hold only their differences: a change to the design they
    # were run on (task, model, budget, schedule, devices) reaches them, and their grid is their own
    base, cfg = register_with_hydra(SAME_DESIGN[name]), register_with_hydra(name)
    for key in ("data", "model", "optim", "sched", "epochs", "eval_every", "train_eval_size", "devices"):
        assert cfg[key] == base[key], key
    params = cfg.hydra.sweeper.params
    batches = {"norm_compare": "32", "group_sweep": "32", "lr_sensitivity": "2,32"}[name]
    assert (str(params.batch), str(params.seed).split(",")[:3]) == (batches, ["0", "1", "2"])
    expected = {"norm_compare": 5 * 5, "group_sweep": 5 * 3, "lr_sensitivity": 12 * 3}[name]
    assert len(grid(cfg)) == expected


def test_mlp_threshold_is_article_1(make_cfg):
    cfg = make_cfg("experiment=mlp_threshold", "norm=group5")
    assert (cfg.model.depth, cfg.model.width, cfg.batch, cfg.epochs) == (1, 50, 64, 50)
    assert (cfg.optim.name, cfg.optim.lr) == ("adam", 1e-3)
    assert (cfg.norm.num_groups, cfg.data.task) == (5, "threshold")


REMEDIES = ["batch", "group8", "batch_renorm", "frn", "evonorm_s0_8", "group8_ws"]


@pytest.mark.slow
def test_remedies_is_small_batchs_design_with_the_remedies_grid(make_cfg):
    # only the grid, the name and the model and lr its reference ran with differ from
    # small_batch (the Figure 1 design it inherits)
    base, cfg = register_with_hydra("small_batch"), register_with_hydra("remedies")
    assert (cfg.model.width, cfg.model.zero_init_residual, cfg.optim.lr) == (16, True, 0.1)
    assert (base.model.width, base.model.zero_init_residual, base.optim.lr) == (8, False, 0.05)
    cfg.model.width, cfg.model.zero_init_residual = base.model.width, base.model.zero_init_residual
    cfg.optim.lr = base.optim.lr
    for key in (
        "data",
        "model",
        "optim",
        "sched",
        "epochs",
        "eval_every",
        "train_eval_size",
        "devices",
        "bn_noise",
    ):
        assert cfg[key] == base[key], key
    params = cfg.hydra.sweeper.params
    assert str(params.norm).split(",") == REMEDIES
    assert (str(params.batch), str(params.seed)) == ("2,32", "0,1,2,3,4")
    assert len(grid(cfg)) == 6 * 2 * 5
    ws, evo = (make_cfg("experiment=remedies", f"norm={n}").norm for n in ("group8_ws", "evonorm_s0_8"))
    assert (ws.name, ws.num_groups, ws.weight_std) == ("group", 8, True)
    assert (evo.name, evo.num_groups) == ("evonorm_s0", 8)
    notes = (REPO / "results" / "reference" / "remedies" / "NOTES.md").read_text()
    assert "INTERIM" not in (REPO / "experiments" / "remedies.yaml").read_text() + notes  # run whole


def test_a_users_norm_joins_the_remedies_preset_by_its_documented_commands(make_cfg):
    # the one-command way lists the preset's norms and the user's preset (test_custom_norm
    # composes that with a real search path); the way without a config file is a second sweep
    # of norm=custom into the same folder: each cell composes to values the runner takes
    preset = (REPO / "experiments" / "remedies.yaml").read_text()
    usage = (REPO / "docs" / "usage.md").read_text()
    listed = "norm=" + ",".join([*REMEDIES, "mynorm"])
    second = "experiment=remedies norm=custom norm._target_=mypkg.norms.MyNorm norm.label=mine"
    for text in (preset, usage):
        assert listed in text and second in text
    for batch in (2, 32):
        cfg = make_cfg(*second.split(), f"batch={batch}")
        assert (cfg.name, cfg.norm.name, cfg.norm.label) == ("remedies", "custom", "mine")
        check_keys(resolved_config(cfg))
    # a norm option in a mixed sweep reaches every norm of it: BN has no _target_, so it fails
    with pytest.raises(Exception, match="_target_"):
        make_cfg("experiment=remedies", "norm=batch", "norm._target_=mypkg.norms.MyNorm")


# SAME_DESIGN presets are not run end to end again here: their design runs as
# their parent preset, and every cell of their grids resolves and passes the checks in
# tests/test_preset_configs.py.
SHRUNKEN = {  # each preset's own grid, cut to a few tiny runs: overrides replace grid entries
    "mlp_threshold": ["norm=batch,group5", "seed=0", "epochs=2"],
    "small_batch": [
        "norm=batch,group8",
        "batch=2,4",  # x 8 devices: SGD batches of 16 and 32
        "seed=0",
        "epochs=1",
        "data.train_size=64",
        "data.test_size=16",
        "train_eval_size=16",  # the preset's 500 is more than 64 training images
        "hydra/launcher=basic",
    ],
    "small_batch_single": [
        "norm=batch,group8",
        "batch=2,8",
        "seed=0",
        "epochs=1",
        "data.train_size=32",
        "data.test_size=16",
        "train_eval_size=16",
        "hydra/launcher=basic",
    ],
    "rnn_norms": [
        "norm=batch,layer",
        "batch=8",
        "seed=0",
        "epochs=1",
        "data.train_size=32",
        "data.test_size=16",
        "train_eval_size=16",
        "hydra/launcher=basic",
    ],
    "regularization": [
        "reg=none,l1",
        "norm=batch",
        "seed=0",
        "epochs=1",
        "data.train_size=32",
        "data.test_size=16",
        "hydra/launcher=basic",
    ],
    "small_batch_cifar": [
        "norm=batch,group8",
        "batch=2",  # x 8 devices: an SGD batch of 16 of the 20 images
        "seed=0",
        "epochs=1",
        "data.train_size=20",
        "data.test_size=20",
        "train_eval_size=16",
        "hydra/launcher=basic",
    ],  # data.root: a fake CIFAR-10
    "depth_init": [
        "model.init=normal",
        "norm=none,batch",
        "seed=0",
        "data.train_size=32",
        "data.test_size=16",
    ],
    "remedies": [
        "norm=batch,frn,group8_ws",  # BN, a per-sample remedy, WS + GN (each alone: test_remedies)
        "batch=2,4",  # x 8 devices: SGD batches of 16 and 32
        "seed=0",
        "epochs=1",
        "data.train_size=64",
        "data.test_size=16",
        "train_eval_size=16",
        "hydra/launcher=basic",
    ],
}


def test_every_preset_runs_end_to_end_or_shares_a_design_that_does():
    assert sorted([*SHRUNKEN, *SAME_DESIGN]) == PRESETS


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHRUNKEN))
def test_shrunken_preset_runs_end_to_end_with_a_report(cli, tmp_path, name):
    extra = []
    if name == "small_batch_cifar":  # never downloads: a tiny archive in the official format
        from cifar_fake import make_fake_cifar

        make_fake_cifar(tmp_path / "cifar", n_per_batch=10, n_test=20)
        extra = [f"data.root={tmp_path / 'cifar'}", "data.download=false"]
    result = cli("-m", f"experiment={name}", *SHRUNKEN[name], *extra, "progress=false", "threads=1")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = summaries(tmp_path / name)
    assert len(runs) >= 2
    assert {s["status"] for s in runs} <= {"done", "diverged"}
    assert (tmp_path / name / "report.html").exists() and (tmp_path / name / "report.md").exists()
    assert "report: " in result.stdout + result.stderr
    if name == "depth_init":  # N(0, 1) init: no BN goes non-finite, BN does not
        first_bad = {
            s["config"]["norm"]["name"]: s["final"]["activations/first_nonfinite_layer"] for s in runs
        }
        assert 1 < first_bad["none"] < 100 and first_bad["batch"] != first_bad["batch"]  # NaN


def test_small_batch_runs_on_cifar10_with_its_documented_command(make_cfg):
    cfg = make_cfg("experiment=small_batch_single", "data=cifar10", "data.train_size=10000")
    assert cfg.data.name == "cifar10" and cfg.data.train_size == 10000 and "texture" not in cfg.data
    check_keys(resolved_config(cfg))
