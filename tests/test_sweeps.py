"""Sweeps at scale: skip on re-run, resume after a kill, SIGTERM, the run identity,
the status command, and the joblib and submitit_local launchers.

Every run here is a real ``python run.py`` process, as a user or a cluster would start it.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import NO_REPORT, REPO, TINY, env, start, summaries

from normbench.run import threads as job_threads
from normbench.run.identity import NON_RESULT_KEYS, config_identity, resolved_config
from normbench.run.runner import run
from normbench.run.threads import threads_per_job
from normbench.sweep import status

# no report at the end of a sweep (7 s each); the submitit_local sweep checks the report
# the launcher test leaves threads to the launcher (conftest's TINY pins threads=1)
LAUNCHED = [o for o in TINY if not o.startswith("threads=")]
# long enough to kill between epochs (~0.3 s an epoch on one thread), short enough for a test
SLOW = ["data.train_size=2048", "data.test_size=64", "batch=8", "epochs=6", "progress=false", "threads=1"]
EXPERIMENTS = REPO / "tests" / "conf"  # tests/conf/experiment/tiny_grid.yaml


# ---- helpers --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """runner.run(threads=1) in this process must not slow down the tests after it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def finished_epochs(metrics: Path) -> int:
    """Epochs whose test rows are in metrics.csv (the last rows an epoch writes)."""
    try:
        rows = list(csv.reader(metrics.read_text().splitlines()))
    except OSError:
        return 0
    return max((int(r[1]) for r in rows[1:] if len(r) == 5 and r[2] == "test"), default=0)


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def metric_keys(metrics: Path) -> list[tuple[str, str, str]]:
    return [(r["step"], r["split"], r["metric"]) for r in csv.DictReader(metrics.open())]


def status_lines(sweep_dir: Path, capsys) -> dict[str, str]:
    assert status.main([str(sweep_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    return dict(line.rsplit(None, 1) for line in lines[:-1])


def cell(sweep_dir: Path, norm: str) -> Path:
    (path,) = [p for p in sweep_dir.iterdir() if p.name.endswith(f"norm={norm}")]
    return path


# ---- resume and faults ----------------------------------------------------------------------


def test_killed_run_resumes_and_ends_with_the_metrics_of_an_uninterrupted_run(cli, make_cfg, tmp_path):
    results = tmp_path / "killed"
    run_dir = (
        results / "default" / ",".join(sorted(o for o in SLOW if not o.startswith(("progress", "threads"))))
    )
    metrics = run_dir / "metrics.csv"

    # 1. SIGKILL mid-run, after at least two epochs: no summary.json, finished epochs kept
    proc = start(results, *SLOW, log=tmp_path / "kill.log")
    wait_for(
        lambda: finished_epochs(metrics) >= 2 and (run_dir / "checkpoint.pt").exists(),
        proc,
        "two finished epochs",
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = finished_epochs(metrics)
    assert 2 <= killed_at < 6
    assert not (run_dir / "summary.json").exists()

    # 2. the same command again resumes; SIGTERM after one more epoch: status interrupted, 130
    term_log = tmp_path / "term.log"
    proc = start(results, *SLOW, log=term_log)
    # the epoch's log line comes after its checkpoint: waiting for the rows alone raced the
    # checkpoint, and an interrupted summary reports what was checkpointed (CI, stop 30)
    wait_for(lambda: f"epoch {killed_at + 1}/6" in term_log.read_text(), proc, "an epoch after resuming")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130, term_log.read_text()[-2000:]
    log = term_log.read_text()
    assert "resuming after epoch" in log and "interrupted" in log
    interrupted = json.loads((run_dir / "summary.json").read_text())
    assert interrupted["status"] == "interrupted"
    assert killed_at < interrupted["epochs_done"] < 6
    # the signal may land between a later epoch's rows and its checkpoint: the summary reports
    # the checkpoint's counts, and those rows are dropped when the run resumes
    checkpointed = torch.load(run_dir / "checkpoint.pt", weights_only=False)["epoch"]
    assert checkpointed == interrupted["epochs_done"]

    # 3. and once more: resumes from the last checkpoint and finishes
    result = cli(*SLOW, results=results)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming after epoch {checkpointed} " in result.stderr
    done = json.loads((run_dir / "summary.json").read_text())
    assert done["status"] == "done" and done["epochs_done"] == 6 and done["steps"] == 6 * 256
    assert not (run_dir / "checkpoint.pt").exists()
    keys = metric_keys(metrics)
    assert len(keys) == len(set(keys)), "duplicated (step, split, metric) rows"

    # 4. byte for byte the metrics of the same config run without interruption
    reference = run(make_cfg(*SLOW), tmp_path / "reference")
    assert reference["identity"] == done["identity"]
    assert metrics.read_text() == (tmp_path / "reference" / "metrics.csv").read_text()
    assert reference["final"] == done["final"]


def test_resume_cuts_metrics_back_to_the_checkpoint_dropping_a_half_written_last_line(tmp_path):
    from normbench.run.checkpoint import check_written, cut_to

    path = tmp_path / "metrics.csv"
    full = "step,epoch,split,metric,value\n4,1,train,loss,1.5\n4,1,test,loss,1.25\n"
    for partial in ("8,2,train,loss,0.9\n8,2,te", "8,2,tr", "8", "8,2,train,loss,0.9"):
        path.write_text(full + partial)
        sizes = {"metrics.csv": len(full)}  # what the checkpoint of epoch 1 recorded
        assert check_written(tmp_path, sizes, epoch=1) is None
        cut_to(tmp_path, sizes)
        assert path.read_text() == full, partial


# ---- identity -------------------------------------------------------------------------------


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _set(tree: dict, dotted: str, value) -> dict:
    tree = json.loads(json.dumps(tree))
    *path, last = dotted.split(".")
    node = tree
    for key in path:
        node = node[key]
    node[last] = value
    return tree


def _other(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, list):
        return [*value, 1]
    if value is None:
        return 1
    return f"{value}x"


def _shuffled(tree):
    if not isinstance(tree, dict):
        return tree
    items = list(tree.items())
    random.Random(len(items)).shuffle(items)
    return {k: _shuffled(v) for k, v in items}


@pytest.mark.parametrize(
    "overrides", [[], ["model=resnet", "norm=group", "optim=adam"], ["data=cifar10", "sched=cosine"]]
)
def test_identity_changes_with_every_result_key_and_no_other(make_cfg, overrides):
    """Every leaf of the resolved config, not only the keys someone thought of: a new config
    key changes the identity unless it is added to NON_RESULT_KEYS."""
    plain = resolved_config(make_cfg(*overrides))
    base = config_identity(plain)
    assert config_identity(_shuffled(plain)) == base  # key order, at every level
    for key, value in _leaves(plain):
        changed = config_identity(_set(plain, key, _other(value)))
        if key in NON_RESULT_KEYS:
            assert changed == base, key
        else:
            assert changed != base, key


def test_non_result_keys_name_real_keys(make_cfg):
    """A renamed key must not leave a stale entry here (its old name would hash again)."""
    keys = {k for o in ([], ["data=cifar10"]) for k, _ in _leaves(resolved_config(make_cfg(*o)))}
    assert set(NON_RESULT_KEYS) - keys == {"experiment"}  # a defaults-list group, not a key


# ---- skip on re-run, and the status command -------------------------------------------------


def test_rerun_of_a_sweep_trains_only_what_is_missing_and_status_tells_which(cli, tmp_path, capsys):
    # instance norm on the MLP is refused: a failed cell that does not stop the sweep
    sweep = ["norm=batch,layer,group,instance", *TINY, NO_REPORT]
    first = cli("-m", *sweep)
    assert first.returncode == 0, first.stderr[-2000:]
    sweep_dir = tmp_path / "default"
    assert set(status_lines(sweep_dir, capsys).values()) == {"done", "failed"}
    started = {s["config"]["norm"]["name"]: s["started"] for s in summaries(tmp_path)}
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("metrics.csv")}

    # the same command again trains nothing
    again = cli("-m", *sweep)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("already done, skipping") == 3
    assert "epoch 1/1" not in again.stderr
    assert {
        s["config"]["norm"]["name"]: s["started"] for s in summaries(tmp_path) if s["status"] == "done"
    } == {k: v for k, v in started.items() if k != "instance"}
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("metrics.csv")} == mtimes

    # a cell never run, one killed (a damaged checkpoint, no summary), one failed
    import shutil

    shutil.rmtree(cell(sweep_dir, "group"))
    (cell(sweep_dir, "layer") / "summary.json").unlink()
    (cell(sweep_dir, "layer") / "checkpoint.pt").write_bytes(b"\x80half a checkpo")
    listed = subprocess.run(
        [sys.executable, "-m", "normbench.sweep.status", str(sweep_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env(),
        check=True,
    ).stdout
    lines = listed.splitlines()
    cells = dict(line.rsplit(None, 1) for line in lines[:-1])
    assert [cells[n] for n in sorted(cells)] == ["done", "missing", "failed", "unfinished"]
    assert sorted(cells) == sorted(status.sweep_cells(sweep_dir))
    assert all(n.endswith(("norm=batch", "norm=group", "norm=instance", "norm=layer")) for n in sorted(cells))
    assert lines[-1].startswith("4 cells: ") and "1 missing" in lines[-1]

    # and again: only the missing and unfinished cells train (the damaged checkpoint is ignored)
    third = cli("-m", *sweep)
    assert third.returncode == 0, third.stderr[-2000:]
    assert third.stderr.count("already done, skipping") == 1
    assert third.stderr.count("epoch 1/1") == 2
    after = {s["config"]["norm"]["name"]: s for s in summaries(tmp_path)}
    assert after["batch"]["started"] == started["batch"]
    assert Counter(status_lines(sweep_dir, capsys).values()) == {"done": 3, "failed": 1}


def test_a_diverged_run_is_finished_too_and_not_run_again(make_cfg, tmp_path):
    diverging = [*TINY, "norm=none", "optim.lr=1e10"]
    first = run(make_cfg(*diverging), tmp_path)
    assert first["status"] == "diverged" and not (tmp_path / "checkpoint.pt").exists()
    again = run(make_cfg(*diverging), tmp_path)
    assert again["status"] == "diverged" and again["started"] == first["started"]
    forced = run(make_cfg(*diverging, "force=true"), tmp_path)
    assert forced["status"] == "diverged" and forced["started"] >= first["started"]


def test_status_of_a_directory_that_is_no_sweep_says_so(tmp_path, capsys):
    assert status.main([str(tmp_path)]) == 2
    assert "no multirun.yaml" in capsys.readouterr().err


# ---- launchers ------------------------------------------------------------------------------


def test_joblib_experiment_sweep_and_submitit_sweep_land_alike(cli, tmp_path, capsys):
    """The same two cells two ways: an experiment preset's own grid (hydra.sweeper.params)
    on the joblib launcher, and the grid on the command line on submitit_local."""
    joblib = cli(
        "-m",
        "experiment=tiny_grid",
        f"hydra.searchpath=[file://{EXPERIMENTS}]",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        *LAUNCHED,
        NO_REPORT,
        results=tmp_path / "joblib",
    )
    assert joblib.returncode == 0, joblib.stderr[-2000:]
    local = cli(
        "-m",
        "name=tiny_grid",
        "norm=batch,layer",
        "hydra/launcher=local",
        *LAUNCHED,
        results=tmp_path / "local",
    )
    assert local.returncode == 0, local.stderr[-2000:]

    cores = job_threads.available_cores()
    threads = {"joblib": max(1, cores // 2), "local": 1}  # n_jobs=2; local.yaml cpus_per_task
    layouts = {}
    for launcher, expected_threads in threads.items():
        sweep_dir = tmp_path / launcher / "tiny_grid"
        runs = summaries(sweep_dir)
        assert [s["status"] for s in runs] == ["done", "done"], launcher
        assert [s["threads"] for s in runs] == [expected_threads] * 2, launcher
        assert set(status_lines(sweep_dir, capsys).values()) == {"done"}
        layouts[launcher] = {
            p.parent.name: json.loads(p.read_text())["identity"] for p in sweep_dir.glob("*/summary.json")
        }
    assert layouts["joblib"] == layouts["local"]  # same cells, same places, same identities
    report = (tmp_path / "local" / "tiny_grid" / "report.md").read_text()  # aggregated as usual
    assert "| batch |" in report and "| layer |" in report
    assert sorted(layouts["joblib"]) == sorted(status.sweep_cells(tmp_path / "joblib" / "tiny_grid"))


@pytest.mark.parametrize(
    "launcher, cores, expected",
    [
        ({"n_jobs": 2}, 2, 1),
        ({"n_jobs": -1}, 16, 1),
        ({"n_jobs": 4}, 16, 4),
        ({"n_jobs": 32}, 16, 1),
        ({"cpus_per_task": 8}, 64, 8),
        ({}, 16, 16),
    ],
)
def test_threads_per_job_is_cores_over_jobs(monkeypatch, launcher, cores, expected):
    from omegaconf import OmegaConf

    monkeypatch.setattr(job_threads, "available_cores", lambda: cores)
    assert threads_per_job(OmegaConf.create(launcher)) == expected


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_available_cores_follows_the_affinity_not_the_machine():
    cores = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(cores)})  # as taskset or a SLURM cpuset would
        assert job_threads.available_cores() == 1
    finally:
        os.sched_setaffinity(0, cores)
    assert job_threads.available_cores() == len(cores)


def test_slurm_preset_submits_the_preset_grid_as_one_array_job(make_cfg, monkeypatch, tmp_path):
    """The real launcher code path up to sbatch, on a machine without SLURM: the preset's grid
    becomes one array job with the keys of conf/hydra/launcher/slurm.yaml."""
    import submitit.slurm.slurm as slurm
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    captured = {}

    def capture(executor, submissions):  # instead of writing pickles and calling sbatch
        captured.update(executor=executor, submissions=submissions)
        return []

    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # no srun
    monkeypatch.setattr(slurm.SlurmExecutor, "_internal_process_submissions", capture)
    make_cfg()  # registers the resolvers
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            return_hydra_config=True,
            overrides=[
                "experiment=small_batch_cifar",
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.account=proj",
                f"results_dir={tmp_path}",
            ],
        )
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=lambda _: None, config=cfg)
    jobs = status.expand_grid(cfg.hydra.sweeper.params, [])
    assert launcher.submit(jobs, initial_job_idx=0) == []  # launch() would first ask sinfo
    assert [d.args[0] for d in captured["submissions"]] == jobs and len(jobs) == 2 * 5 * 5

    executor = captured["executor"]
    executor.parameters["map_count"] = len(jobs)  # as submitit does for the array
    script = executor._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in (
        "--partition=gpu",
        "--account=proj",
        "--gpus-per-node=1",
        "--cpus-per-task=8",
        "--mem=32GB",
        "--time=120",
        "--signal=USR2@120",
        "--array=0-49%50",  # min(64, 50) at once
        f"--output={tmp_path}/small_batch_cifar/.submitit/",
    ):
        assert f"#SBATCH {line}" in script, line
    assert executor.max_num_timeout == 5  # a timed-out run is requeued and resumes
    assert threads_per_job(cfg.hydra.launcher) == 8
