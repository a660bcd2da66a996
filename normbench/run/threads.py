"""How many torch threads a run gets when a sweep launcher runs several side by side."""

from __future__ import annotations

import os
from typing import Any


def threads_per_job(launcher: Any) -> int:
    """cores / parallel jobs for a launcher that runs jobs side by side on this machine
    (joblib's n_jobs, submitit's cpus_per_task), so parallel runs never oversubscribe the
    cores: with tiny models, two threads fighting for one core run several times slower."""
    cores = available_cores()
    if "cpus_per_task" in launcher and launcher.cpus_per_task:
        return max(1, int(launcher.cpus_per_task))
    jobs = launcher.get("n_jobs") or 1
    jobs = cores if jobs < 0 else jobs
    return max(1, cores // jobs)


def available_cores() -> int:
    """The cores this process may run on (taskset, a cgroup cpuset, a SLURM allocation), which
    may be far fewer than the machine's os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
