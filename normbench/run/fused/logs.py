"""Each fused member's ``run.log``, as its unfused run would have it. Hydra gives the job one
log file, in its output directory (the first member's); the lines about one member (its
epochs, resume, precise BN, "did not learn") go to that member's own file instead, so that a
run directory's log speaks of its run only and every member has one."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from normbench.files import RunLog

LOG_NAME = "run.log"  # conf/hydra/job_logging/normbench.yaml

# the run.log files of the members the current lines are about; empty: the job's own
_members: ContextVar[tuple[Path, ...]] = ContextVar("fused_members", default=())


@contextlib.contextmanager
def member_log(*run_dirs: Path) -> Iterator[None]:
    """Within the block, log lines are about the members of ``run_dirs`` (one, or the group)."""
    token = _members.set(tuple((Path(d) / LOG_NAME).resolve() for d in run_dirs))
    try:
        yield
    finally:
        _members.reset(token)


class _MemberFiles(logging.Handler):
    """The lines of a member other than the job's own: into that member's run.log."""

    def __init__(self, job_log: logging.FileHandler) -> None:
        super().__init__(job_log.level)
        self.job_path = Path(job_log.baseFilename).resolve()
        self.setFormatter(job_log.formatter)
        self.files: dict[Path, logging.FileHandler] = {}

    def for_job(self, record: logging.LogRecord) -> bool:
        """Whether the job's own file (Hydra's handler) takes the line."""
        current = _members.get()
        return not current or self.job_path in current

    def emit(self, record: logging.LogRecord) -> None:
        for path in _members.get():
            if path == self.job_path:
                continue
            if path not in self.files:
                self.files[path] = RunLog(path, delay=True)
                self.files[path].setFormatter(self.formatter)
            self.files[path].emit(record)

    def close(self) -> None:
        for handler in self.files.values():
            handler.close()
        super().close()


@contextlib.contextmanager
def routed() -> Iterator[None]:
    """While the group runs: the job's log file (Hydra's, if any) keeps the lines of no member
    and of its own; each other member's lines go to that member's run.log."""
    root = logging.getLogger()
    job_logs = [
        h for h in root.handlers if isinstance(h, logging.FileHandler) and h.baseFilename.endswith(LOG_NAME)
    ]
    if not job_logs:  # outside Hydra (runner.run called directly): no run.log at all
        yield
        return
    files = _MemberFiles(job_logs[0])

    job_logs[0].addFilter(files.for_job)
    root.addHandler(files)
    try:
        yield
    finally:
        root.removeHandler(files)
        job_logs[0].removeFilter(files.for_job)
        files.close()
