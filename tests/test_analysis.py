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
from fake_results import write_run, write_sweep

from normbench.analysis import (
    FAIL,
    MISSING,
    PASS,
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
    assert verdicts == {"norm=batch degrades at small batch": PASS,
                        "norm=group is batch-size independent": PASS,
                        "ordering of norms at the largest batch": PASS}


def inverted(norm: str, batch: int, seed: int) -> float:
    """A world where the papers are wrong: BN flat, GN degrading, LN best."""
    base = {"batch": 20.0, "group": 15.0 + 16.0 / batch, "layer": 10.0}[norm]
    return base + 0.1 * seed


def test_claims_fail_when_the_data_says_otherwise(tmp_path: Path) -> None:
    res = load(write_sweep(tmp_path, norms=("batch", "group", "layer"), batches=(2, 32), seeds=(1, 2, 3),
                           error=inverted))
    found = {c.name: c for c in evaluate(res)}
    assert {c.verdict for c in found.values()} == {FAIL}
    assert "spread 7.50 points" in found["norm=group is batch-size independent"].evidence
    assert found["ordering of norms at the largest batch"].evidence.startswith("batch=32: norm=layer")


def test_claims_say_missing_data_instead_of_passing(tmp_path: Path) -> None:
    one_batch = load(write_sweep(tmp_path / "a", norms=("batch", "group"), batches=(8,), seeds=(1, 2)))
    assert {c.verdict for c in evaluate(one_batch)[:2]} == {MISSING}
    one_seed = load(write_sweep(tmp_path / "b", norms=("batch",), batches=(2, 32), seeds=(1,)))
    bn, gn, order = evaluate(one_seed)
    assert bn.verdict == MISSING and "2+ seeds" in bn.evidence  # the mean alone would "pass"
    assert gn.verdict == MISSING and "norm=group finished at 0" in gn.evidence
    assert order.verdict == MISSING
    nothing = evaluate(load(tmp_path / "empty"))
    assert [c.verdict for c in nothing] == [MISSING] * 3


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
    made = {"loss": figures.loss_curves(res, styles, smooth=3, log=True),
            "small": figures.small_batch(res, styles),
            "gap": figures.batchstats_gap(res, styles),
            "grid": figures.grid(res.done, "train/loss", "norm.name", styles, hue="batch")}
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
                write_run(tmp_path / model / f"batch={batch},seed={seed}", "group", batch, seed, model=model,
                          optim__lr=0.1 * batch / 32, overrides=[f"batch={batch}", f"seed={seed}"])
    res = load(tmp_path)
    assert res.swept == ["batch", "model.name", "seed"]
    assert {"model.depth", "optim.lr"} <= set(res.runs.columns)  # still columns, for reference


def test_analysis_never_imports_the_runner() -> None:
    code = ("import sys, normbench.analysis, normbench.report; "
            "sys.exit('normbench.runner' in sys.modules or 'normbench.train' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_norm_options_that_vary_make_variants_not_cells(tmp_path: Path) -> None:
    # the GN paper's groups ablation: group norm at two group counts, BN as the baseline
    for groups in (2, 8):
        for seed in (1, 2):
            for batch in (4, 32):
                write_run(tmp_path / f"g{groups}" / f"b{batch}s{seed}", "group", batch, seed,
                          norm__num_groups=groups)
    write_sweep(tmp_path / "bn", norms=("batch",), batches=(4, 32), seeds=(1, 2))
    res = load(tmp_path)
    assert "norm.num_groups" in res.swept
    assert set(res.runs["norm"]) == {"batch", "group(num_groups=2)", "group(num_groups=8)"}
    diffs = paired_differences(res.done, "test/error", ["batch"], baseline="batch")
    assert len(diffs) == 4 and (diffs["n"] == 2).all()
    styles = figures.norm_styles(res.runs["norm"])
    assert styles["group(num_groups=2)"].color == figures.KNOWN_STYLES["group"].color
    assert styles["group(num_groups=2)"] != styles["group(num_groups=8)"]
