"""Ctrl-C (SIGINT) and SIGTERM: they end a run, and the whole sweep it is part of.

A run being trained ends ``interrupted`` (:func:`interrupt_on_sigterm`; the runner records
it). In a sweep the cells not started stay unstarted, and run.py exits 130. On the joblib
launcher the cells run in worker processes: the sweep's process passes the signal on to them
and waits until they have recorded their cell, before joblib would kill them (with SIGKILL,
which records nothing).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from normbench.run import record

# how long the sweep's process waits for its workers to record their cells
GRACE_S = 60.0

# installed: this process runs the sweep's cells itself (Hydra's basic launcher)
_state = {"installed": False, "stopping": False, "watching": False}


def install() -> None:
    """In the process that runs the sweep (run.py): SIGINT and SIGTERM stop it."""
    _state["installed"] = True
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def _stop(signum: int, frame: Any) -> None:
    if _state["stopping"]:  # a second signal while waiting for the workers: stop now
        raise KeyboardInterrupt
    _state["stopping"] = True
    workers = multiprocessing.active_children()  # joblib's loky workers; none on the basic launcher
    for worker in workers:
        if worker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    waiting = [w.sentinel for w in workers]
    while waiting and time.monotonic() < deadline:
        done = multiprocessing.connection.wait(waiting, timeout=deadline - time.monotonic())
        waiting = [s for s in waiting if s not in done]
    raise KeyboardInterrupt


def stopping() -> bool:
    """Whether this process is stopping a sweep on Ctrl-C or SIGTERM (its workers end then)."""
    return _state["stopping"]


def end_sweep() -> None:
    """Called once a cell of a sweep has recorded ``interrupted``: the sweep stops here. In the
    sweep's own process (basic launcher) the interrupt goes on up to run.py; a pool worker
    (joblib) would take the next cell, so it exits. In a process of its own (submitit), the
    launcher decides, and this returns."""
    if _state["installed"]:
        raise KeyboardInterrupt
    if multiprocessing.current_process().name != "MainProcess":
        logging.shutdown()  # flush run.log
        os._exit(record.EXIT_CODES[record.INTERRUPTED])


# how often a pool worker looks whether the sweep's process is still its parent
PARENT_POLL_S = 1.0


def end_with_the_sweep() -> None:
    """In a pool worker (joblib's loky): when the sweep's process dies without passing a signal
    on (``kill -9``, the OOM killer), the worker would go on training its cell, holding the run
    directory's lock; instead it sends itself SIGTERM, and the cell ends ``interrupted``, to be
    resumed by the next run of the sweep. Once per worker; nothing outside a pool worker."""
    if multiprocessing.parent_process() is None or _state.get("watching"):
        return
    _state["watching"] = True
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="normbench-parent-watch", daemon=True).start()


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """While a run trains: SIGTERM (a scheduler stopping the job) ends it like Ctrl-C, with a
    KeyboardInterrupt the runner records as ``interrupted``. After the first signal both are
    ignored, so that a second one (Ctrl-C reaches a joblib worker from the terminal and again
    from the sweep's process) cannot kill the process while it records; it ends soon after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal fired
        if fired:
            return  # a second signal, maybe already pending when the first one ran
        fired = True
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if not fired:
            for sig, old in previous.items():
                signal.signal(sig, old)
