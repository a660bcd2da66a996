"""The analysis names no norm of ours: published numbers and the claims' default norms go by
the papers' name of a norm ("BN", "GN"), which the registry declares and each run records.
A norm registered under another name but declared as the papers' BN gets BN's claims and
published numbers; a tree from before the record gets the registry's."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from fake_results import _rng, write_sweep

from normbench.analysis import claims, load
from normbench.analysis.claims import PASS
from normbench.analysis.stats import NORM_PAPER_KEY
from normbench.norms import NORMS, paper_norm
from normbench.report import Options, build_report
from normbench.run.record import NORM_RECORD

PACKAGE = Path(__file__).resolve().parents[1] / "normbench"
# String literals in analysis/ and report/ that equal a registered norm's name but mean
# something else, each with what it means there
NOT_NORMS = {
    "batch": "the per-device batch-size column (the command line's batch=)",
    "layer": "a network layer's name in the activation and noise tables",
    "none": "the English word in a table cell or a matplotlib line style",
    "custom": "the choice norm=custom (the user's own norm) in a tree from before the record",
}


def _error(norm: str, batch: int, seed: int) -> float:
    """The GN paper's shape: the BN-like norm 6 points worse at batch 2, the GN-like one flat."""
    noise = _rng(norm, batch, seed).normal(0, 0.3)
    return 10.0 + (6.0 if norm == "mybn" and batch == 2 else 0.0) + noise


def _tree(root: Path, papers: dict[str, str] | None) -> Path:
    """Runs of two norms the registry does not know, "mybn" and "mygn", each recording the
    papers' name it is declared as (``papers``; None: a record from before papers were
    recorded)."""
    write_sweep(
        root, norms=("mybn", "mygn"), batches=(2, 32), seeds=(1, 2, 3, 4, 5), model="resnet", error=_error
    )
    for path in root.rglob("summary.json"):
        summary = json.loads(path.read_text())
        name = summary["config"]["norm"]["name"]
        properties = {"batch_statistics": name == "mybn"}
        if papers is not None:
            properties["paper"] = papers[name]
        summary[NORM_RECORD] = {"label": name, "name": name, "preset": {}, "properties": properties}
        path.write_text(json.dumps(summary))
    return root


def test_the_registry_declares_the_papers_names():
    assert {paper_norm(p) for p in ("BN", "GN", "LN", "IN")} == {"batch", "group", "layer", "instance"}
    assert paper_norm("no such paper") is None and NORMS["custom"].paper == ""


def test_claims_about_bn_and_gn_follow_the_recorded_papers_name(tmp_path):
    res = load(_tree(tmp_path / "r", {"mybn": "BN", "mygn": "GN"}))
    assert set(res.runs[NORM_PAPER_KEY]) == {"BN", "GN"}
    found = {c.name: c for c in claims.evaluate(res)}
    assert found["norm=mybn degrades at small batch"].verdict == PASS
    assert found["norm=mygn is batch-size independent"].verdict == PASS
    # the published effect is BN's (GN paper Figure 1: x1.47 from 32 to 2), found by "BN"
    assert "GN paper x1.47" in found["norm=mybn degrades at small batch"].published


@pytest.mark.slow
def test_the_report_takes_its_baseline_and_published_numbers_from_the_papers_name(tmp_path):
    root = _tree(tmp_path / "r", {"mybn": "BN", "mygn": "GN"})
    build_report(root, tmp_path / "out", Options())
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Differences against norm=mybn, paired by seed" in md
    assert "norm=mybn degrades more than norm=mygn" in md


def test_without_a_recorded_papers_name_the_claims_name_the_registrys_norm(tmp_path):
    # the runs declare nothing: BN's claims are about the registry's BN, which no run is
    res = load(_tree(tmp_path / "r", None))
    names = {c.name for c in claims.evaluate(res)}
    assert "norm=batch degrades at small batch" in names
    assert not any("mybn degrades" in n for n in names)


def test_a_named_norm_option_still_wins(tmp_path):
    res = load(_tree(tmp_path / "r", {"mybn": "BN", "mygn": "GN"}))
    opts = claims.ClaimOptions(bn="mygn")
    assert "norm=mygn degrades at small batch" in {c.name for c in claims.evaluate(res, options=opts)}


def _string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


@pytest.mark.parametrize("folder", ["analysis", "report"])
def test_no_norm_is_named_in_the_analysis_or_the_report(folder):
    named = [
        f"{path.relative_to(PACKAGE)}:{line}: {text!r}"
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for line, text in _string_literals(path)
        if text in NORMS and text not in NOT_NORMS
    ]
    assert not named, "norm names in code that should go by recorded properties: " + ", ".join(named)
