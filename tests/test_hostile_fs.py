"""A run directory someone else prepared: crafted checkpoints, planted links, a deleted lock,
interruptions between an epoch and its checkpoint. Nothing outside the run directory is
touched, and bad state is one line (a log line and a fresh start, or exit 2), never a traceback."""

from __future__ import annotations

import copy
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY, run_python, start, summaries
from test_rundir import AFTER_EPOCH_2, SHORT, copy_run, killed, one_error_line, only_dir
from test_sweeps import NO_REPORT, SLOW, finished_epochs, wait_for

from normbench.errors import ConfigError
from normbench.files import WRITTEN, open_private
from normbench.run import rundir, runner
from normbench.sweep import status
from normbench.sweep.status import cell_name


@pytest.fixture(scope="module")
def unfinished_run(tmp_path_factory):
    """A run of SHORT killed after epoch 2's checkpoint, and the metrics.csv of the same run
    uninterrupted (what a run that starts over must write, byte for byte)."""
    base = tmp_path_factory.mktemp("unfinished")
    killed(base / "killed", *SHORT, at=AFTER_EPOCH_2)
    reference = base / "reference"
    assert run_python("run.py", *SHORT, results=reference).returncode == 0
    return only_dir(base / "killed"), (only_dir(reference) / "metrics.csv").read_bytes()


# the tests that take unfinished_run run on one worker: it is made once for all of them
UNFINISHED = pytest.mark.xdist_group("hostile-unfinished")


def crafted(checkpoint: Path, change) -> None:
    state = torch.load(checkpoint, weights_only=True)
    change(state)
    torch.save(state, checkpoint)


def _rename_one_module(state: dict) -> None:
    # every other parameter loads before the mismatch is raised: the fresh run must not keep them
    model = state["model"]
    key = next(iter(model))
    model["renamed." + key] = model.pop(key)


def _extra_param_group(state: dict) -> None:
    groups = state["optimizer"]["param_groups"]
    groups.append(copy.deepcopy(groups[0]))


# a checkpoint of the run's own identity with one bad field: each a fresh start with a log line
# saying why (whole: a state_dict's mismatch names its keys past the message's first line)
FITS = "its state does not fit this run"
BAD_FIELDS = {
    "files-a-list": (lambda s: s.update(files=list(s["files"].items())), "its file map is not file names"),
    "negative-size": (lambda s: s["files"].update({"metrics.csv": -1}), "its file map is not file names"),
    "epoch-a-string": (lambda s: s.update(epoch="2"), "its epoch '2' is not a positive integer"),
    "renamed-module": (_rename_one_module, 'Unexpected key(s) in state_dict: "renamed.'),
    "bad-rng-state": (lambda s: s["rng"].update(python="not a state"), FITS),
    "rng-after-torch": (lambda s: s["rng"]["numpy"].update(kind=5), FITS),
    "param-groups": (_extra_param_group, FITS),
    "time-a-string": (lambda s: s["progress"].update(train_time_s="1.5"), "a value that is not a number"),
}


@UNFINISHED
@pytest.mark.parametrize("bad", list(BAD_FIELDS))
def test_a_checkpoint_with_a_bad_field_starts_over_with_a_line(cli, tmp_path, unfinished_run, bad):
    killed_dir, reference = unfinished_run
    run_dir = copy_run(killed_dir, tmp_path / "r")
    change, why = BAD_FIELDS[bad]
    crafted(run_dir / "checkpoint.pt", change)
    result = cli(*SHORT, results=tmp_path / "r")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "starting over" in line]
    assert f"cannot resume from {run_dir / 'checkpoint.pt'}: " in line and why in line
    assert (run_dir / "metrics.csv").read_bytes() == reference  # exactly a fresh run's numbers


@UNFINISHED
def test_a_crafted_file_map_truncates_nothing_outside_the_run_directory(cli, tmp_path, unfinished_run):
    killed_dir, reference = unfinished_run
    run_dir = copy_run(killed_dir, tmp_path / "r")
    victims = {tmp_path / "victim-absolute": None, tmp_path / "victim-relative": None}
    for victim in victims:
        victim.write_text("keep me\n")
    relative = os.path.relpath(tmp_path / "victim-relative", run_dir)  # ../../../victim-relative

    def aim(state: dict) -> None:
        state["files"][str(tmp_path / "victim-absolute")] = 3
        state["files"][relative] = 0

    crafted(run_dir / "checkpoint.pt", aim)
    result = cli(*SHORT, results=tmp_path / "r")
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(victim.read_text() == "keep me\n" for victim in victims)
    assert "not one of this run directory's files; starting over" in result.stderr
    assert (run_dir / "metrics.csv").read_bytes() == reference


@pytest.mark.parametrize("name", WRITTEN)
def test_a_link_where_the_run_writes_is_refused_before_anything_is_written(cli, tmp_path, name):
    results = tmp_path / "r"
    run_dir = results / "default" / cell_name(TINY)
    run_dir.mkdir(parents=True)
    victim = tmp_path / "victim"
    if name in (".hydra", "tb"):
        victim.mkdir()
    else:
        victim.write_text("keep me\n")
    (run_dir / name).symlink_to(victim)
    result = cli(*TINY, results=results)
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith(f"error: name=default: {run_dir / name} is a symbolic link (to {victim})")
    assert (list(victim.iterdir()) == []) if victim.is_dir() else victim.read_text() == "keep me\n"
    assert sorted(p.name for p in run_dir.iterdir()) == [name]  # not even its lock


def test_a_link_inside_tb_is_refused_too(cli, tmp_path):
    results = tmp_path / "r"
    assert cli(*TINY, "force=true", results=results).returncode == 0
    run_dir = only_dir(results)
    events = next((run_dir / "tb").iterdir())
    events.unlink()
    events.symlink_to(tmp_path / "victim")
    result = cli(*TINY, "force=true", results=results)
    assert result.returncode == 2 and "is a symbolic link" in one_error_line(result)
    assert not (tmp_path / "victim").exists()


def test_writes_do_not_follow_a_link_made_after_the_check(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (tmp_path / "summary.json.tmp").symlink_to(victim)
    for mode in ("w", "a", "wb"):
        with pytest.raises(OSError, match="Too many levels of symbolic links"):
            open_private(tmp_path / "summary.json.tmp", mode)
    assert victim.read_text() == "keep me\n"


# ---- the lock --------------------------------------------------------------------------------


def test_deleting_the_lock_file_does_not_let_a_second_holder_in(tmp_path):
    with rundir.held(tmp_path, "mine"):
        (tmp_path / rundir.LOCK).unlink()
        with (
            pytest.raises(
                ConfigError, match=r"in use by another process \(pid unknown: its .lock was deleted\)"
            ),
            rundir.held(tmp_path, "mine"),
        ):
            pass
    with rundir.held(tmp_path, "mine"):  # released when its holder ends
        pass


def test_a_second_run_is_refused_after_the_lock_file_of_a_live_run_is_deleted(cli, tmp_path):
    results = tmp_path / "r"
    long = [o for o in SLOW if not o.startswith("epochs=")] + ["epochs=100"]
    first = start(results, *long, log=tmp_path / "first.log")
    metrics = results / "default" / cell_name(long) / "metrics.csv"
    try:
        wait_for(lambda: finished_epochs(metrics) >= 1, first, "the first epoch")
        (metrics.parent / rundir.LOCK).unlink()
        second = cli(*long, results=results)
        assert first.poll() is None, "the first run ended before the second started: make it longer"
        assert second.returncode == 2
        assert f"{metrics.parent} is in use by another process" in one_error_line(second)
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    log = (metrics.parent / "run.log").read_text()
    assert "in use" not in log and log.count("epoch 1/100") == 1


# ---- an interruption between an epoch and its checkpoint ----------------------------------------


def test_an_interrupted_run_records_the_epochs_of_its_checkpoint(make_cfg, tmp_path, monkeypatch):
    real = runner.save_checkpoint

    def interrupted_at_2(run_dir, identity, trainer, epoch, progress):
        if epoch == 2:  # Ctrl-C after the epoch's rows, before its checkpoint
            raise KeyboardInterrupt
        real(run_dir, identity, trainer, epoch, progress)

    monkeypatch.setattr(runner, "save_checkpoint", interrupted_at_2)
    summary = runner.run(make_cfg(*SHORT), tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert summary["status"] == on_disk["status"] == "interrupted"
    assert on_disk["epochs_done"] == state["epoch"] == state["progress"]["epochs_done"] == 1
    assert on_disk["final"] == state["progress"]["final"] and "_checkpointed" not in on_disk
    assert summaries(tmp_path)[0]["steps"] == state["progress"]["steps"]


# ---- where run directories may be ------------------------------------------------------------


def test_an_explicit_hydra_run_dir_is_the_runs_own_choice(cli, tmp_path):
    scratch = tmp_path / "scratch" / "x"
    result = cli(*TINY, f"hydra.run.dir={scratch}", results=tmp_path / "results")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((scratch / "summary.json").read_text())["status"] == "done"
    assert (scratch / ".hydra" / "overrides.yaml").exists() and not (tmp_path / "results").exists()
    refused = cli(*TINY, f"hydra.run.dir={scratch}", "name=../up", results=tmp_path / "results")
    assert refused.returncode == 2 and one_error_line(refused).startswith("error: name=../up: must be")


def test_an_explicit_hydra_sweep_dir_holds_the_sweep_and_its_cells(cli, tmp_path):
    sweep = tmp_path / "scratch" / "sweep"
    result = cli(
        "-m", *TINY, "norm=batch,layer", f"hydra.sweep.dir={sweep}", NO_REPORT, results=tmp_path / "r"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert [s["status"] for s in summaries(sweep)] == ["done", "done"]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("subdir", ["../../elsewhere", "/tmp/nb-elsewhere", "a/../../b"])
def test_a_sweep_subdir_stays_inside_the_sweep_directory(cli, tmp_path, subdir):
    results = tmp_path / "a" / "results"
    result = cli("-m", *TINY, f"hydra.sweep.subdir={subdir}", NO_REPORT, results=results)
    assert result.returncode == 2
    assert one_error_line(result).startswith(f"error: hydra.sweep.subdir={subdir}: must be a relative path")
    assert not list(tmp_path.rglob("summary.json")) and not Path("/tmp/nb-elsewhere").exists()


@pytest.mark.parametrize("flag", [[], ["-m"]])
def test_a_name_that_is_a_link_out_of_results_dir_is_refused(cli, tmp_path, flag):
    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    results.mkdir()
    elsewhere.mkdir()
    (results / "link").symlink_to(elsewhere)
    result = cli(*flag, *TINY, "name=link", NO_REPORT, results=results)
    assert result.returncode == 2
    assert "leads through a symbolic link outside results_dir=" in one_error_line(result)
    assert not list(elsewhere.iterdir())


# ---- status ------------------------------------------------------------------------------------


def test_status_tells_cells_whose_directories_were_swapped(cli, tmp_path, capsys):
    result = cli("-m", *TINY, "norm=batch,layer", NO_REPORT)
    assert result.returncode == 0, result.stderr[-2000:]
    batch, layer = (tmp_path / "default" / cell_name([*TINY, f"norm={n}"]) for n in ("batch", "layer"))
    batch.rename(tmp_path / "swap")
    layer.rename(batch)
    (tmp_path / "swap").rename(layer)
    assert status.main([str(tmp_path / "default")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in out[:-1]] == ["misplaced", "misplaced"]
    assert out[-1] == "2 cells: 2 misplaced"


def test_status_of_a_huge_grid_is_one_line_not_minutes(tmp_path, capsys):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task: ['seed=range(0,10000000)', 'norm=batch,layer']\n"
        "  sweeper:\n    params: null\n  job:\n    config:\n"
        "      override_dirname: {kv_sep: '=', item_sep: ',', exclude_keys: []}\n"
    )
    (tmp_path / "norm=batch,seed=0").mkdir()
    (tmp_path / "norm=batch,seed=0" / "metrics.csv").write_text("")
    tic = time.perf_counter()
    assert status.main([str(tmp_path)]) == 1
    assert time.perf_counter() - tic < 10
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert "the grid has more than 100000 cells (seed sweeps 100001+ values)" in line
    assert out.splitlines() == ["norm=batch,seed=0  unfinished", "1 cells: 1 unfinished"]


# ---- a full disk -------------------------------------------------------------------------------


# python run.py ARGS where every file the harness opens to write in a run directory (run.log,
# metrics.csv, summary.json, the checkpoint, .hydra/) fails as on a full disk: for machines
# where no tmpfs can be mounted
FULL_DISK = """
import errno, os, runpy, sys
from normbench.run import checkpoint, record, rundir, sinks
from normbench import files
def full(path, mode, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
for module in (checkpoint, files, record, rundir, sinks):
    module.open_private = full
sys.argv = ["run.py", *sys.argv[1:]]
runpy.run_path("run.py", run_name="__main__")
"""


@pytest.fixture
def tmpfs(tmp_path):
    """A directory on a 60 KiB tmpfs: a run's first checkpoint fills it. Mounting needs root
    (CAP_SYS_ADMIN); elsewhere the test is skipped (the patched variant runs everywhere)."""
    mount = tmp_path / "full"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=60k", "tmpfs", str(mount)]
    done = subprocess.run(command, check=False, capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.slow
@pytest.mark.parametrize("disk", ["tmpfs", "patched"])
def test_a_sweep_on_a_full_disk_ends_with_one_line_per_cell_and_exit_2(request, tmp_path, disk):
    short = [o for o in SHORT if not o.startswith("epochs=")] + ["epochs=3"]
    args = ["-m", *short, "norm=batch,layer"]
    if disk == "tmpfs":
        result = run_python("run.py", *args, results=request.getfixturevalue("tmpfs") / "r")
    else:
        result = run_python("-c", FULL_DISK, *args, results=tmp_path / "r")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr
    failed = [line for line in result.stderr.splitlines() if "run failed: " in line]
    assert len(failed) == 2 and all("No space left on device" in line for line in failed)
    assert result.stderr.strip().splitlines()[-1].startswith("error: the sweep ended with 2 failure(s)")


# ---- a parallel-launcher worker killed ---------------------------------------------------------------


def test_a_killed_parallel_worker_is_one_line_and_the_report_of_what_finished(tmp_path):
    """Two cells on two workers: one short (it finishes), one long, whose worker is killed as
    the OOM killer would (SIGKILL; its pid is in the cell's .lock)."""
    log = tmp_path / "sweep.log"
    slow = [o for o in SLOW if not o.startswith(("threads=", "epochs="))]
    args = ["epochs=1,200", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *slow]
    proc = start(tmp_path, *args, log=log, multirun=True)
    sweep_dir = tmp_path / "default"
    short, long = (sweep_dir / cell_name([*slow, f"epochs={n}"]) for n in (1, 200))
    try:
        wait_for((short / "summary.json").exists, proc, "the short cell", timeout=300)
        wait_for(lambda: finished_epochs(long / "metrics.csv") >= 1, proc, "the long cell's first epoch")
        os.kill(int((long / ".lock").read_text()), signal.SIGKILL)
        assert proc.wait(timeout=300) == 2, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "Traceback" not in text and "TerminatedWorkerError" not in text, text[-3000:]
    (line,) = [line for line in text.splitlines() if "died" in line]
    assert "a worker process of hydra/launcher=parallel died ({SIGKILL(-9)})" in line
    assert json.loads((short / "summary.json").read_text())["status"] == "done"
    assert not (long / "summary.json").exists()  # unfinished: the rerun resumes it
    assert (sweep_dir / "report.md").exists()


def test_the_fused_key_without_a_sweep_is_refused_before_any_directory(cli, tmp_path):
    result = cli(*TINY, "seed=0", "+fused_seeds=[0,1]", results=tmp_path / "r")
    assert result.returncode == 2
    assert one_error_line(result).startswith("error: fused_seeds=[0, 1]: is the fused sweeper's own key")
    assert not (tmp_path / "r").exists()


def test_ctrl_c_while_a_checkpoint_is_written_is_an_interrupt_not_a_failure(make_cfg, tmp_path, monkeypatch):
    """torch.save wraps what a file object's write raised in a RuntimeError: SIGTERM during
    the checkpoint's write must still end the run interrupted."""
    from normbench.run import checkpoint

    class Interrupted(io.BytesIO):
        def write(self, data):
            if self.tell() > 0:  # mid-file, as a signal would land
                raise KeyboardInterrupt
            return super().write(data)

    monkeypatch.setattr(checkpoint, "open_private", lambda path, mode: Interrupted())
    summary = runner.run(make_cfg(*SHORT), tmp_path)
    assert summary["status"] == "interrupted" and summary["epochs_done"] == 0


def test_interrupted_fused_members_record_the_epochs_of_their_checkpoints(make_cfg, tmp_path, monkeypatch):
    from normbench.run.fused.stepper import run_group

    real = runner.save_checkpoint

    def interrupted_at_2(run_dir, identity, trainer, epoch, progress):
        if epoch == 2:  # Ctrl-C after the first member's rows of epoch 2, before its checkpoint
            raise KeyboardInterrupt
        real(run_dir, identity, trainer, epoch, progress)

    monkeypatch.setattr(runner, "save_checkpoint", interrupted_at_2)
    dirs = [tmp_path / str(s) for s in (0, 1)]
    done = run_group(make_cfg("model=mlp", "norm=layer", *SHORT), [0, 1], dirs)
    assert [s["status"] for s in done] == ["interrupted", "interrupted"]
    for run_dir in dirs:
        on_disk = json.loads((run_dir / "summary.json").read_text())
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        assert (
            on_disk["epochs_done"] == state["epoch"] == 1 and on_disk["final"] == state["progress"]["final"]
        )
