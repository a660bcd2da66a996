"""Run-directory safety (a hostile user's attempts): one identity and one process
per run directory, resume only from what validates, paths inside results_dir, sweeps that stop.

Every case is a real ``python run.py`` process; a kill at an exact point is ``os._exit`` in a
patched runner function, which, like SIGKILL, runs no cleanup.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import TINY, run_python, start, summaries
from test_sweeps import NO_REPORT, SLOW, finished_epochs, metric_keys, wait_for

from normbench.run.runner import run
from normbench.sweep.status import cell_name

# the slow tier: every test here drives real `python run.py` processes (kills, locks, signals)
pytestmark = pytest.mark.slow

# the first hostile command: a second config into a finished run's directory
MINE = ["name=mine", "epochs=1", "data.train_size=64", "data.test_size=32", "batch=16"]
MINE += ["progress=false", "threads=1"]
# four epochs of a few steps: kills land between epochs, reruns take a second or two
SHORT = ["data.train_size=256", "data.test_size=32", "batch=8", "epochs=4", "progress=false", "threads=1"]

# python run.py ARGS, with one function of the run patched to die (os._exit, as a SIGKILL would)
KILLED_IN = """
import os, runpy, sys
import normbench.run.{module} as module
real = module.{fn}
def patched(*args, **kwargs):
    if {before}:
        os._exit(137)
    out = real(*args, **kwargs)
    if {after}:
        os._exit(137)
    return out
module.{fn} = patched
sys.argv = ["run.py", *sys.argv[1:]]
runpy.run_path("run.py", run_name="__main__")
"""
# killed right after the checkpoint of epoch 2 is written
AFTER_EPOCH_2 = {"module": "runner", "fn": "save_checkpoint", "before": "False", "after": "args[3] == 2"}
# killed after every row of a finished run (Precise BN's included), before its summary
BEFORE_SUMMARY = {"module": "record", "fn": "finish", "before": "args[2] == 'done'", "after": "False"}


def killed(results: Path, *args: str, at: dict[str, str]) -> subprocess.CompletedProcess:
    result = run_python("-c", KILLED_IN.format(**at), *args, results=results)
    assert result.returncode == 137, result.stderr[-2000:]
    return result


def only_dir(results: Path) -> Path:
    (path,) = [p.parent for p in results.rglob(".hydra")]
    return path


def files(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run but its lock and log, by relative path."""
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name not in (".lock", "run.log")
    }


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    return lines[0]


def scalar_counts(tb_dir: Path) -> Counter:
    """How many times each (tag, step) was logged, over every event file of the run."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    counts: Counter = Counter()
    for path in sorted(tb_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "hparams":
                    counts[value.tag, event.step] += 1
    return counts


# ---- 1, 2: a finished run belongs to its identity ----------------------------------------------


def test_1_a_finished_run_of_another_config_is_not_replaced_without_force(cli, tmp_path):
    first = cli(*MINE)
    assert first.returncode == 0, first.stderr[-2000:]
    run_dir = only_dir(tmp_path)
    kept = files(run_dir)

    other = cli("experiment=mlp_threshold", *MINE)  # same directory: `experiment` is not in its name
    assert other.returncode == 2
    line = one_error_line(other)
    assert line.startswith(f"error: name=mine: {run_dir} holds a finished run of another config")
    assert "another name=" in line and "force=true" in line
    assert files(run_dir) == kept  # summary, metrics, events and .hydra: byte for byte

    forced = cli("experiment=mlp_threshold", *MINE, "force=true")
    assert forced.returncode == 0, forced.stderr[-2000:]
    (summary,) = summaries(tmp_path)
    assert summary["identity"] != json.loads(kept["summary.json"])["identity"]
    assert summary["config"]["optim"]["name"] == "adam"  # mlp_threshold's


@pytest.mark.parametrize("bad", ["threads=0", "log_every=0", "progress=maybe"])
def test_2_force_with_a_bad_output_key_leaves_the_finished_run_alone(cli, tmp_path, bad):
    assert cli(*TINY).returncode == 0
    run_dir = only_dir(tmp_path)
    kept = files(run_dir)
    keep = [o for o in TINY if not o.startswith(bad.split("=")[0] + "=")]
    result = cli(*keep, "force=true", bad)
    assert result.returncode == 2
    assert one_error_line(result).startswith(f"error: {bad.split('=')[0]}=")
    assert files(run_dir) == kept
    assert summaries(tmp_path)[0]["status"] == "done"


# ---- 3, 5, 6, 7, 16: resume validates what it resumes from -------------------------------------


def test_3_a_kill_after_precise_bn_rows_does_not_log_them_twice(cli, make_cfg, tmp_path):
    args = [*SHORT, "epochs=2", "norm.precise_bn_samples=64"]
    killed(tmp_path / "r", *args, at=BEFORE_SUMMARY)
    run_dir = only_dir(tmp_path / "r")
    assert not (run_dir / "summary.json").exists()
    assert any(r[2] == "test_precise" for r in csv.reader((run_dir / "metrics.csv").open()))

    again = cli(*args, results=tmp_path / "r")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming after epoch 2 " in again.stderr
    keys = metric_keys(run_dir / "metrics.csv")
    assert len(keys) == len(set(keys)), "duplicated rows"
    counts = scalar_counts(run_dir / "tb")
    assert counts and max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    assert {tag for tag, _ in counts} >= {"test_precise/loss", "test_precise/accuracy"}

    reference = run(make_cfg(*args), tmp_path / "reference")
    assert (run_dir / "metrics.csv").read_bytes() == (tmp_path / "reference" / "metrics.csv").read_bytes()
    assert json.loads((run_dir / "summary.json").read_text())["final"] == reference["final"]


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory):
    """A run of SHORT killed after epoch 2's checkpoint, and the metrics of the same run
    uninterrupted; made once, each test resumes a copy (UNFINISHED: the tests that take it run
    on one worker, so it is made once for all of them)."""
    base = tmp_path_factory.mktemp("unfinished")
    killed(base / "killed", *SHORT, at=AFTER_EPOCH_2)
    assert run_python("run.py", *SHORT, results=base / "reference").returncode == 0
    return only_dir(base / "killed"), (only_dir(base / "reference") / "metrics.csv").read_bytes()


UNFINISHED = pytest.mark.xdist_group("rundir-unfinished")


def copy_run(run_dir: Path, results: Path) -> Path:
    """The killed run under another results_dir (same relative path)."""
    copy = results / run_dir.relative_to(run_dir.parents[1])
    shutil.copytree(run_dir, copy)
    return copy


def damage_inside(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] = 0xFF  # not UTF-8: a flipped byte in a row the checkpoint vouches for
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, log",
    [
        # 5: random bytes appended: past the checkpoint's size, cut like a killed epoch's rows
        (lambda p: p.open("ab").write(os.urandom(64) + b"\n\xff\xfe"), "resuming after epoch 2 "),
        # 5: damaged within: the run starts over rather than keep a history it cannot read
        (damage_inside, "cannot resume from"),
        # 6: deleted: starts over, never a history with only the later epochs
        (lambda p: p.unlink(), "metrics.csv is missing; starting over"),
    ],
    ids=["bytes-appended", "bytes-damaged", "deleted"],
)
@UNFINISHED
def test_5_6_a_damaged_or_missing_metrics_csv_resumes_or_starts_over_never_a_traceback(
    cli, tmp_path, unfinished, damage, log
):
    killed_dir, reference = unfinished
    run_dir = copy_run(killed_dir, tmp_path / "r")
    damage(run_dir / "metrics.csv")
    result = cli(*SHORT, results=tmp_path / "r")
    assert result.returncode == 0, result.stderr[-2000:]
    assert log in result.stderr and "Traceback" not in result.stderr
    assert (run_dir / "metrics.csv").read_bytes() == reference  # all four epochs, each once
    assert summaries(tmp_path / "r")[0]["status"] == "done"


class Payload:
    """What a crafted checkpoint could carry: a pickle that runs code when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@UNFINISHED
@pytest.mark.parametrize("kind", ["pickle-payload", "truncated"])
def test_7_16_a_crafted_or_damaged_checkpoint_is_not_run_and_is_discarded_with_a_line(
    cli, tmp_path, unfinished, kind
):
    killed_dir, reference = unfinished
    run_dir = copy_run(killed_dir, tmp_path / "r")
    checkpoint = run_dir / "checkpoint.pt"
    marker = tmp_path / "payload-ran"
    if kind == "pickle-payload":  # this run's own identity, so only the load itself can refuse it
        state = torch.load(checkpoint, weights_only=True)
        state["progress"]["extra"] = Payload(marker)
        torch.save(state, checkpoint)
    else:
        checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    result = cli(*SHORT, results=tmp_path / "r")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not marker.exists()
    assert f"discarding {checkpoint}: cannot be read as a checkpoint" in result.stderr
    assert "starting over" in result.stderr
    assert (run_dir / "metrics.csv").read_bytes() == reference


# ---- 4: one process per run directory -----------------------------------------------------------


def test_4_a_second_process_on_the_same_directory_stops_at_once(cli, tmp_path):
    results = tmp_path / "r"
    long = [o for o in SLOW if not o.startswith("epochs=")] + ["epochs=100"]  # still running below
    first = start(results, *long, log=tmp_path / "first.log")
    metrics = results / "default" / cell_name(long) / "metrics.csv"
    wait_for(lambda: finished_epochs(metrics) >= 1, first, "the first epoch")
    second = cli(*long, results=results)
    assert first.poll() is None, "the first run ended before the second started: make it longer"
    assert second.returncode == 2
    line = one_error_line(second)
    assert line.startswith(f"error: name=default: {metrics.parent} is in use by another process")
    assert f"(pid {first.pid})" in line

    first.send_signal(signal.SIGTERM)  # the first run was not disturbed: it ends as it would alone
    assert first.wait(timeout=120) == 130, (tmp_path / "first.log").read_text()[-2000:]
    keys = metric_keys(metrics)
    assert len(keys) == len(set(keys)) and finished_epochs(metrics) >= 1
    assert len(list((metrics.parent / "tb").glob("events.out.tfevents.*"))) == 1
    assert summaries(results)[0]["status"] == "interrupted"
    assert "in use" not in (metrics.parent / "run.log").read_text()


# ---- 8, 12: where run directories may be --------------------------------------------------------


@pytest.mark.parametrize("name", ["../escaped", "../../escaped", "/tmp/nb-absolute-name", ""])
def test_8_name_stays_inside_results_dir(cli, tmp_path, name):
    results = tmp_path / "a" / "results"
    result = cli(*TINY, f"name={name}", results=results)
    assert result.returncode == 2
    assert one_error_line(result).startswith(f"error: name={name}: must be a relative path inside")
    assert not list(tmp_path.rglob("*"))  # nothing made, results_dir neither
    assert not Path("/tmp/nb-absolute-name").exists()


def test_8_a_swept_name_stays_inside_results_dir_too(cli, tmp_path):
    result = cli("-m", *TINY, "name=ok,../escaped", results=tmp_path / "results")
    assert result.returncode == 2
    assert one_error_line(result).startswith("error: name=../escaped: must be a relative path")
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.rglob("metrics.csv"))


def unwritable_dir(tmp_path: Path) -> Path:
    """A directory this process cannot create: under a read-only directory, or for root (which
    write permissions do not stop) under /sys."""
    if os.geteuid() != 0:
        locked = tmp_path / "read-only"
        locked.mkdir()
        locked.chmod(0o555)
        return locked / "results"
    if _cannot_mkdir("/sys/nb-probe"):
        return Path("/sys/normbench-results")
    pytest.skip("no unwritable directory here")


def _cannot_mkdir(path: str) -> bool:
    try:
        os.mkdir(path)
    except OSError:
        return True
    os.rmdir(path)
    return False


@pytest.mark.parametrize("mode", ["-m", "single"])
def test_12_results_dir_a_file_or_unwritable_is_one_line_and_exit_2(cli, tmp_path, mode):
    flag = ["-m"] if mode == "-m" else []
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    result = cli(*flag, *TINY, results=a_file)
    assert result.returncode == 2
    assert one_error_line(result) == f"error: results_dir={a_file}: {a_file} is a file; give a directory"
    result = cli(*flag, *TINY, results=a_file / "below")
    assert result.returncode == 2 and "is a file; give a directory" in one_error_line(result)

    unwritable = unwritable_dir(tmp_path)
    result = cli(*flag, *TINY, results=unwritable)
    assert result.returncode == 2
    assert one_error_line(result).startswith(f"error: results_dir={unwritable}: cannot write there (")


def test_12_a_file_where_a_cells_directory_goes_is_one_line_with_the_fix_before_any_cell(cli, tmp_path):
    """A file in place of a cell's directory: Hydra would stop the sweep when it reached that
    cell (FileExistsError, which reads as an unwritable results tree); it is found before any
    cell runs, and the line says which file and what to do."""
    sweep_dir = tmp_path / "default"
    sweep_dir.mkdir()
    stray = sweep_dir / cell_name([*TINY, "norm=layer"])  # the second cell's place
    stray.write_text("")
    result = cli("-m", "norm=batch,layer", *TINY, NO_REPORT)
    assert result.returncode == 2
    line = one_error_line(result)
    assert f"{stray} is a file where the run directory of the cell " in line and "move it away" in line
    assert summaries(tmp_path) == [] and stray.read_text() == ""


# ---- 9: a sweep stops on Ctrl-C and SIGTERM ------------------------------------------------------


def sweep_cells(sweep_dir: Path) -> dict[str, str]:
    """Each cell directory of the sweep, and its status (unfinished: no summary)."""
    out = {}
    for path in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and "=" in p.name):
        summary = path / "summary.json"
        out[path.name] = json.loads(summary.read_text())["status"] if summary.exists() else "unfinished"
    return out


def epochs_started(sweep_dir: Path) -> int:
    """How many cells have finished an epoch."""
    if not sweep_dir.is_dir():
        return 0
    return sum(finished_epochs(p / "metrics.csv") >= 1 for p in sweep_dir.iterdir())


def stop_sweep(proc: subprocess.Popen, how: str) -> None:
    if how == "ctrl-c":  # the terminal signals the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    else:  # a scheduler or `kill` signals the sweep's process only
        proc.send_signal(signal.SIGTERM)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_9_a_sweep_stops_at_its_current_cell(tmp_path, how):
    log = tmp_path / "sweep.log"
    proc = start(tmp_path, "norm=batch,layer,group", *SLOW, NO_REPORT, log=log, multirun=True, own_group=True)
    sweep_dir = tmp_path / "default"
    wait_for(lambda: epochs_started(sweep_dir) >= 1, proc, "the first cell's first epoch")
    stop_sweep(proc, how)
    assert proc.wait(timeout=120) == 130, log.read_text()[-2000:]
    assert list(sweep_cells(sweep_dir).values()) == ["interrupted"]  # the others never started
    text = log.read_text()
    assert "Traceback" not in text and "interrupted: stopped" in text.splitlines()[-1]


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_9_a_parallel_sweep_stops_at_its_current_cells(tmp_path, how):
    log = tmp_path / "sweep.log"
    slow = [o for o in SLOW if not o.startswith("threads=")]
    args = ["norm=batch,layer,group,none", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]
    args += [*slow, NO_REPORT]
    proc = start(tmp_path, *args, log=log, multirun=True, own_group=True)
    sweep_dir = tmp_path / "default"

    wait_for(lambda: epochs_started(sweep_dir) >= 2, proc, "two cells' first epochs", timeout=300)
    stop_sweep(proc, how)
    assert proc.wait(timeout=120) == 130, log.read_text()[-3000:]
    assert list(sweep_cells(sweep_dir).values()) == ["interrupted", "interrupted"], log.read_text()[-3000:]
    # not necessarily the last line: loky's resource tracker may warn after the sweep exits
    assert "interrupted: stopped" in log.read_text()


def test_9_a_parallel_sweep_killed_outright_leaves_no_worker_training(tmp_path):
    # kill -9 (or the OOM killer) of the sweep's process passes no signal on: its workers
    # noticed nothing and trained on, holding their cells' locks; now each records its cell
    # interrupted and exits, and the next run of the sweep resumes them
    log = tmp_path / "sweep.log"
    long = [o for o in SLOW if not o.startswith(("threads=", "epochs="))] + ["epochs=100"]  # never ends here
    args = ["norm=batch,layer", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *long, NO_REPORT]
    proc = start(tmp_path, *args, log=log, multirun=True, own_group=True)
    sweep_dir = tmp_path / "default"
    wait_for(lambda: epochs_started(sweep_dir) >= 2, proc, "two cells' first epochs", timeout=300)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 60
    while set(sweep_cells(sweep_dir).values()) != {"interrupted"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(sweep_cells(sweep_dir).values()) == ["interrupted", "interrupted"], log.read_text()[-3000:]


# ---- exit codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("override", ["norm=bogus", "batch=[1", "+norm=batch"])
def test_hydras_own_input_errors_exit_2(cli, override):
    result = cli(override, *TINY)
    assert result.returncode == 2, result.stderr[-2000:]
    one_error_line(result)  # Hydra's message, folded onto one line


@pytest.mark.parametrize("damaged", ['"x"', "[1, 2]", "7"])
def test_a_summary_that_is_not_an_object_is_damaged_not_a_traceback(make_cfg, tmp_path, damaged):
    # valid JSON, but not the object a summary is: read as no summary, as unparsable JSON is
    cfg = make_cfg(*TINY)
    run(cfg, tmp_path)
    (tmp_path / "summary.json").write_text(damaged)
    assert run(cfg, tmp_path)["status"] == "done"


def test_a_finished_run_with_damaged_overrides_is_still_refused_in_one_line(make_cfg, tmp_path):
    from normbench.errors import ConfigError

    (tmp_path / "summary.json").write_text(json.dumps({"status": "done", "identity": "abc", "overrides": 5}))
    with pytest.raises(ConfigError, match="holds a finished run of another config"):
        run(make_cfg(*TINY), tmp_path)
