"""Start-up: a run imports what it uses. The sweep-end report (pandas, scipy, matplotlib) is
imported only when a sweep ends, and `run.py --help` needs no torch. What the imports made is
frozen out of the garbage collector's walks before torch._dynamo (which torch's optimizers
import) makes more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TINY
from fake_results import write_run
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from normbench.run.identity import register_resolvers
from normbench.sweep.callbacks import SweepReport

HEAVY = ("normbench.report", "normbench.analysis", "scipy", "matplotlib", "pandas")


def loaded_after(tmp_path: Path, *args: str, exit_code: int = 0) -> list[str]:
    """The modules of ``HEAVY``, torch and torch._dynamo that ``python run.py *args`` has
    imported at exit."""
    code = (
        "import atexit, runpy, sys\n"
        f"watch = {(*HEAVY, 'torch', 'torch._dynamo')!r}\n"
        "atexit.register(lambda: print('loaded:', ' '.join(m for m in watch if m in sys.modules)))\n"
        f"sys.argv = ['run.py', *{list(args)!r}]\n"
        "runpy.run_path('run.py', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == exit_code, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1].split()[1:]


@pytest.mark.slow  # a process
def test_a_single_run_does_not_import_the_report(tmp_path):
    # torch._dynamo: torch.optim's constructor and step import it, whatever the run does
    assert loaded_after(tmp_path, *TINY, f"results_dir={tmp_path}") == ["torch", "torch._dynamo"]
    assert len(list(tmp_path.rglob("metrics.csv"))) == 1  # it did train


@pytest.mark.slow  # a process
def test_bad_input_is_refused_before_the_optimizer_imports_dynamo(tmp_path):
    bad = [*TINY, "norm=instance", f"results_dir={tmp_path}"]  # instance norm on the MLP's vectors
    assert loaded_after(tmp_path, *bad, exit_code=2) == ["torch"]


@pytest.mark.slow  # a process
def test_torch_is_frozen_before_the_optimizer_imports_dynamo(tmp_path):
    # an audit hook sees the import of torch._dynamo (torch.optim's constructor and step do it)
    code = (
        "import gc, runpy, sys\n"
        "seen = []\n"
        "def hook(event, args):\n"
        "    if event == 'import' and args[0] == 'torch._dynamo' and not seen:\n"
        "        seen.append(gc.get_freeze_count())\n"
        "sys.addaudithook(hook)\n"
        f"sys.argv = ['run.py', *{[*TINY, f'results_dir={tmp_path}']!r}]\n"
        "try:\n"
        "    runpy.run_path('run.py', run_name='__main__')\n"
        "finally:\n"
        "    print('frozen:', *seen)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    frozen = done.stdout.strip().splitlines()[-1].split()[1:]
    assert len(frozen) == 1  # the run imported torch._dynamo, once
    assert int(frozen[0]) > 100_000  # torch's modules, classes and functions (about 180k objects)


@pytest.mark.slow  # a process
def test_help_needs_no_torch(tmp_path):
    assert loaded_after(tmp_path, "--help") == []


def test_the_configured_callback_is_the_light_one():
    register_resolvers()  # conf/config.yaml uses them
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True)
    assert isinstance(instantiate(cfg.hydra.callbacks.report), SweepReport)


@pytest.mark.slow  # builds a report
def test_the_light_callback_builds_the_report_with_its_options(tmp_path, capsys):
    write_run(tmp_path / "batch=4,norm=group,seed=1", "group", 4, 1)
    sweep_end = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    SweepReport(metric="test/loss").on_multirun_end(sweep_end)
    assert "test/loss" in (tmp_path / "report.md").read_text()  # the option reached the report
    assert capsys.readouterr().out.strip() == f"report: {tmp_path / 'report.html'}"
