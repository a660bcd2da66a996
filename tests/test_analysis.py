"""normbench.analysis on small results trees written by tests/fake_results.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_results import add_activations, set_curve, write_run, write_sweep

from normbench.analysis import (
    FAIL,
    MISSING,
    PASS,
    activations,
    aggregate,
    bootstrap_ci,
    claims,
    describe,
    difference_of_means,
    evaluate,
    figures,
    load,
    paired_differences,
)

# ---------------------------------------------------------------- loading


@pytest.fixture
def messy_tree(tmp_path: Path) -> Path:
    """Two sweeps at different depths, plus every way a run can be broken."""
    write_sweep(tmp_path / "a" / "sweep1", norms=("batch", "group"), batches=(4, 32), seeds=(1, 2))
    deeper = tmp_path / "b" / "deeper" / "sweep2"
    write_sweep(deeper, norms=("layer",), batches=(4,), seeds=(1,), name="other")
    write_run(tmp_path / "a" / "sweep1" / "batch=8,norm=batch,seed=1", "batch", 8, 1, status="diverged")
    killed = write_run(tmp_path / "killed" / "batch=8,norm=group,seed=1", "group", 8, 1, summary=False)
    with (killed / "metrics.csv").open("a") as f:
        f.write("999,3,train,lo")  # the kill cut this line short
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "summary.json").write_text('{"status": "do')
    return tmp_path


def test_load_lists_every_run_of_a_nested_partial_tree(messy_tree: Path) -> None:
    res = load(messy_tree)
    runs = res.runs.set_index("run_id")
    assert len(runs) == 8 + 1 + 1 + 1 + 1
    assert runs.loc["a/sweep1/batch=8,norm=batch,seed=1", "status"] == "diverged"
    assert runs.loc["killed/batch=8,norm=group,seed=1", "status"] == "no summary"
    assert runs.loc["corrupt", "status"].startswith("corrupt summary")
    assert (res.done["run_id"].str.startswith(("a/", "b/"))).all() and len(res.done) == 9
    # name differs between the sweeps but is not a result key; norm.num_groups exists for
    # group norm only, with one value, so it does not vary either
    assert set(res.swept) == {"batch", "norm.name", "seed"}
    assert runs["batch"].dtype == "Int64"
    assert runs.loc["b/deeper/sweep2/batch=4,norm=layer,seed=1", "batch"] == 4


def test_load_recovers_the_cell_of_a_run_without_summary(messy_tree: Path) -> None:
    killed = load(messy_tree).runs.set_index("run_id").loc["killed/batch=8,norm=group,seed=1"]
    assert (killed["norm.name"], killed["batch"], killed["seed"]) == ("group", 8, 1)


def test_load_keeps_complete_curve_rows_and_drops_a_cut_line(messy_tree: Path) -> None:
    curves = load(messy_tree).curves
    killed = curves[curves["run_id"] == "killed/batch=8,norm=group,seed=1"]
    assert len(killed) and killed["value"].notna().all() and 999 not in killed["step"].tolist()
    assert list(curves.columns) == ["run_id", "step", "epoch", "split", "metric", "value"]
    bn = curves[curves["run_id"] == "a/sweep1/batch=4,norm=batch,seed=1"]
    assert set(bn["split"]) == {"train", "test", "test_batchstats"}


def test_load_single_run_and_empty_dir(tmp_path: Path) -> None:
    run = write_run(tmp_path / "default", "group", 8, 0)
    runs, curves = load(run)  # unpacks like a tuple
    assert runs["run_id"].tolist() == ["default"] and len(curves) > 0
    assert runs.loc[0, "test/error"] == pytest.approx(1 - runs.loc[0, "test/accuracy"])
    empty = load(tmp_path / "nothing_here")
    assert empty.runs.empty and empty.curves.empty and empty.swept == []


def test_load_computes_the_batch_statistics_gap(tmp_path: Path) -> None:
    runs = load(write_sweep(tmp_path, norms=("batch", "group"), batches=(4,), seeds=(1,))).runs
    gap = runs.set_index("norm.name")["batchstats_gap"]
    assert gap["batch"] == pytest.approx(-0.02) and math.isnan(gap["group"])


def test_load_computes_the_generalization_gap(tmp_path: Path) -> None:
    run = load(write_run(tmp_path / "r", "group", 8, 0)).runs.iloc[0]
    assert run["generalization_gap"] == pytest.approx(run["test/loss"] - run["train/loss"])
    assert run["generalization_gap"] != 0


# ---------------------------------------------------------------- statistics, by hand


def test_bootstrap_ci_of_two_values_spans_them() -> None:
    # Resampled means of [1, 2]: 1 (p=1/4), 1.5 (1/2), 2 (1/4): 2.5% and 97.5% points are 1 and 2.
    assert bootstrap_ci([1.0, 2.0]) == (1.0, 2.0)


def test_bootstrap_ci_skewed_case() -> None:
    # [0, 0, 3]: the resampled mean is k with k ~ Binomial(3, 1/3); P(k=0) = 8/27 > 2.5% and
    # P(k=3) = 1/27 > 2.5%, so the percentile interval is [0, 3].
    assert bootstrap_ci([0.0, 0.0, 3.0]) == (0.0, 3.0)


def test_bootstrap_ci_is_nan_for_one_seed_and_a_point_for_ties() -> None:
    low, high = bootstrap_ci([0.3])
    assert math.isnan(low) and math.isnan(high)
    assert bootstrap_ci([0.25, 0.25, 0.25]) == (0.25, 0.25)


def test_bootstrap_ci_per_column_and_reproducible() -> None:
    low, high = bootstrap_ci(np.array([[1.0, 5.0], [2.0, 5.0]]))
    assert low.tolist() == [1.0, 5.0] and high.tolist() == [2.0, 5.0]
    data = np.random.default_rng(3).normal(size=6)
    assert bootstrap_ci(data) == bootstrap_ci(data)


def test_describe_by_hand() -> None:
    d = describe([1.0, 2.0, 3.0, 4.0], seeds=[3, 1, 2, 0])
    assert d["n"] == 4 and d["mean"] == 2.5 and d["std"] == pytest.approx(math.sqrt(5 / 3))
    assert d["ci_low"] >= 1.0 and d["ci_high"] <= 4.0 and d["seeds"] == (0, 1, 2, 3)
    one = describe([0.1])
    assert one["n"] == 1 and math.isnan(one["std"]) and math.isnan(one["ci_low"])


def test_difference_of_means_by_hand() -> None:
    d = difference_of_means([1.0, 2.0], [0.0, 0.0])  # b is fixed: the CI is a's, [1, 2]
    assert (d["diff"], d["ci_low"], d["ci_high"]) == (1.5, 1.0, 2.0)
    assert math.isnan(difference_of_means([1.0], [0.0, 1.0])["ci_low"])


def _runs(rows: list[tuple[str, int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["norm", "batch", "seed", "test/error"])


def test_paired_differences_match_seeds() -> None:
    base = {1: 0.10, 2: 0.20, 3: 0.30}
    rows = [("batch", 8, s, e) for s, e in base.items()]
    rows += [("group", 8, s, e + 0.01) for s, e in base.items()] + [("group", 8, 4, 0.9)]  # seed 4 unpaired
    diff = paired_differences(_runs(rows), "test/error", ["batch"], baseline="batch").iloc[0]
    # every pair differs by exactly 0.01 although the seeds differ by 0.1: pairing removes that
    assert diff["norm"] == "group" and diff["n"] == 3 and diff["seeds"] == (1, 2, 3)
    assert diff["mean"] == pytest.approx(0.01) and diff["ci_low"] == pytest.approx(0.01)
    assert diff["ci_high"] == pytest.approx(0.01)


def test_aggregate_per_cell() -> None:
    rows = [("batch", 8, 1, 0.1), ("batch", 8, 2, 0.2), ("group", 8, 1, 0.3)]
    table = aggregate(_runs(rows), "test/error", ["norm", "batch"]).set_index("norm")
    assert table.loc["batch", "mean"] == pytest.approx(0.15) and table.loc["batch", "ci_low"] == 0.1
    assert table.loc["group", "n"] == 1 and math.isnan(table.loc["group", "ci_high"])


# ---------------------------------------------------------------- claims on known answers


def test_claims_pass_on_the_papers_shape(tmp_path: Path) -> None:
    res = load(write_sweep(tmp_path, norms=("batch", "group", "layer"), batches=(2, 32), seeds=(1, 2, 3)))
    verdicts = {c.name: c.verdict for c in evaluate(res)}
    assert verdicts == {
        "norm=batch degrades at small batch": PASS,
        "norm=group is batch-size independent": PASS,
        "ordering of norms at the largest batch": PASS,
    }


def inverted(norm: str, batch: int, seed: int) -> float:
    """A world where the papers are wrong: BN flat, GN degrading, LN best."""
    base = {"batch": 20.0, "group": 15.0 + 16.0 / batch, "layer": 10.0}[norm]
    return base + 0.1 * seed


def test_claims_fail_when_the_data_says_otherwise(tmp_path: Path) -> None:
    res = load(
        write_sweep(
            tmp_path, norms=("batch", "group", "layer"), batches=(2, 32), seeds=(1, 2, 3), error=inverted
        )
    )
    found = {c.name: c for c in evaluate(res)}
    assert {c.verdict for c in found.values()} == {FAIL}
    assert "spread 7.50 points" in found["norm=group is batch-size independent"].evidence
    assert found["ordering of norms at the largest batch"].evidence.startswith("batch=32: norm=layer")


def test_claims_say_missing_data_instead_of_passing(tmp_path: Path) -> None:
    failed_at_2 = write_sweep(tmp_path / "a", norms=("batch", "group"), batches=(2, 8), seeds=(1, 2))
    for run in failed_at_2.glob("batch=2,*"):
        write_run(run, run.name.split("norm=")[1].split(",")[0], 2, int(run.name[-1]), status="failed")
    found = evaluate(load(failed_at_2))
    assert [c.verdict for c in found[:2]] == [MISSING] * 2  # designed for 2 batch sizes, got 1
    assert "finished at 1 batch size(s)" in found[0].evidence
    one_seed = load(write_sweep(tmp_path / "b", norms=("batch",), batches=(2, 32), seeds=(1,)))
    bn, gn = evaluate(one_seed)  # one norm: no ordering to judge (out of scope, not missing)
    assert bn.verdict == MISSING and "2+ seeds" in bn.evidence  # the mean alone would "pass"
    assert gn.verdict == MISSING and "norm=group finished at 0" in gn.evidence
    nothing = evaluate(load(tmp_path / "empty"))
    assert [c.verdict for c in nothing] == [MISSING] * 3


def test_claims_the_grid_was_not_designed_for_are_not_made(tmp_path: Path) -> None:
    one_batch = load(write_sweep(tmp_path / "a", norms=("batch", "group"), batches=(8,), seeds=(1, 2)))
    assert [c.name for c in evaluate(one_batch)] == ["ordering of norms at the largest batch"]
    assert claims.out_of_scope(one_batch) == {claims.BATCH_SIZE_CLAIMS: "the grid runs one batch size (8)"}
    only_gn = load(write_sweep(tmp_path / "b", norms=("group",), batches=(2, 32), seeds=(1, 2)))
    assert [c.name for c in evaluate(only_gn)] == [
        "norm=batch degrades at small batch",
        "norm=group is batch-size independent",
    ]
    assert list(claims.out_of_scope(only_gn)) == [claims.ORDER_CLAIM]


def test_claims_state_their_thresholds_and_honour_the_tolerance(tmp_path: Path) -> None:
    res = load(write_sweep(tmp_path, norms=("group",), batches=(2, 32), seeds=(1, 2), error=inverted))
    gn = claims.gn_flat(res.done, tolerance_pp=8.0)
    assert gn.verdict == PASS and "at most 8.0 points" in gn.rule


def test_claims_are_checked_per_model(tmp_path: Path) -> None:
    for model in ("mlp", "resnet"):
        write_sweep(tmp_path / model, norms=("batch", "group"), batches=(2, 32), seeds=(1, 2), model=model)
    contexts = {c.context for c in evaluate(load(tmp_path))}
    assert contexts == {"model.name=mlp", "model.name=resnet"}


# ---------------------------------------------------------------- figures and styles


def test_styles_known_and_unknown_names_are_distinct() -> None:
    styles = figures.norm_styles(["batch", "group", "my_norm", "batch_renorm"])
    assert styles["batch"] == figures.KNOWN_STYLES["batch"]
    assert len({(s.color, str(s.linestyle), s.marker) for s in styles.values()}) == 4
    assert styles["my_norm"] == figures.norm_styles(["my_norm", "batch_renorm"])["my_norm"]


def test_figures_written_as_png_and_svg(tmp_path: Path) -> None:
    res = load(write_sweep(tmp_path / "r", norms=("batch", "my_norm"), batches=(2, 8), seeds=(1, 2)))
    styles = figures.norm_styles(res.runs["norm.name"])
    made = {
        "loss": figures.loss_curves(res, styles, smooth=3, log=True),
        "small": figures.small_batch(res, styles),
        "gap": figures.batchstats_gap(res, styles),
        "grid": figures.grid(res.done, "train/loss", "norm.name", styles, hue="batch"),
    }
    for stem, fig in made.items():
        paths = figures.save(fig, tmp_path / "fig", stem)
        assert paths["png"].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths["svg"].read_bytes()


def test_figures_need_data() -> None:
    res = load(Path("/nonexistent"))
    assert figures.loss_curves(res, {}) is None and figures.small_batch(res, {}) is None
    assert figures.batchstats_gap(res, {}) is None


def test_summary_nan_and_extra_keys_are_tolerated(tmp_path: Path) -> None:
    run = write_run(tmp_path / "x", "batch", 4, 1)
    summary = json.loads((run / "summary.json").read_text())
    summary["final"]["train/loss"] = float("nan")
    summary["final"]["note"] = "not a number"
    summary["something_new"] = {"a": 1}
    (run / "summary.json").write_text(json.dumps(summary))  # NaN as the runner writes it
    runs = load(tmp_path).runs
    assert math.isnan(runs.loc[0, "train/loss"]) and "note" not in runs


def test_swept_keys_leave_out_what_follows_from_them(tmp_path: Path) -> None:
    # mlp with seeds 1, 2 and resnet with seeds 3, 4: model.name must stay a swept key even
    # though it is a function of the seed; model.depth and a batch-scaled lr follow.
    for model, seeds in (("mlp", (1, 2)), ("resnet", (3, 4))):
        for batch in (4, 32):
            for seed in seeds:
                write_run(
                    tmp_path / model / f"batch={batch},seed={seed}",
                    "group",
                    batch,
                    seed,
                    model=model,
                    optim__lr=0.1 * batch / 32,
                    overrides=[f"batch={batch}", f"seed={seed}"],
                )
    res = load(tmp_path)
    assert res.swept == ["batch", "model.name", "seed"]
    assert {"model.depth", "optim.lr"} <= set(res.runs.columns)  # still columns, for reference


def test_analysis_never_imports_the_runner() -> None:
    code = (
        "import sys, normbench.analysis, normbench.report; "
        "sys.exit('normbench.runner' in sys.modules or 'normbench.train' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_norm_options_that_vary_make_variants_not_cells(tmp_path: Path) -> None:
    # the GN paper's groups ablation: group norm at two group counts, BN as the baseline
    for groups in (2, 8):
        for seed in (1, 2):
            for batch in (4, 32):
                write_run(
                    tmp_path / f"g{groups}" / f"b{batch}s{seed}",
                    "group",
                    batch,
                    seed,
                    norm__num_groups=groups,
                )
    write_sweep(tmp_path / "bn", norms=("batch",), batches=(4, 32), seeds=(1, 2))
    res = load(tmp_path)
    assert "norm.num_groups" in res.swept
    assert set(res.runs["norm"]) == {"batch", "group(num_groups=2)", "group(num_groups=8)"}
    diffs = paired_differences(res.done, "test/error", ["batch"], baseline="batch")
    assert len(diffs) == 4 and (diffs["n"] == 2).all()
    styles = figures.norm_styles(res.runs["norm"])
    assert styles["group(num_groups=2)"].color == figures.KNOWN_STYLES["group"].color
    assert styles["group(num_groups=2)"] != styles["group(num_groups=8)"]


def _preset_sweep(root: Path, presets: dict[str, int | None], batches=(2, 32), seeds=(1, 2)) -> Path:
    """Runs as ``norm=group8`` composes them: the override names the preset, the config says
    norm.name "group" with num_groups 8; norms without the option have no num_groups key."""
    for preset, num_groups in presets.items():
        norm = "group" if num_groups else preset
        for batch in batches:
            for seed in seeds:
                overrides = [f"batch={batch}", f"norm={preset}", f"seed={seed}"]
                write_run(
                    root / f"batch={batch},norm={preset},seed={seed}",
                    norm,
                    batch,
                    seed,
                    overrides=overrides,
                    **({"norm__num_groups": num_groups} if num_groups else {}),
                )
    return root


def test_a_norm_preset_keeps_its_norm_name_and_its_claims(tmp_path: Path) -> None:
    res = load(_preset_sweep(tmp_path, {"batch": None, "group8": 8}))
    assert set(res.runs["norm"]) == {"batch", "group"} and "norm.num_groups" not in res.swept
    verdicts = {c.name: c.verdict for c in evaluate(res)}
    assert verdicts["norm=group is batch-size independent"] == PASS
    assert verdicts["ordering of norms at the largest batch"] == PASS


def test_two_presets_of_one_norm_are_each_claimed(tmp_path: Path) -> None:
    res = load(_preset_sweep(tmp_path, {"batch": None, "group5": 5, "group8": 8}))
    assert set(res.runs["norm"]) == {"batch", "group(num_groups=5)", "group(num_groups=8)"}
    found = {c.name: c for c in evaluate(res)}
    for groups in (5, 8):
        assert found[f"norm=group(num_groups={groups}) is batch-size independent"].verdict == PASS
    order = found["ordering of norms at the largest batch"]
    assert order.verdict == PASS and "norm=group(num_groups=5)" in order.evidence
    assert "norm=group is batch-size independent" not in found  # no MISSING twin beside them


# ---------------------------------------------------------------- activations at initialisation


def _exploding(first_inf: int, layers: int = 100) -> list[float]:
    """N(0, 1) init without BN: x10 per layer, inf from ``first_inf``, NaN two layers later."""
    return [
        10.0**i if i < first_inf else math.inf if i < first_inf + 2 else math.nan
        for i in range(1, layers + 1)
    ]


@pytest.fixture
def depth_tree(tmp_path: Path) -> Path:
    """depth_init's shape: init x norm, activations at step 0 (and after epoch 1 where the run
    finished); the N(0, 1) runs without BN diverged, at different layers per seed."""
    cells = {("normal", "none"): "diverged", ("kaiming", "none"): "done", ("normal", "batch"): "done"}
    for (init, norm), status in cells.items():
        for seed in (0, 1):
            run = write_run(
                tmp_path / f"model.init={init},norm={norm},seed={seed}",
                norm,
                16,
                seed,
                status=status,
                model__init=init,
                activations=True,
                overrides=[f"model.init={init}", f"norm={norm}", f"seed={seed}"],
            )
            stds = (
                _exploding(33 + 2 * seed)
                if (init, norm) == ("normal", "none")
                else [0.6 + 0.1 * seed] * 100
                if norm == "none"
                else [0.58] * 100
            )
            add_activations(run, stds)
            if status == "done":  # the last logged point, after training: all finite
                add_activations(run, [0.5] * 100, step=32, epoch=1)
    return tmp_path


def test_activation_profiles_include_diverged_runs_and_mark_nonfinite(depth_tree: Path) -> None:
    res = load(depth_tree)
    assert set(res.runs["status"]) == {"done", "diverged"}
    profiles = {p.label: p for p in activations.init_profiles(res)}
    assert list(profiles) == ["init=kaiming, norm=none", "init=normal, norm=batch", "init=normal, norm=none"]
    normal = profiles["init=normal, norm=none"]
    assert normal.statuses == ("diverged", "diverged") and normal.first_nonfinite == (33, 35)
    assert normal.first_bad == 33 and np.isinf(normal.std[32]) and np.isnan(normal.std[35])
    assert normal.std[9] == pytest.approx(1e10)  # mean of the two seeds, step 0 only
    kaiming = profiles["init=kaiming, norm=none"]
    assert kaiming.std[0] == pytest.approx(0.65) and kaiming.first_bad is None  # not the epoch-1 rows


def test_activation_table_numbers(depth_tree: Path) -> None:
    table = activations.init_table(activations.init_profiles(load(depth_tree))).set_index(["init", "norm"])
    assert [c for c in table.columns if c.startswith("std")] == [
        "std layer 1",
        "std layer 10",
        "std layer 50",
        "std layer 100",
    ]
    row = table.loc[("normal", "none")]
    assert (row["std layer 1"], row["std layer 10"], row["std layer 50"]) == ("10", "1e+10", "NaN")
    assert row["runs"] == "2 (2 diverged)"
    assert row["first NaN/inf layer, init"] == "33 (per seed: 33, 35)"
    assert row["first NaN/inf layer, last logged"] == "33 (per seed: 33, 35)"
    kaiming = table.loc[("kaiming", "none")]
    assert (kaiming["std layer 100"], kaiming["runs"]) == ("0.65", "2")
    assert kaiming["first NaN/inf layer, init"] == "none"


def test_activation_table_of_a_shallow_net_and_inf_only(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", "none", 16, 0, status="diverged", activations=True)
    add_activations(run, [1.0, 2.0, math.inf] + [3.0] * 9)  # 12 layers; inf but no NaN
    profiles = activations.init_profiles(load(tmp_path))
    table = activations.init_table(profiles)
    assert [c for c in table.columns if c.startswith("std")] == [
        "std layer 1",
        "std layer 10",
        "std layer 12",
    ]
    assert profiles[0].label == "all runs" and profiles[0].first_bad == 3
    assert table.loc[0, "first NaN/inf layer, init"] == "3" and table.loc[0, "runs"] == "1 (diverged)"


def test_activation_figure_only_with_the_data(depth_tree: Path, tmp_path: Path) -> None:
    fig = figures.activations(load(depth_tree))
    assert fig is not None and fig.axes[0].get_yscale() == "log"
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.startswith("NaN/inf from layer 33") and "init=normal, norm=none" in t for t in texts)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "init=normal, norm=none (n=2)" in labels and len(labels) == 3
    paths = figures.save(fig, tmp_path / "fig", "activations")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    plain = load(write_sweep(tmp_path / "plain", norms=("batch",), batches=(8,), seeds=(1,)))
    assert figures.activations(plain) is None and activations.init_profiles(plain) == []


def test_failed_runs_stay_out_of_the_activation_profiles(tmp_path: Path) -> None:
    run = write_run(tmp_path / "f", "none", 16, 0, status="failed", activations=True)
    add_activations(run, [1.0] * 5)
    assert activations.init_profiles(load(tmp_path)) == []


# ---------------------------------------------------------------- loss threshold claim


def _race_tree(
    root: Path, crossings: dict[str, tuple[int | None, ...]], batch: int = 8, model: str = "rnn"
) -> Path:
    """Per norm, per seed: the step at which the training loss drops from 1.4 to 0.4 (None:
    it stays at 1.2, never below half of 1.4). Logged every 10 steps up to 100."""
    for norm, steps in crossings.items():
        for seed, cross in enumerate(steps):
            run = write_run(root / f"batch={batch},norm={norm},seed={seed}", norm, batch, seed, model=model)
            points = [
                (s, 1.4 if s == 10 else 1.2 if cross is None or s < cross else 0.4)
                for s in range(10, 101, 10)
            ]
            set_curve(run, points)
    return root


def _threshold(root: Path, **kwargs: object) -> list[claims.Claim]:
    """The threshold claims, judged on the raw logged curves unless ``loss_windows`` is given."""
    kwargs.setdefault("loss_windows", 1)
    return [c for c in evaluate(load(root), **kwargs) if "threshold" in c.name]


def test_threshold_claim_passes_when_layer_gets_there_first(tmp_path: Path) -> None:
    [claim] = _threshold(_race_tree(tmp_path, {"layer": (20, 30), "batch": (50, 60), "none": (None, None)}))
    assert claim.verdict == PASS and claim.context == "batch=8"
    assert "threshold 0.7 = 0.5 x initial train loss 1.4" in claim.evidence
    # the mean curve over seeds (0.8 at step 20) is what crosses, at 30
    assert (
        "norm=layer 30 (seeds: 20, 30) < norm=batch 60 (seeds: 50, 60); norm=none never (lowest mean 1.2)"
        in claim.evidence
    )
    assert "0.5 x the train loss at the first logged step" in claim.rule


def test_threshold_claim_fails_and_says_when_seeds_do_not_resolve_it(tmp_path: Path) -> None:
    [claim] = _threshold(_race_tree(tmp_path, {"layer": (40, 70), "batch": (30, 50)}))
    assert claim.verdict == FAIL
    assert "norm=batch 50 (seeds: 30, 50) ~ norm=layer 70 (seeds: 40, 70)" in claim.evidence
    [never] = _threshold(_race_tree(tmp_path / "b", {"layer": (None, None), "batch": (30, 30)}))
    assert never.verdict == FAIL and "norm=layer never" in never.evidence


def test_threshold_claim_ties_and_missing_data(tmp_path: Path) -> None:
    [tie] = _threshold(_race_tree(tmp_path / "tie", {"layer": (30, 30), "group": (30, 30)}))
    assert tie.verdict == PASS and "tied at equal steps with norm=group" in tie.evidence
    [no_layer] = _threshold(_race_tree(tmp_path / "nolayer", {"batch": (30, 40), "none": (50, 60)}))
    assert no_layer.verdict == MISSING and "no finished norm=layer runs" in no_layer.evidence
    [nobody] = _threshold(_race_tree(tmp_path / "nobody", {"layer": (None, None), "batch": (None, None)}))
    assert nobody.verdict == MISSING and "no norm reaches the threshold" in nobody.evidence


def test_threshold_claim_fixed_threshold_and_per_batch(tmp_path: Path) -> None:
    _race_tree(tmp_path, {"layer": (20, 30), "batch": (50, 60)}, batch=8)
    _race_tree(tmp_path, {"layer": (60, 70), "batch": (20, 30)}, batch=64)
    found = {c.context: c for c in _threshold(tmp_path)}
    assert found["batch=8"].verdict == PASS and found["batch=64"].verdict == FAIL
    # 1.3: every drop from 1.4 to 1.2 at step 20 crosses it; a tie, said so
    [fixed, _] = _threshold(tmp_path, loss_threshold=1.3)
    assert fixed.verdict == PASS and "threshold 1.3" in fixed.evidence and "tied" in fixed.evidence


def test_threshold_claim_only_for_recurrent_models_unless_asked(tmp_path: Path) -> None:
    mlp = _race_tree(tmp_path / "mlp", {"layer": (20, 30), "batch": (50, 60)}, model="mlp")
    assert _threshold(mlp) == [] and len(evaluate(load(mlp))) == 1  # the ordering; one batch size
    [forced] = _threshold(mlp, threshold_claim=True)
    assert forced.verdict == PASS
    rnn = _race_tree(tmp_path / "rnn", {"layer": (20, 30), "batch": (50, 60)})
    assert _threshold(rnn, threshold_claim=False) == []
    [other] = _threshold(rnn, threshold_norm="batch")
    assert other.verdict == FAIL and other.name == "norm=batch reaches the train loss threshold first"


def test_threshold_claim_says_when_the_lead_is_within_seed_noise(tmp_path: Path) -> None:
    [claim] = _threshold(_race_tree(tmp_path, {"layer": (20, 50), "batch": (40, 60)}))
    assert claim.verdict == PASS and "norm=layer 50 (seeds: 20, 50) ~ norm=batch 60" in claim.evidence
    assert claim.evidence.endswith(
        "(not resolved by these seeds: the 95% CIs of norm=layer and norm=batch overlap)"
    )


def test_trailing_mean_weights_each_log_window_by_its_steps() -> None:
    # windows of 5, 5 and 1 step (the last of an epoch): the 1-step value counts for 1/11
    curve = pd.DataFrame({"step": [5, 10, 11], "value": [1.0, 1.0, 0.0]})
    smooth = claims.trailing_mean(curve, 3)
    assert smooth.tolist() == pytest.approx([1.0, 1.0, 10 / 11]) and smooth.index.tolist() == [5, 10, 11]
    assert claims.trailing_mean(curve, 1).tolist() == [1.0, 1.0, 0.0]


def test_threshold_claim_ignores_one_noisy_short_window_by_default(tmp_path: Path) -> None:
    # none: one 1-step window dips to 0.3 by chance (the runner's last window of an epoch);
    # layer: a sustained drop to 0.4 from step 60
    for norm in ("none", "layer"):
        for seed in (0, 1):
            run = write_run(tmp_path / f"batch=8,norm={norm},seed={seed}", norm, 8, seed, model="rnn")
            points = [(s, 1.4) for s in (5, 10, 15, 16, 21, 26, 31)] + [(32, 0.3 if norm == "none" else 1.4)]
            points += [(s, 1.4 if norm == "none" or s < 60 else 0.4) for s in range(40, 101, 10)]
            set_curve(run, points)
    [raw] = _threshold(tmp_path)
    assert raw.verdict == FAIL and "norm=none 32" in raw.evidence
    [judged] = _threshold(tmp_path, loss_windows=claims.LOSS_WINDOWS)
    assert judged.verdict == PASS and "norm=none never" in judged.evidence
    assert "norm=layer 80" in judged.evidence  # at 70: (1.4 + 0.4 + 0.4) / 3 = 0.73; at 80: 0.4
    assert "mean over the last 3 log windows (step-weighted)" in judged.rule
