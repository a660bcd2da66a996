"""The remedies' claims (experiment=remedies): every norm beside BN judged non-inferior to it at
the largest batch (Holm over the norms) and batch-size independent (TOST), only where the report
is told to (remedy_claims, which the preset sets); by default no grid gets them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import scipy.stats
from fake_results import _rng, write_run, write_sweep

from normbench.analysis import load
from normbench.analysis.claims import (
    FAIL,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    PASS,
    ClaimOptions,
    evaluate,
    out_of_scope,
    remedy_near_baseline,
)
from normbench.errors import ConfigError
from normbench.report.published import published_section

ON = ClaimOptions(remedy_claims=True)

# error (%) at per-device 32 and 2: BN degrades; GN, FRN flat and near BN; EvoNorm-S0 flat but
# 5 points behind BN; batch renorm as BN at 32 and 3 points worse at 2
SHAPE = {
    "batch": (10.0, 16.0),
    "group": (10.5, 10.5),
    "frn": (10.3, 10.3),
    "evonorm_s0": (15.0, 15.0),
    "batch_renorm": (10.0, 13.0),
}


def shaped(norm: str, batch: int, seed: int) -> float:
    return SHAPE[norm][batch == 2] + 0.3 * _rng(norm, batch, seed).normal()


def remedies_grid(root: Path, norms=tuple(SHAPE)) -> Path:
    return write_sweep(
        root, norms=norms, batches=(2, 32), seeds=(1, 2, 3, 4, 5), error=shaped, model="resnet"
    )


def test_each_norm_is_judged_against_bn_and_for_flatness(tmp_path: Path) -> None:
    verdicts = {c.name: c.verdict for c in evaluate(load(remedies_grid(tmp_path)), options=ON)}
    assert {k: v for k, v in verdicts.items() if "non-inferior" in k} == {
        "norm=batch_renorm is non-inferior to norm=batch at the largest batch": PASS,
        "norm=evonorm_s0 is non-inferior to norm=batch at the largest batch": FAIL,
        "norm=frn is non-inferior to norm=batch at the largest batch": PASS,
        "norm=group is non-inferior to norm=batch at the largest batch": PASS,
    }
    flat = {k: v for k, v in verdicts.items() if k.endswith("is batch-size independent")}
    assert flat == {
        "norm=group is batch-size independent": PASS,  # claims/flat.py's, as before
        "norm=batch_renorm is batch-size independent": FAIL,
        "norm=evonorm_s0 is batch-size independent": PASS,
        "norm=frn is batch-size independent": PASS,
    }
    assert verdicts["norm=batch degrades at small batch"] == PASS


def test_the_evidence_names_the_correction_and_the_published_numbers(tmp_path: Path) -> None:
    found = {c.name: c for c in evaluate(load(remedies_grid(tmp_path)), options=ON)}
    frn = found["norm=frn is non-inferior to norm=batch at the largest batch"]
    assert "Holm-corrected over those 4 norms" in frn.rule and "within-margin p (Holm)" in frn.evidence
    assert frn.published.startswith("none published")  # SOURCES.md has no FRN number
    gn = found["norm=group is non-inferior to norm=batch at the largest batch"]
    assert "GN paper Table 1: 24.1 vs 23.6" in gn.published


def _cell(diffs: list[float]) -> pd.DataFrame:
    """BN at 10% on 5 seeds at batch 32, frn at 10% + each seed's difference (points)."""
    rows = [("batch", 32, s, 0.10) for s in range(5)]
    rows += [("frn", 32, s, 0.10 + d / 100) for s, d in enumerate(diffs)]
    return pd.DataFrame(rows, columns=["norm", "batch", "seed", "test/error"])


def test_holm_over_the_norms_holds_each_test_to_a_stricter_level() -> None:
    diffs = [0.1, 0.9, 1.9, 0.6, 0.5]  # mean 0.8 points, below the 1.5 margin at p ~ 0.04
    p = scipy.stats.ttest_1samp([d - 1.5 for d in diffs], 0, alternative="less").pvalue
    assert 0.0125 < p < 0.05  # resolved alone, not after Holm's x4
    runs, opts = _cell(diffs), ClaimOptions()
    alone = remedy_near_baseline(runs, "test/error", "frn", "batch", ["frn"], opts)
    among = remedy_near_baseline(runs, "test/error", "frn", "batch", ["evonorm_s0", "frn", "gn", "br"], opts)
    assert (alone.verdict, among.verdict) == (PASS, INCONCLUSIVE)
    assert f"within-margin p (Holm) = {min(1, 4 * p):.3g}" in among.evidence
    assert "alpha 0.0125 (Holm's first step over 4 norms)" in among.evidence  # its planning line


@pytest.mark.slow
@pytest.mark.parametrize(
    "norms",
    [
        ("batch", "group"),  # small_batch, lr_sensitivity
        ("none", "batch", "layer", "instance", "group"),  # norm_compare
        ("batch", "layer", "group"),  # rnn_norms, mlp_threshold
        tuple(SHAPE),  # the remedies' own grid: the switch decides, not the norms it runs
    ],
)
def test_no_grid_gets_them_unless_the_report_is_told_to(tmp_path: Path, norms) -> None:
    res = load(write_sweep(tmp_path, norms=norms, batches=(2, 32), seeds=(1, 2, 3), model="resnet"))
    names = [c.name for c in evaluate(res)]
    assert not [n for n in names if "non-inferior" in n]
    assert [n for n in names if n.endswith("batch-size independent")] == [
        "norm=group is batch-size independent"
    ]
    assert set(out_of_scope(res)) <= {"the batch-size claims (BN degrades, GN flat)", "the ordering of norms"}
    switched_on = [c.name for c in evaluate(res, options=ON) if "non-inferior" in c.name]
    assert len(switched_on) == len(norms) - 1  # every norm but BN, LN and none included


@pytest.mark.slow
def test_the_switch_is_a_report_option_and_a_preset_key(tmp_path: Path) -> None:
    from normbench.report.cli import main
    from normbench.report.options import Options

    assert Options.from_flat(remedy_claims=True).claims.remedy_claims is True
    root = remedies_grid(tmp_path, norms=("batch", "frn"))
    assert main([str(root), "--remedy-claims", "on"]) == 0
    assert "norm=frn is non-inferior to norm=batch" in (root / "report.md").read_text()
    with pytest.raises(SystemExit) as bad:
        main([str(root), "--remedy-claims", "maybe"])
    assert bad.value.code == 2
    with pytest.raises(ConfigError, match="remedy_claims=maybe: is out of range; use true or false"):
        Options.from_flat(remedy_claims="maybe")  # the preset's YAML
    preset = Path(__file__).parents[1] / "experiments" / "remedies.yaml"
    assert "remedy_claims: true" in preset.read_text()


def test_a_users_norm_joins_by_a_second_sweep_into_the_same_folder(tmp_path: Path) -> None:
    # the preset's grid, then norm=custom norm._target_=... norm.label=mine into the same folder
    root = remedies_grid(tmp_path, norms=("batch", "group"))
    for batch in (2, 32):
        for seed in (1, 2, 3, 4, 5):
            write_run(
                root / f"batch={batch},norm=custom,norm._target_=mypkg.MyNorm,norm.label=mine,seed={seed}",
                "custom",
                batch,
                seed,
                error=lambda n, b, s: 10.4 + 0.3 * _rng("mine", b, s).normal(),
                model="resnet",
                norm___target_="mypkg.MyNorm",
                norm__label="mine",
            )
    verdicts = {c.name: c.verdict for c in evaluate(load(root), options=ON)}
    assert verdicts["norm=mine is non-inferior to norm=batch at the largest batch"] == PASS
    assert verdicts["norm=mine is batch-size independent"] == PASS
    assert verdicts["norm=group is non-inferior to norm=batch at the largest batch"] == PASS


def test_without_bn_the_gap_is_not_applicable_and_flatness_still_judged(tmp_path: Path) -> None:
    found = evaluate(load(remedies_grid(tmp_path, norms=("frn", "group"))), options=ON)
    (gap,) = [c for c in found if "non-inferior" in c.name]
    assert gap.verdict == NOT_APPLICABLE and "no norm=batch" in gap.evidence
    assert {c.name: c.verdict for c in found}["norm=frn is batch-size independent"] == PASS


def test_the_published_section_says_why_frn_and_evonorm_have_no_number(tmp_path: Path) -> None:
    res = load(remedies_grid(tmp_path))
    notes = [b.content for b in published_section(res.done, tmp_path) if b.kind == "p"]
    assert any("No published number is shown for frn, evonorm_s0" in n for n in notes)
    plain = load(remedies_grid(tmp_path / "br", norms=("batch", "group", "batch_renorm")))
    assert not any(
        "No published number" in b.content for b in published_section(plain.done, tmp_path) if b.kind == "p"
    )
