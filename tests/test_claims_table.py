"""The claims table: a claim added as one module, listed in ``CLAIMS``, is judged by evaluate(),
shown in the report's claims table and gets its command-line option, with nothing else edited."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest
from fake_results import write_sweep

from normbench.analysis import claims, load
from normbench.analysis.claims import table
from normbench.report import main

TOY = """
from normbench.analysis.claims import PASS, Claim, ClaimSpec, Option


def judge(cell):
    level = cell.opts.toy_level
    n = cell.runs["seed"].nunique()
    evidence = f"toy evidence over {n} seeds"
    return [Claim(f"toy claim at level {level:g}", PASS, evidence, "toy rule", n=f"{n} seeds")]


CLAIM = ClaimSpec(
    title=lambda opts: "toy claim",
    judge=judge,
    options=(Option("toy_level", 0.5, "the toy claim's level", float),),
)
"""


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy claim as a module of its own, appended to the table for this test only."""
    (tmp_path / "toy_claim.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_claim", raising=False)
    import toy_claim

    monkeypatch.setattr(table, "CLAIMS", (*table.CLAIMS, toy_claim.CLAIM))


@pytest.mark.slow
def test_a_claim_added_as_one_module_is_judged_reported_and_has_its_option(toy, tmp_path: Path):
    sweep = write_sweep(tmp_path / "s", norms=("batch", "group"), batches=(4, 32), seeds=(1, 2))
    assert claims.ClaimOptions().toy_level == 0.5
    found = claims.evaluate(load(sweep), options=claims.ClaimOptions(toy_level=0.25))
    assert found[-1].name == "toy claim at level 0.25" and found[-1].verdict == claims.PASS
    assert any(c.name.startswith("norm=batch degrades") for c in found)  # the table's own still run

    out, stdout = tmp_path / "out", io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main([str(sweep), "--out", str(out), "--toy-level", "0.75"])
    assert code == 0, stdout.getvalue()
    report = (out / "report.md").read_text()
    assert "| toy claim at level 0.75 | **PASS** | - | 2 seeds |" in report
    assert "- toy claim at level 0.75: toy rule" in report
    assert "**PASS** toy claim at level 0.75: toy evidence over 2 seeds" in report


def test_the_cli_offers_every_option_the_table_declares(toy, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    flags = [flag for option in claims.declared().values() for flag in option.cli_flags]
    assert "--toy-level" in flags and all(flag in usage for flag in flags)
