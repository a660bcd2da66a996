"""normbench.run.provenance: git_state on a throwaway git checkout laid out like this repo, and
the CPU kind a run records."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from normbench.run import provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "normbench" / "run").mkdir(parents=True)
    (tmp_path / "normbench" / "run" / "train.py").write_text("x = 1\n")
    (tmp_path / "results" / "reference").mkdir(parents=True)
    (tmp_path / "results" / "reference" / "report.md").write_text("old\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "init")
    monkeypatch.setattr(provenance, "_PACKAGE_DIR", tmp_path / "normbench")
    return tmp_path


def test_clean_checkout_is_not_dirty(checkout: Path) -> None:
    state = provenance.git_state()
    assert len(state["git_commit"]) == 40 and state["git_dirty"] is False


def test_refreshed_reference_report_is_not_dirty(checkout: Path) -> None:
    (checkout / "results" / "reference" / "report.md").write_text("new numbers\n")
    assert provenance.git_state()["git_dirty"] is False


@pytest.mark.parametrize("path", ["normbench/run/train.py", "run.py", "normbench/new_module.py"])
def test_changed_or_new_code_is_dirty(checkout: Path, path: str) -> None:
    (checkout / path).write_text("x = 2\n")
    assert provenance.git_state()["git_dirty"] is True


def test_outside_a_git_checkout_says_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "_PACKAGE_DIR", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert provenance.git_state() == {"git_commit": None, "git_dirty": None}


def test_the_cpu_kind_is_the_model_name_else_the_architecture(tmp_path: Path) -> None:
    # CPU kinds round differently: a run records which one made its numbers
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")
    assert provenance.cpu_kind(info) == "AMD EPYC 7B13"
    info.write_text("processor\t: 0\nmodel name\t:\n")
    assert provenance.cpu_kind(info) == (platform.processor() or platform.machine())
    assert provenance.cpu_kind(tmp_path / "absent") == (platform.processor() or platform.machine())
    assert provenance.cpu_kind() in provenance.device_name(torch.device("cpu"))
