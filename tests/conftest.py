"""Shared fixtures: compose the real config tree, run run.py as a user would."""

from __future__ import annotations

import atexit
import copy
import functools
import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from normbench.run.identity import register_resolvers

REPO = Path(__file__).resolve().parents[1]
# a sweep without its sweep-end report, for tests that read only the runs (a report costs seconds)
NO_REPORT = "~hydra.callbacks.report"
# small enough to train in well under a second per run on a CPU
TINY = ["data.train_size=32", "data.test_size=16", "epochs=1", "batch=8", "progress=false", "threads=1"]

# Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine OpenMP
# threads spin against each other: one BatchNorm call measured 20 ms with 2 threads vs 50 us
# with 1. Tests run single-threaded.
torch.set_num_threads(1)


@functools.cache  # once per test function, not per parametrised case
def starts_python(function) -> bool:
    source = inspect.getsource(function)
    return "sys.executable" in source or re.search(r"(?<![\w.])start\(", source) is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tier, marked here rather than test by test: every test that starts a Python
    process (through the ``cli`` fixture or :func:`start`, or ``sys.executable`` in its own
    body) pays seconds of start-up per process. ``pytest -m "not slow"`` is the edit loop; CI
    runs everything."""
    for item in items:
        function = getattr(item, "function", None)
        if "cli" in getattr(item, "fixturenames", ()) or (function is not None and starts_python(function)):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slurm"):  # one cluster of this machine's CPUs: one test at a time
            item.add_marker(pytest.mark.xdist_group("slurm"))
    # the cluster's tests first: one worker takes their minutes while the others share the rest,
    # instead of one worker running them alone at the end
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)


def env() -> dict[str, str]:
    """The environment of every Python process a test starts: no progress bars (CI), Hydra's
    one-line errors, each line in its log as soon as it is printed (tests wait for lines).
    Read at each start, so that what a fixture sets (the cluster's SLURM_CONF) reaches it."""
    return {**os.environ, "CI": "1", "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}


# Composed configs by their overrides, for this test process: Hydra's compose costs 0.15-0.3 s
# (OmegaConf merging every group), hundreds of tests compose the same few, and a copy costs 7 ms.
_COMPOSED: dict[tuple[str, ...], DictConfig] = {}


@pytest.fixture
def make_cfg():
    """make_cfg(*overrides) -> the composed config, as run.py would get it (a fresh copy each
    call: a test may change it)."""
    register_resolvers()

    def make(*overrides: str):
        if overrides not in _COMPOSED:
            with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
                _COMPOSED[overrides] = compose(config_name="config", overrides=list(overrides))
        return copy.deepcopy(_COMPOSED[overrides])

    return make


def run_python(*argv: str, results: Path) -> subprocess.CompletedProcess:
    """``python *argv results_dir=<results>`` in the repo, to its end; its output captured.
    It runs as a child of this test process's fork server (tests/forkserver.py: the same
    process, exit code and output, without ~3 s of imports); NORMBENCH_TEST_FORK=0 starts a
    fresh interpreter instead."""
    args = [*argv, f"results_dir={results}"]
    server = forkserver()
    if server is None:
        how = {"cwd": REPO, "capture_output": True, "text": True, "env": env(), "timeout": 600}
        return subprocess.run([sys.executable, *args], check=False, **how)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(600)
            conn.connect(server)
            request = json.dumps({"argv": args, "cwd": str(REPO), "env": env()}).encode()
            socket.send_fds(conn, [request], [out.fileno(), err.fileno()])
            conn.shutdown(socket.SHUT_WR)  # the whole request is sent
            returncode = int(conn.recv(64))
        out.seek(0)
        err.seek(0)
        text = [f.read().decode(errors="replace").replace("\r\n", "\n") for f in (out, err)]
    return subprocess.CompletedProcess([sys.executable, *args], returncode, *text)


_FORKSERVER: list[str] = []  # the socket of this test process's fork server, once started


def forkserver() -> str | None:
    """The socket of this process's fork server, started on first use; None where switched off."""
    if os.environ.get("NORMBENCH_TEST_FORK", "1") == "0":
        return None
    if not _FORKSERVER:
        folder = tempfile.mkdtemp(prefix="normbench-fork-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = os.path.join(folder, "socket")
        server = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "forkserver.py"), path],
            cwd=REPO,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # its children write to the caller's files, not here
            text=True,
        )
        assert server.stdout.readline().strip() == "ready", "the fork server did not start"
        atexit.register(server.kill)  # and it ends itself within a second of this process
        _FORKSERVER.append(path)
    return _FORKSERVER[0]


@pytest.fixture
def cli(tmp_path):
    """cli(*args) runs ``python run.py *args results_dir=<tmp>`` in the repo, like a user."""

    def run(*args: str, results: Path = tmp_path) -> subprocess.CompletedProcess:
        return run_python("run.py", *args, results=results)

    return run


def start(
    results: Path, *args: str, log: Path, multirun: bool = False, own_group: bool = False
) -> subprocess.Popen:
    """``python run.py [-m] results_dir=<results> *args`` in the background, its output to
    ``log``; ``own_group``: in a process group of its own, as a shell starts a job (so that a
    test can signal the group as ctrl-c does)."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "run.py", *(["-m"] if multirun else []), f"results_dir={results}", *args],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env(),
            start_new_session=own_group,
        )


def summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


def nudge_one_ulp(module: torch.nn.Module, direction: float) -> torch.nn.Module:
    """Move every parameter of ``module`` one ulp towards ``direction`` (+inf or -inf), in place.

    Another CPU kind rounds differently from the first operation on; a one-ulp change of the
    initial weights is the smallest such difference a test can make in its own process. How far
    it moves a run's numbers is that run's own sensitivity to rounding: near zero for a stable
    run, seed-sized for a chaotic one. Tests that compare with numbers made elsewhere, or two
    arithmetic paths, derive their tolerance from it instead of assuming bit-identity."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.nextafter(p, torch.full_like(p, direction)))
    return module


def with_papers(runs):
    """Runs made as a DataFrame (not loaded from a tree) with the column a loaded run has for
    the papers' name of its norm (``norm.name`` "batch" -> "BN"), as the registry declares it."""
    from normbench.analysis.stats import NORM_NAME_KEY, NORM_PAPER_KEY
    from normbench.norms import NORMS

    names = runs[NORM_NAME_KEY] if NORM_NAME_KEY in runs else runs["norm"]
    return runs.assign(**{NORM_PAPER_KEY: names.map(lambda n: NORMS[n].paper if n in NORMS else "")})
