"""The submitit launchers of conf/hydra/launcher/{slurm,local}.yaml, with what a cluster user needs
beyond hydra-submitit-launcher:

- errors before anything is submitted, one line each (exit code 2): an unknown partition, GPUs on
  a partition without them, more CPUs or memory than a node of the partition has;
- job status from ``squeue`` on a cluster without accounting (submitit asks ``sacct``, which
  then fails on every poll, and a job that died without a result would be waited for forever);
- the sweep's own SIGINT or SIGTERM cancels the jobs it submitted, then exits 130;
- a job requeued at its time limit is not recorded as ``interrupted``: its requeued job resumes
  the run from its last epoch checkpoint;
- a job that ends without a result (cancelled before it started, killed) leaves its cell
  unfinished with one log line, and the other cells go on; rerunning the sweep finishes it.
"""

from __future__ import annotations

import copy
import getpass
import logging
import re
import shutil
import signal
import subprocess
import sys
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher as _JoblibLauncher
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from joblib.externals.loky.process_executor import TerminatedWorkerError
from omegaconf import OmegaConf
from submitit.core.utils import UncompletedJobError
from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

from normbench.errors import ConfigError, one_line
from normbench.run import interrupt, record
from normbench.run.interrupt import interrupt_on_sigterm

log = logging.getLogger(__name__)

# squeue states of a job that still holds or waits for resources
ACTIVE = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
}


class _Submitit:
    """What both submitit launchers add; mixed into hydra-submitit-launcher's classes."""

    _EXECUTOR: str
    params: dict[str, Any]

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        self.check()
        jobs: list[Any] = []
        try:
            with interrupt_on_sigterm():
                jobs = self.submit(job_overrides, initial_job_idx)
                return [result(job, overrides) for job, overrides in zip(jobs, job_overrides)]
        except KeyboardInterrupt:
            self.cancel(jobs)
            log.warning("sweep interrupted: cancelled its %d jobs", len(jobs))
            sys.exit(130)

    def check(self) -> None:
        """Stop before submitting anything when the request cannot run."""

    def submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
        """hydra-submitit-launcher's launch up to the submission (its jobs are not returned)."""
        specific = {"max_num_timeout"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=self.params["submitit_folder"],
            **{f"{self._EXECUTOR}_{k}": v for k, v in self.params.items() if k in specific},
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                k if k in base else f"{self._EXECUTOR}_{k}": v
                for k, v in self.params.items()
                if k not in specific | {"submitit_folder"}
            }
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            sweep_dir.chmod(int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        args = []
        for idx, overrides in enumerate(job_overrides, initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            args.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        return executor.map_array(self.job(), *zip(*args))

    def job(self) -> Any:
        """This launcher as each job unpickles and calls it: as its class here, which the job
        imports from the installed normbench wherever it starts (the subclass Hydra registers is
        in hydra_plugins/, found on the path of run.py's directory only)."""
        job = copy.copy(self)
        job.__class__ = next(c for c in type(self).__mro__ if c.__module__ == __name__)
        return job

    @abstractmethod
    def cancel(self, jobs: list[Any]) -> None:
        """Cancel the submitted ``jobs`` and wait until they are gone: each launcher its own way."""


def result(job: Any, overrides: Sequence[str]) -> JobReturn:
    """The job's JobReturn; a job that ended without one leaves its cell unfinished."""
    try:
        return note_failures([job.results()[0]])[0]
    except UncompletedJobError as err:
        why = " ".join(str(err).splitlines()[:2])  # Job 12_1 (task: 0) ... (state: CANCELLED)
        log.warning(
            "job %s ended without a result (%s): its cell stays unfinished; rerun the sweep to finish it",
            job.job_id,
            why,
        )
        return unfinished(overrides)


def unfinished(overrides: Sequence[str]) -> JobReturn:
    """What a job that ended without a result returns to Hydra: the sweep goes on to its report."""
    return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value="unfinished")


def note_failures(returns: Sequence[JobReturn]) -> Sequence[JobReturn]:
    """Count, in the sweep's process, the cells whose worker could not write (normbench.task)."""
    for ret in returns:
        if ret.status == JobStatus.COMPLETED and ret._return_value == record.CANNOT_WRITE:
            record.SWEEP_FAILURES.append(f"{' '.join(ret.overrides or [])}: could not write")
    return returns


class JoblibLauncher(_JoblibLauncher):
    """hydra/launcher=parallel (conf/hydra/launcher/parallel.yaml): a worker process killed
    (the OOM killer, ``kill -9``) is one line instead of joblib's traceback; the cells it and
    the other workers were running stay unfinished (loky stops them all), and the sweep goes
    on to its report of the cells that finished. Rerunning the sweep finishes the others."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        try:
            return note_failures(super().launch(job_overrides, initial_job_idx))
        except TerminatedWorkerError as err:
            if interrupt.stopping():  # the sweep's own Ctrl-C or SIGTERM ended its workers
                raise KeyboardInterrupt from None
            codes = re.search(r"exit codes of the workers are (\{.*?\})", str(err))
            line = (
                f"a worker process of hydra/launcher=parallel died ({codes[1] if codes else one_line(err)}): "
                "the cells being run stay unfinished; rerun the sweep to finish them"
            )
            log.error("%s", line)
            record.SWEEP_FAILURES.append(line)
            return [unfinished(overrides) for overrides in job_overrides]


class LocalLauncher(_Submitit, submitit_launcher.LocalLauncher):
    def cancel(self, jobs: list[Any]) -> None:
        # SIGTERM, not submitit's SIGINT: its job process forwards SIGTERM to the run, which
        # records status interrupted (SIGINT would be followed by SIGKILL within a second)
        processes = [job._process for job in jobs if job._process is not None]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


class SlurmLauncher(_Submitit, submitit_launcher.SlurmLauncher):
    def check(self) -> None:
        try:
            check_request(self.params, read_nodes())
            if not accounting():
                use_squeue()
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)

    def cancel(self, jobs: list[Any]) -> None:
        ids = sorted({job.job_id.split("_")[0] for job in jobs})
        if not ids:
            return
        subprocess.run(["scancel", *ids], check=False)
        # scancel returns at once; the jobs leave the queue after their processes end
        deadline = time.monotonic() + 60
        while active_jobs(ids) and time.monotonic() < deadline:
            time.sleep(0.5)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called in the job when SLURM signals its time limit, before submitit requeues it: the
        requeue ends this job with SIGTERM, which the run would record as interrupted; ignored
        from here on, the run resumes from its last epoch checkpoint in the requeued job."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return super().checkpoint(*args, **kwargs)


# ---- the cluster, from sinfo / scontrol / squeue ---------------------------------------------


@dataclass
class Node:
    partition: str
    default: bool  # the cluster's default partition
    cpus: int
    mem_mb: int
    gpus: int


def slurm(*command: str) -> str:
    """A SLURM command's output; a missing or failing command stops the sweep with one line."""
    if shutil.which(command[0]) is None:
        raise ConfigError(
            "hydra/launcher",
            "slurm",
            f"{command[0]} not found: this machine is no SLURM login node "
            "(one machine: hydra/launcher=local; a local rehearsal cluster: scripts/slurm_local.sh start)",
        )
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError("hydra/launcher", "slurm", f"{' '.join(command)} failed: {why}")
    return done.stdout


def read_nodes() -> list[Node]:
    nodes = []
    for line in slurm("sinfo", "--noheader", "--Node", "--format=%P|%c|%m|%G").splitlines():
        partition, cpus, mem, gres = line.strip().split("|")
        gpus = sum(int(n) for n in re.findall(r"gpu(?::[^:,(]+)?:(\d+)", gres))
        nodes.append(Node(partition.rstrip("*"), partition.endswith("*"), int(cpus), int(mem), gpus))
    return nodes


def check_request(params: dict[str, Any], nodes: list[Node]) -> None:
    """ConfigError when no node of the partition can run one job of the request."""
    partitions = sorted({n.partition for n in nodes})
    partition = params.get("partition") or next((n.partition for n in nodes if n.default), None)
    if partition is None:
        return  # no default partition: sbatch says what it wants
    if partition not in partitions:
        raise ConfigError(
            "hydra.launcher.partition",
            partition,
            f"no such partition; sinfo lists {', '.join(partitions)}",
        )
    mine = [n for n in nodes if n.partition == partition]
    tasks = max(1, int(params.get("tasks_per_node") or 1))
    gpus = int(params.get("gpus_per_node") or 0) or int(params.get("gpus_per_task") or 0) * tasks
    most = max(n.gpus for n in mine)
    if gpus > most:
        key = "gpus_per_node" if params.get("gpus_per_node") else "gpus_per_task"
        fix = f"has no GPUs; use hydra.launcher.{key}=0" if not most else f"nodes have at most {most} GPUs"
        raise ConfigError(f"hydra.launcher.{key}", params.get(key), f"partition {partition} {fix}")
    cpus = max(n.cpus for n in mine)
    if int(params.get("cpus_per_task") or 1) * tasks > cpus:
        raise ConfigError(
            "hydra.launcher.cpus_per_task",
            params.get("cpus_per_task"),
            f"the nodes of partition {partition} have at most {cpus} CPUs"
            + (f" for {tasks} tasks" if tasks > 1 else "")
            + f"; use hydra.launcher.cpus_per_task<={cpus // tasks}",
        )
    mem_gb = max(n.mem_mb for n in mine) // 1024
    if params.get("mem_gb") and params["mem_gb"] > mem_gb:
        raise ConfigError(
            "hydra.launcher.mem_gb",
            params["mem_gb"],
            f"the nodes of partition {partition} have at most {mem_gb} GB for jobs; "
            f"use hydra.launcher.mem_gb<={mem_gb}",
        )


def accounting() -> bool:
    """Whether the cluster stores accounting (sacct can tell job states)."""
    config = slurm("scontrol", "show", "config")
    return not re.search(r"^AccountingStorageType\s*=\s*accounting_storage/none", config, re.M)


def squeue_states() -> dict[str, str]:
    """{job id (12345 or 12345_0 for an array task): state} of this user's jobs that slurmctld
    still knows (finished ones for MinJobAge seconds)."""
    out = slurm(
        "squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", f"--user={getpass.getuser()}"
    )
    return dict(line.strip().split("|") for line in out.splitlines() if "|" in line)


def active_jobs(ids: list[str]) -> list[str]:
    return [j for j, state in squeue_states().items() if j.split("_")[0] in ids and state in ACTIVE]


def use_squeue() -> None:
    """Job states from squeue for this sweep: without accounting, sacct fails on every poll."""
    if not isinstance(SlurmJob.watcher, SqueueWatcher):
        log.info("SLURM accounting is disabled on this cluster: job status comes from squeue")
        SlurmJob.watcher = SqueueWatcher(delay_s=60)


class SqueueWatcher(SlurmInfoWatcher):
    """submitit's job-state watcher, asking squeue: a job squeue no longer lists has left the
    cluster, so it is finished (with a result pickle or without one)."""

    def _make_command(self) -> list[str] | None:
        if not self._registered - self._finished:
            return None
        return [
            "squeue",
            "--noheader",
            "--array",
            "--states=all",
            "--format=%i|%T|%N",
            f"--user={getpass.getuser()}",
        ]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        text = string.decode() if isinstance(string, bytes) else string
        info = {}
        for line in text.splitlines():
            if line.count("|") == 2:
                job_id, state, nodes = line.strip().split("|")
                info[job_id] = {"JobID": job_id, "State": state, "NodeList": nodes}
        gone = {"State": "NOT_IN_SQUEUE"}  # not one of submitit's unfinished states
        return {**{j: gone for j in self._registered - self._finished}, **info}
