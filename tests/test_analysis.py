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
import scipy.stats
from conftest import with_papers
from fake_results import BASE_ERROR_PCT, _rng, add_activations, set_curve, write_run, write_sweep

from normbench.analysis import (
    FAIL,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    PASS,
    ClaimOptions,
    activations,
    aggregate,
    claims,
    describe,
    difference,
    evaluate,
    figures,
    holm,
    load,
    paired_differences,
    seeds_needed,
    stats,
    t_interval,
)
from normbench.analysis.load import Results

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


def test_t_interval_by_hand() -> None:
    # [1, 2, 3]: mean 2, SD 1, standard error 1/sqrt(3), t(0.975, 2 df) = 4.302653
    low, high = t_interval([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)
    assert (low, high) == (pytest.approx(2 - half), pytest.approx(2 + half))
    one = t_interval([0.3])
    assert math.isnan(one[0]) and math.isnan(one[1])
    assert t_interval([0.25, 0.25, 0.25]) == (0.25, 0.25)  # no spread: no doubt about the mean


@pytest.mark.parametrize("n", [2, 3, 5])
def test_t_intervals_cover_the_true_mean_95_percent_of_the_time(n: int) -> None:
    # 4000 simulated experiments of n seeds each from N(10, 2^2); the percentile bootstrap this
    # replaced covered 48% (n=2), 69% (n=3), 84% (n=5)
    draws = np.random.default_rng(12).normal(10.0, 2.0, size=(n, 4000))
    low, high = t_interval(draws)
    coverage = float(np.mean((low <= 10.0) & (high >= 10.0)))
    assert 0.93 <= coverage <= 0.97, coverage


def test_describe_by_hand() -> None:
    d = describe([1.0, 2.0, 3.0, 4.0], seeds=[3, 1, 2, 0])
    assert d["n"] == 4 and d["mean"] == 2.5 and d["std"] == pytest.approx(math.sqrt(5 / 3))
    half = 3.182446 * math.sqrt(5 / 3) / 2  # t(0.975, 3 df) x SD / sqrt(4)
    assert d["ci_low"] == pytest.approx(2.5 - half) and d["seeds"] == (0, 1, 2, 3)
    one = describe([0.1])
    assert one["n"] == 1 and math.isnan(one["std"]) and math.isnan(one["ci_low"])


def test_welch_difference_by_hand() -> None:
    # a = [1, 2, 3] (var 1), b = [2, 4, 6, 8] (var 20/3): se = sqrt(1/3 + 5/3) = sqrt(2),
    # t = -3 / sqrt(2), Welch df = 2^2 / ((1/3)^2 / 2 + (5/3)^2 / 3) = 4.0755
    d = difference(
        pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2]), pd.Series([2.0, 4.0, 6.0, 8.0], index=[5, 6, 7, 8])
    )
    assert not d.paired and d.diff == -3.0 and d.n_text == "3 vs 4 seeds"
    df = 4 / ((1 / 3) ** 2 / 2 + (5 / 3) ** 2 / 3)
    assert d.p_value() == pytest.approx(2 * scipy.stats.t.sf(3 / math.sqrt(2), df))
    low, high = d.interval()
    assert high - low == pytest.approx(2 * scipy.stats.t.ppf(0.975, df) * math.sqrt(2))


def test_paired_difference_pairs_by_seed() -> None:
    # seeds differ by 1 point, the two norms by 0.5 +- 0.1 within a seed: pairing sees only that
    a = pd.Series([10.6, 11.4, 12.5], index=[3, 1, 2])
    b = pd.Series([11.0, 12.0, 10.0], index=[1, 2, 3])
    d = difference(a, b)
    assert d.paired and d.n_text == "3 pairs" and d.diff == pytest.approx(0.5) and d.sd == pytest.approx(0.1)
    low, high = d.interval()
    assert low == pytest.approx(0.5 - 4.302653 * 0.1 / math.sqrt(3)) and d.p_value("greater") < 0.01


def test_holm_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max
    # 0.02, 0.03, 0.06, 0.06; back in the input order:
    assert holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.3, float("nan")]).tolist() == [0.6, 1.0]  # not testable counts as 1
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0]


def test_seeds_needed_matches_the_textbook() -> None:
    # one-sided one-sample t at alpha 0.05, effect = 1 SD, power 0.8: 8 (G*Power's answer)
    assert seeds_needed(1.0, 1.0) == 8
    assert seeds_needed(2.0, 1.0) > seeds_needed(1.0, 1.0)  # more spread, more seeds
    assert seeds_needed(1.0, 1.0, equivalence=True) > 8  # two one-sided tests must both reject
    assert seeds_needed(0.0, 1.0) is None and seeds_needed(float("nan"), 1.0) is None


def test_binomial_standard_error() -> None:
    # the "about 1 point at 5% error on 500 images"
    assert stats.binomial_se(0.05, 500) == pytest.approx(0.009747, abs=1e-6)
    assert stats.binomial_metric("test/error") and stats.binomial_metric("test_batchstats/accuracy")
    assert not stats.binomial_metric("train/loss") and not stats.binomial_metric("test/loss")


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


def test_aggregate_per_cell_with_binomial_error() -> None:
    rows = [("batch", 8, 1, 0.1), ("batch", 8, 2, 0.2), ("group", 8, 1, 0.3)]
    frame = _runs(rows).assign(n_test=[100, 100, 400], learned=[True, False, True])
    table = aggregate(frame, "test/error", ["norm", "batch"]).set_index("norm")
    half = 12.706205 * math.sqrt(0.005) / math.sqrt(2)  # t(0.975, 1 df) x SD 0.0707 / sqrt(2)
    assert table.loc["batch", "mean"] == pytest.approx(0.15)
    assert 0.15 - half < 0 and table.loc["batch", "ci_low"] == 0.0  # an error is never below 0%
    assert table.loc["batch", "ci_high"] == pytest.approx(0.15 + half)
    assert table.loc["batch", "binom_se"] == pytest.approx((0.03 + 0.04) / 2)  # sqrt(.09/100), sqrt(.16/100)
    assert table.loc["batch", "not_learned"] == 1 and table.loc["group", "not_learned"] == 0
    assert table.loc["group", "n"] == 1 and math.isnan(table.loc["group", "ci_high"])


def test_two_runs_of_one_seed_are_one_replicate(tmp_path: Path) -> None:
    """The same sweep kept under two names in one tree: seeds 1 and 2, each run twice. n is
    2 and the interval the one of two seeds (counting four values narrowed it about 7-fold):
    the second run of each seed is a duplicate, left out and named, never averaged in."""
    write_sweep(tmp_path / "a", norms=("batch",), batches=(8,), seeds=(1, 2), name="first")
    write_sweep(tmp_path / "b", norms=("batch",), batches=(8,), seeds=(1, 2), name="again")
    res = load(tmp_path)
    runs = res.done
    assert sorted(runs["name"]) == ["first", "first"]
    assert res.runs["status"].value_counts().to_dict() == {"done": 2, "duplicate": 2}
    once = runs[runs["name"] == "first"]
    row = aggregate(runs, "test/error", ["norm", "batch"]).iloc[0]
    low, high = t_interval(once["test/error"].to_numpy(float))
    assert row["n"] == 2 and row["seeds"] == (1, 2)
    assert row["ci_low"] == pytest.approx(low) and row["ci_high"] == pytest.approx(high)


# ---------------------------------------------------------------- claims on known answers


def tidy(norm: str, batch: int, seed: int) -> float:
    """The GroupNorm paper's shape with little seed noise (0.1 points): every claim resolved."""
    bn_penalty = 24.0 / batch**1.2 if norm == "batch" else 0.0
    return BASE_ERROR_PCT[norm] + bn_penalty + 0.1 * _rng(norm, batch, seed).normal()


def papers_shape(tmp_path: Path) -> Results:
    """BN, GN, LN on a ResNet at batch 2 and 32, 3 seeds, errors shaped as the paper's (tidy)."""
    norms = ("batch", "group", "layer")
    sweep = write_sweep(tmp_path, norms=norms, batches=(2, 32), seeds=(1, 2, 3), error=tidy, model="resnet")
    return load(sweep)


def test_claims_pass_on_the_papers_shape(tmp_path: Path) -> None:
    res = papers_shape(tmp_path)
    verdicts = {c.name: c.verdict for c in evaluate(res)}
    assert verdicts == {
        "norm=batch degrades at small batch": PASS,
        "norm=group is batch-size independent": PASS,
        "norm=batch degrades more than norm=group at small batch": PASS,
        "ordering of norms at the largest batch": PASS,
        "norm=group is within the margin of norm=batch at the largest batch": PASS,
        "norm=layer reaches the train loss threshold first": NOT_APPLICABLE,  # not a recurrent model
    }


def test_claims_on_an_accuracy_metric_keep_their_direction(tmp_path: Path) -> None:
    """--metric test/accuracy: higher is better, so "degrades" and the published order are
    judged on the error beside it; on the accuracy itself every verdict would flip."""
    res = papers_shape(tmp_path)
    by_accuracy = {c.name: (c.verdict, c.effect) for c in evaluate(res, "test/accuracy")}
    assert by_accuracy == {c.name: (c.verdict, c.effect) for c in evaluate(res, "test/error")}
    assert by_accuracy["norm=batch degrades at small batch"][0] == PASS


def test_claims_on_a_loss_are_not_in_points() -> None:
    runs = _cells({2: list(3.0 + 0.3 * STANDARD)}).rename(columns={"test/error": "test/loss"})
    claim = claims.flat(runs, "test/loss", "group", ClaimOptions(margin_pp=0.5))
    assert "margin +-0.5 units of test/loss" in claim.rule and "points" not in claim.rule
    assert claim.effect.endswith("units of test/loss (90% CI)") and "points" not in claim.evidence


def inverted(norm: str, batch: int, seed: int) -> float:
    """A world where the papers are wrong: BN flat, GN degrading, LN best."""
    base = {"batch": 20.0, "group": 15.0 + 16.0 / batch, "layer": 10.0}[norm]
    return base + 0.1 * seed + 0.05 * _rng(norm, batch, seed).normal()


def test_claims_fail_when_the_data_says_otherwise(tmp_path: Path) -> None:
    root = write_sweep(
        tmp_path,
        norms=("batch", "group", "layer"),
        batches=(2, 32),
        seeds=(1, 2, 3),
        error=inverted,
        model="resnet",
    )
    found = {c.name: c for c in evaluate(load(root)) if c.verdict != NOT_APPLICABLE}
    near = found.pop("norm=group is within the margin of norm=batch at the largest batch")
    assert near.verdict == PASS  # GN 4.5 points below BN here: within the margin, as published
    assert {c.verdict for c in found.values()} == {FAIL}
    flat = found["norm=group is batch-size independent"]
    assert flat.effect.startswith("batch=2 - batch=32: +7.4") and "(90% CI)" in flat.effect
    order = found["ordering of norms at the largest batch"]
    assert "norm=group - norm=batch: -" in order.evidence and "resolved reversed" in order.evidence


def _cells(
    series: dict[int, list[float]], norm: str = "group", base: list[float] | None = None
) -> pd.DataFrame:
    """A runs frame for one norm: test/error (fractions) per batch size, one value per seed;
    the largest batch gets ``base`` (default 15% for every seed), the others base + series."""
    largest = max(series) * 2
    base = base or [15.0] * len(next(iter(series.values())))
    rows = [(norm, largest, s, e / 100) for s, e in enumerate(base)]
    for batch, diffs in series.items():
        rows += [(norm, batch, s, (e + d) / 100) for s, (e, d) in enumerate(zip(base, diffs, strict=True))]
    return _runs(rows).assign(**{"norm.name": norm})


STANDARD = np.array([-2.0, -1.0, 0.0, 1.0, 2.0]) / math.sqrt(2.5)  # mean 0, SD 1


def test_tost_passes_a_flat_series() -> None:
    runs = _cells({2: list(0.2 + 0.3 * STANDARD), 8: list(0.2 - 0.3 * STANDARD)}, base=[14, 16, 15, 17, 13])
    claim = claims.flat(runs, "test/error", "group", ClaimOptions())
    assert claim.verdict == PASS, claim.evidence
    assert "batch=2 - batch=16: +0.20 [" in claim.evidence and "5 pairs" in claim.evidence
    assert "margin +-1.5 points" in claim.rule and "TOST" in claim.rule


def test_tost_fails_a_3_point_step() -> None:
    runs = _cells({2: list(3.0 + 0.3 * STANDARD), 8: list(0.2 + 0.3 * STANDARD)})
    claim = claims.flat(runs, "test/error", "group", ClaimOptions())
    assert claim.verdict == FAIL and claim.effect.startswith("batch=2 - batch=16: +3.00")
    assert claims.flat(runs, "test/error", "group", ClaimOptions(margin_pp=4.0)).verdict == PASS


def test_tost_with_two_noisy_seeds_is_inconclusive_and_says_how_many_would_do() -> None:
    runs = _cells({2: [1.0, -0.6]})
    claim = claims.flat(runs, "test/error", "group", ClaimOptions())
    assert claim.verdict == INCONCLUSIVE and claim.n == "2 pairs"
    # SD of the differences 1.13 points: TOST within +-1.5 at 80% power needs ~ a dozen seeds
    assert (
        "planning, not evidence: to resolve equivalence within +-1.5 points at an assumed" in claim.evidence
    )
    assert "(SD 1.13 points), about" in claim.evidence
    needed = seeds_needed(1.6 / math.sqrt(2), 1.5, equivalence=True)
    assert f"about {needed} seeds per cell" in claim.evidence and needed > 2


def test_degradation_three_verdicts() -> None:
    degraded = _cells({2: list(5.0 + 0.5 * STANDARD)}, norm="batch")
    assert claims.degrades(degraded, "test/error", "batch", ClaimOptions()).verdict == PASS
    # no degradation, resolved: the 95% CI's upper end is below the 1.5-point margin
    level = _cells({2: list(0.0 + 0.3 * STANDARD)}, norm="batch")
    found = claims.degrades(level, "test/error", "batch", ClaimOptions())
    assert found.verdict == FAIL and "one-sided p (below the margin) = " in found.evidence
    noisy = _cells({2: [2.0, -0.5]}, norm="batch")
    unsure = claims.degrades(noisy, "test/error", "batch", ClaimOptions())
    assert unsure.verdict == INCONCLUSIVE and "planning, not evidence: " in unsure.evidence


def _order_runs(errors: dict[str, list[float]], batch: int = 32) -> pd.DataFrame:
    rows = [(norm, batch, s, e / 100) for norm, values in errors.items() for s, e in enumerate(values)]
    return with_papers(_runs(rows).assign(**{"norm.name": lambda f: f["norm"], "model.name": "resnet"}))


def test_ordering_three_outcomes() -> None:
    base = np.array([10.0, 11.0, 9.0, 10.5])
    noise = np.array([0.1, -0.1, 0.05, -0.05])
    published = _order_runs({"batch": base, "group": base + 1 + noise, "layer": base + 2 - noise})
    assert claims.ordering(published, "test/error", ClaimOptions()).verdict == PASS
    reversed_ = _order_runs({"batch": base, "group": base + 1 + noise, "layer": base - 2 - noise})
    claim = claims.ordering(reversed_, "test/error", ClaimOptions())
    assert claim.verdict == FAIL and claim.effect.startswith("norm=layer - norm=group: -")
    tied = _order_runs({"batch": base, "group": base + 3 * noise, "layer": base - 2 * noise})
    unsure = claims.ordering(tied, "test/error", ClaimOptions())
    assert unsure.verdict == INCONCLUSIVE and unsure.evidence.count(": unresolved") == 2
    assert "planning, not evidence: to resolve a difference of 1.5 points per pair" in unsure.evidence


def test_ordering_holm_adjusts_the_pairs_p_values() -> None:
    base = np.array([10.0, 11.0, 9.0, 10.5])
    d1, d2 = np.array([1.0, 0.4, 1.5, 0.6]), np.array([1.0, 0.5, 1.5, 0.6])
    runs = _order_runs({"batch": base, "group": base + d1, "layer": base + d1 + d2})
    claim = claims.ordering(runs, "test/error", ClaimOptions())
    p1, p2 = (
        scipy.stats.ttest_rel(base + d1, base).pvalue,
        scipy.stats.ttest_rel(base + d1 + d2, base + d1).pvalue,
    )
    assert p2 < p1 < 0.05  # each pair alone would be resolved at 0.05
    # Holm by hand: the smaller p (p2) times 2, the larger times 1, then the running maximum
    h2 = 2 * p2
    h1 = max(h2, p1)
    assert h1 > 0.05 and h2 > 0.05
    assert f"p = {p1:.3g}, Holm {h1:.3g}: unresolved" in claim.evidence
    assert f"p = {p2:.3g}, Holm {h2:.3g}: unresolved" in claim.evidence
    assert claim.verdict == INCONCLUSIVE


def test_claims_say_inconclusive_for_missing_data(tmp_path: Path) -> None:
    failed_at_2 = write_sweep(tmp_path / "a", norms=("batch", "group"), batches=(2, 8), seeds=(1, 2))
    for run in failed_at_2.glob("batch=2,*"):
        write_run(run, run.name.split("norm=")[1].split(",")[0], 2, int(run.name[-1]), status="failed")
    found = evaluate(load(failed_at_2))
    assert [c.verdict for c in found[:2]] == [INCONCLUSIVE] * 2  # designed for 2 batch sizes, got 1
    assert found[0].evidence == "missing data: norm=batch finished at 1 batch size(s)"
    one_seed = load(write_sweep(tmp_path / "b", norms=("batch",), batches=(2, 32), seeds=(1,)))
    bn, gn, *_ = evaluate(one_seed)  # one norm: no ordering to judge (out of scope, not missing)
    assert bn.verdict == INCONCLUSIVE and "needs 2+ seeds at both ends" in bn.evidence
    assert gn.verdict == NOT_APPLICABLE and gn.evidence == "norm=group is not in this grid"
    nothing = evaluate(load(tmp_path / "empty"))
    assert {c.verdict for c in nothing} == {NOT_APPLICABLE}


def test_claims_the_grid_was_not_designed_for_are_not_made(tmp_path: Path) -> None:
    one_batch = load(
        write_sweep(tmp_path / "a", norms=("batch", "group"), batches=(8,), seeds=(1, 2), model="resnet")
    )
    assert [c.name for c in evaluate(one_batch) if c.verdict != NOT_APPLICABLE] == [
        claims.ORDERING,
        claims.NEAR_BASELINE.format(gn="group", bn="batch"),
    ]
    assert claims.out_of_scope(one_batch) == {claims.BATCH_SIZE_CLAIMS: "the grid runs one batch size (8)"}
    only_gn = load(write_sweep(tmp_path / "b", norms=("group",), batches=(2, 32), seeds=(1, 2)))
    assert {c.name: c.verdict for c in evaluate(only_gn)} == {
        "norm=batch degrades at small batch": NOT_APPLICABLE,
        "norm=group is batch-size independent": PASS,
        "norm=layer reaches the train loss threshold first": NOT_APPLICABLE,
    }
    assert list(claims.out_of_scope(only_gn)) == [claims.ORDER_CLAIM]


def test_the_published_order_applies_to_convolutional_image_models_only(tmp_path: Path) -> None:
    for model in ("mlp", "resnet", "rnn"):
        write_sweep(tmp_path / model, norms=("batch", "group"), batches=(32,), seeds=(1, 2), model=model)
    found = {c.context: c for c in evaluate(load(tmp_path)) if c.name == claims.ORDERING}
    assert found["model.name=resnet"].verdict != NOT_APPLICABLE
    for model in ("mlp", "rnn"):
        assert found[f"model.name={model}"].verdict == NOT_APPLICABLE
        assert "convolutional image models" in found[f"model.name={model}"].evidence


def test_claims_honour_the_margin(tmp_path: Path) -> None:
    res = load(write_sweep(tmp_path, norms=("group",), batches=(2, 32), seeds=(1, 2, 3), error=inverted))
    assert claims.flat(res.done, "test/error", "group", ClaimOptions()).verdict == FAIL
    wide = claims.flat(res.done, "test/error", "group", ClaimOptions(margin_pp=9.0))
    assert wide.verdict == PASS and "margin +-9 points" in wide.rule


def test_claims_are_checked_per_model(tmp_path: Path) -> None:
    for model in ("mlp", "resnet"):
        write_sweep(tmp_path / model, norms=("batch", "group"), batches=(2, 32), seeds=(1, 2), model=model)
    contexts = {c.context for c in evaluate(load(tmp_path))}
    assert contexts == {"model.name=mlp", "model.name=resnet"}


def test_a_run_that_did_not_learn_is_named_and_counted(tmp_path: Path) -> None:
    root = write_sweep(tmp_path, norms=("batch", "group"), batches=(2, 32), seeds=(1, 2, 3), error=tidy)
    note = {"learned": False, "learned_note": "test accuracy within 1 point of chance"}
    write_run(root / "batch=2,norm=batch,seed=2", "batch", 2, 2, error=tidy, record=note)
    res = load(root)
    assert res.runs["learned"].sum() == len(res.runs) - 1  # a missing key counts as learned
    found = {c.name: c for c in evaluate(res)}
    bn = found["norm=batch degrades at small batch"]
    assert bn.verdict == PASS  # it supports the claim; it used to make it INCONCLUSIVE
    assert bn.evidence.startswith(
        "runs that did not learn: norm=batch batch=2 seed=2 (test accuracy within 1 point of chance) "
        "(PASS with or without them)"
    )
    assert found["norm=group is batch-size independent"].verdict == PASS  # its cells all learned


def _at_chance(diffs: list[float], chance_seed: int) -> pd.DataFrame:
    """BN runs at batch 2 and 4 (base 15%), batch 2 = base + ``diffs``; one seed at batch 2
    at chance (90% error) that did not learn."""
    runs = _cells({2: diffs}, norm="batch")
    at = (runs["batch"] == 2) & (runs["seed"] == chance_seed)
    runs.loc[at, "test/error"] = 0.90
    return runs.assign(learned=~at)


def test_a_run_at_chance_counts_on_the_side_it_supports() -> None:
    def check(runs: pd.DataFrame) -> claims.Claim:
        return claims.degrades(runs, "test/error", "batch", ClaimOptions())

    # BN degrades by 5 points in four seeds, the fifth at chance at batch 2: the strongest case
    # of degradation, although its outlier alone makes the t-test on all five unresolved
    degraded = _at_chance(list(5.0 + 0.5 * STANDARD), chance_seed=0)
    assert check(degraded).verdict == INCONCLUSIVE  # every run as measured: a second mode
    claim = claims.counting_unlearned(check, degraded)
    assert claim.verdict == PASS and "they lean toward PASS: counted on its side" in claim.evidence
    # no degradation in four seeds, the fifth at chance at batch 2: that run goes against "no
    # degradation as large as the margin", so the FAIL of the other four does not stand
    level = _at_chance(list(0.3 * STANDARD), chance_seed=4)
    assert check(level[level["learned"]]).verdict == FAIL
    claim = claims.counting_unlearned(check, level)
    assert claim.verdict == INCONCLUSIVE and "they go against FAIL" in claim.evidence


# ---------------------------------------------------------------- figures and styles


def test_styles_known_and_unknown_names_are_distinct() -> None:
    from normbench.norms import NORMS

    own = {n: figures.Style.recorded(NORMS[n].style) for n in ("batch", "group")}
    styles = figures.norm_styles(["batch", "group", "my_norm", "batch_renorm"], own=own)
    assert styles["batch"] == own["batch"] == figures.Style("#0072B2", "-", "o")
    assert len({(s.color, str(s.linestyle), s.marker) for s in styles.values()}) == 4
    assert styles["my_norm"] == figures.norm_styles(["my_norm", "batch_renorm"])["my_norm"]


@pytest.mark.slow
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
        "sys.exit('normbench.run.runner' in sys.modules or 'normbench.run.train' in sys.modules)"
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
    own = figures.recorded_styles(res.runs, "norm")  # a tree from before: the registry's styles
    styles = figures.norm_styles(res.runs["norm"], stats.norm_names(res.runs), own)
    assert styles["group(num_groups=2)"].color == own["group(num_groups=2)"].color == "#D55E00"
    assert styles["group(num_groups=2)"] != styles["group(num_groups=8)"]


def _preset_sweep(
    root: Path, presets: dict[str, int | None], batches=(2, 32), seeds=(1, 2), style: str = "override"
) -> Path:
    """Runs as ``norm=group8`` composes them: the config says norm.name "group" with
    num_groups 8; norms without the option have no num_groups key. ``style``: how the choice
    is on record: "override" (``norm=group8`` among the overrides, trees before choices were
    recorded), "choices" (summary.json ``choices``; the overrides do not name the norm, as when
    a preset's defaults list chose it) or "none" (only the config: the run is named by
    ``norm.name``, as no preset is looked up outside the results tree)."""
    for preset, num_groups in presets.items():
        norm = "group" if num_groups else preset
        for batch in batches:
            for seed in seeds:
                overrides = [f"batch={batch}", f"seed={seed}"]
                overrides += [f"norm={preset}"] if style == "override" else []
                write_run(
                    root / f"batch={batch},norm={preset},seed={seed}",
                    norm,
                    batch,
                    seed,
                    error=tidy,
                    overrides=overrides,
                    record={"choices": {"norm": preset, "model": "mlp"}} if style == "choices" else None,
                    **({"norm__num_groups": num_groups} if num_groups else {}),
                )
    return root


@pytest.mark.parametrize(
    ("style", "label"), [("override", "group8"), ("choices", "group8"), ("none", "group")]
)
def test_a_norm_preset_is_named_as_chosen(tmp_path: Path, style: str, label: str) -> None:
    res = load(_preset_sweep(tmp_path, {"batch": None, "group8": 8}, style=style))
    assert set(res.runs["norm"]) == {"batch", label} and "norm.num_groups" not in res.swept
    found = {c.name: c for c in evaluate(res)}
    # a claim about "group" applies to group8, and says which it judged
    assert found[f"norm={label} is batch-size independent"].verdict == PASS
    if style == "choices":
        assert res.runs["choices.norm"].tolist().count("group8") == 4
    diffs = paired_differences(res.done, "test/error", ["batch"], baseline="batch")
    assert set(diffs["norm"]) == {label}


def test_two_presets_of_one_norm_are_each_claimed(tmp_path: Path) -> None:
    res = load(_preset_sweep(tmp_path, {"batch": None, "group5": 5, "group8": 8}))
    assert set(res.runs["norm"]) == {"batch", "group5", "group8"}
    found = {c.name: c for c in evaluate(res)}
    for preset in ("group5", "group8"):
        assert found[f"norm={preset} is batch-size independent"].verdict == PASS
    assert "norm=group is batch-size independent" not in found  # no twin beside them
    only_8 = evaluate(res, options=ClaimOptions(gn="group8"))
    assert [c.name for c in only_8 if "independent" in c.name] == ["norm=group8 is batch-size independent"]


def test_a_swept_option_of_a_preset_names_its_variants(tmp_path: Path) -> None:
    # group_sweep's style: norm=group with norm.num_groups swept, 32 (the default) among them
    for groups in (8, 32):
        for seed in (1, 2):
            write_run(
                tmp_path / f"norm.num_groups={groups},seed={seed}",
                "group",
                32,
                seed,
                norm__num_groups=groups,
                overrides=[f"norm.num_groups={groups}", f"seed={seed}"],
            )
    assert set(load(tmp_path).runs["norm"]) == {"group(num_groups=8)", "group(num_groups=32)"}


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


@pytest.mark.slow
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
    found = evaluate(load(root), options=ClaimOptions(**kwargs))
    return [c for c in found if "threshold" in c.name and c.verdict != NOT_APPLICABLE]


LAYER_FIRST = {"layer": (20, 30, 20), "batch": (50, 70, 60)}  # 30, 40, 40 steps behind
LAYER_LAST = {"layer": (60, 70, 70), "batch": (20, 30, 20)}


def test_threshold_claim_passes_when_layer_gets_there_first(tmp_path: Path) -> None:
    [claim] = _threshold(_race_tree(tmp_path, LAYER_FIRST))
    assert claim.verdict == PASS and claim.context == "batch=8"
    assert "threshold 0.7 = 0.5 x initial train loss 1.4" in claim.evidence
    assert "norm=batch seeds: 50, 70, 60; norm=layer seeds: 20, 30, 20" in claim.evidence
    p = scipy.stats.ttest_rel([50, 70, 60], [20, 30, 20]).pvalue
    assert (
        "norm=batch - norm=layer: +37 [" in claim.evidence and f"p = {p:.3g}, Holm {p:.3g}" in claim.evidence
    )
    assert "0.5 x the train loss at the first logged step" in claim.rule


def test_threshold_claim_does_not_test_a_censored_seed(tmp_path: Path) -> None:
    # none never gets there: its step is unknown, only "after step 100"; a t-test on a made-up
    # step (one log interval later) used to resolve it and PASS the claim
    [claim] = _threshold(_race_tree(tmp_path, {**LAYER_FIRST, "none": (None, None, None)}))
    assert claim.verdict == INCONCLUSIVE and "norm=none seeds: never, never, never" in claim.evidence
    assert (
        "norm=none - norm=layer: not tested (censored: a seed never reached the threshold)" in claim.evidence
    )
    assert "norm=batch - norm=layer: +37 [" in claim.evidence and "resolved as published" in claim.evidence
    assert "censored" in claim.rule


def test_threshold_claim_fails_only_when_resolved(tmp_path: Path) -> None:
    [unsure] = _threshold(_race_tree(tmp_path / "a", {"layer": (40, 70), "batch": (30, 50)}))
    assert unsure.verdict == INCONCLUSIVE and ": unresolved" in unsure.evidence
    assert (
        "to resolve an assumed true lead of 15 steps (the least resolved pair's observed lead: post-hoc)"
        in (unsure.evidence)
    )
    [behind] = _threshold(_race_tree(tmp_path / "b", LAYER_LAST))
    assert behind.verdict == FAIL and "resolved reversed" in behind.evidence
    [never] = _threshold(_race_tree(tmp_path / "c", {"layer": (None, None), "batch": (30, 40)}))
    assert never.verdict == INCONCLUSIVE and "norm=layer seeds: never, never" in never.evidence


def test_threshold_claim_ties_and_missing_data(tmp_path: Path) -> None:
    [tie] = _threshold(_race_tree(tmp_path / "tie", {"layer": (30, 30), "group": (30, 30)}))
    assert tie.verdict == INCONCLUSIVE and "+0 [n/a, n/a] steps" in tie.evidence
    assert "the difference is the same in every seed" in tie.evidence
    [no_layer] = _threshold(_race_tree(tmp_path / "nolayer", {"batch": (30, 40), "none": (50, 60)}))
    assert (
        no_layer.verdict == INCONCLUSIVE and "missing data: no finished norm=layer runs" in no_layer.evidence
    )
    [nobody] = _threshold(_race_tree(tmp_path / "nobody", {"layer": (None, None), "batch": (None, None)}))
    assert nobody.verdict == INCONCLUSIVE and "no norm reaches the threshold" in nobody.evidence


def test_threshold_claim_fixed_threshold_and_per_batch(tmp_path: Path) -> None:
    _race_tree(tmp_path, LAYER_FIRST, batch=8)
    _race_tree(tmp_path, LAYER_LAST, batch=64)
    found = {c.context: c for c in _threshold(tmp_path)}
    assert found["batch=8"].verdict == PASS and found["batch=64"].verdict == FAIL
    # 1.3: every drop from 1.4 to 1.2 at step 20 crosses it; a tie
    [fixed, _] = _threshold(tmp_path, loss_threshold=1.3)
    assert fixed.verdict == INCONCLUSIVE and "threshold 1.3" in fixed.evidence


def test_threshold_claim_only_for_recurrent_models_unless_asked(tmp_path: Path) -> None:
    mlp = _race_tree(tmp_path / "mlp", LAYER_FIRST, model="mlp")
    assert (
        _threshold(mlp) == [] and len(evaluate(load(mlp))) == 2
    )  # the ordering (n/a here), the threshold (n/a)
    [forced] = _threshold(mlp, threshold_claim=True)
    assert forced.verdict == PASS
    rnn = _race_tree(tmp_path / "rnn", LAYER_FIRST)
    assert _threshold(rnn, threshold_claim=False) == []
    [other] = _threshold(rnn, threshold_norm="batch")
    assert other.verdict == FAIL and other.name == "norm=batch reaches the train loss threshold first"


def test_trailing_mean_weights_each_log_window_by_its_steps() -> None:
    # windows of 5, 5 and 1 step (the last of an epoch): the 1-step value counts for 1/11
    curve = pd.DataFrame({"step": [5, 10, 11], "value": [1.0, 1.0, 0.0]})
    smooth = claims.trailing_mean(curve, 3)
    assert smooth.tolist() == pytest.approx([1.0, 1.0, 10 / 11]) and smooth.index.tolist() == [5, 10, 11]
    assert claims.trailing_mean(curve, 1).tolist() == [1.0, 1.0, 0.0]


def test_threshold_claim_ignores_one_noisy_short_window_by_default(tmp_path: Path) -> None:
    # none: one 1-step window dips to 0.3 by chance (the runner's last window of an epoch);
    # layer: a sustained drop to 0.4 from step 60, 70, 80 (seed 0, 1, 2)
    for norm in ("none", "layer"):
        for seed in (0, 1, 2):
            run = write_run(tmp_path / f"batch=8,norm={norm},seed={seed}", norm, 8, seed, model="rnn")
            points = [(s, 1.4) for s in (5, 10, 15, 16, 21, 26, 31)] + [(32, 0.3 if norm == "none" else 1.4)]
            points += [(s, 1.4 if norm == "none" or s < 60 + 10 * seed else 0.4) for s in range(40, 101, 10)]
            set_curve(run, points)
    [raw] = _threshold(tmp_path)
    assert raw.verdict == FAIL and "norm=none seeds: 32, 32, 32" in raw.evidence
    [judged] = _threshold(tmp_path, loss_windows=claims.LOSS_WINDOWS)
    assert judged.verdict == INCONCLUSIVE and "norm=none seeds: never, never, never" in judged.evidence
    assert "norm=layer seeds: 80, 90, 100" in judged.evidence  # at 70: (1.4 + 0.4 + 0.4) / 3 = 0.73
    assert "mean over the last 3 log windows (step-weighted)" in judged.rule


def test_learned_flag_wherever_the_summary_keeps_it(tmp_path: Path) -> None:
    write_run(tmp_path / "top", "batch", 4, 1, record={"learned": False, "learned_note": "at chance"})
    inside = write_run(tmp_path / "final", "batch", 4, 2)
    summary = json.loads((inside / "summary.json").read_text())
    summary["final"]["learned"] = False  # a flag among the final metrics: not a metric column
    (inside / "summary.json").write_text(json.dumps(summary))
    write_run(tmp_path / "old", "batch", 4, 3)  # written before the flag existed
    runs = load(tmp_path).runs.set_index("run_id")
    assert runs["learned"].to_dict() == {"final": False, "old": True, "top": False}
    assert runs.loc["top", "learned_note"] == "at chance" and list(runs.columns).count("learned") == 1
