"""A Python process that has imported what ``run.py`` imports (torch, Hydra, normbench) and
forks a child per command, so that a test's ``python run.py ...`` starts in milliseconds
instead of the ~3 s an interpreter spends importing torch. The slow tier starts hundreds.

The child is what ``python ARGV`` would be: its own process (pid, exit code, signals), the
caller's working directory, environment, stdout and stderr (passed as file descriptors), and
``sys.argv`` and ``sys.path[0]`` as the interpreter sets them for a script, ``-c`` or ``-m``.
Of the environment variables an interpreter reads at start-up it applies PYTHONPATH (the only
one the tests set). What it cannot be is a fresh interpreter: the preloaded modules are already
imported. Tests
of start-up itself (tests/test_startup.py), and tests that signal or kill a process they
started, start real interpreters (:func:`conftest.start`, ``sys.executable``).

Protocol, one command per connection on a Unix socket: the caller sends a JSON request
(argv, cwd, env) with its stdout and stderr descriptors attached, then ends its writing; the
server forks, waits for the child, and answers with its exit status (negative: killed by that
signal), as ``subprocess`` reports it. One server per test process, one command at a time.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import signal
import socket
import sys
import traceback

# what run.py's start-up imports; nothing that discovers Hydra plugins (that needs sys.path)
PRELOAD = ("torch", "numpy", "omegaconf", "hydra", "hydra.core.utils", "torch.utils.tensorboard")
PRELOAD += ("normbench.task", "normbench.run.runner", "normbench.sweep.launchers")
# and what a run or a sweep imports later: torch.optim's constructor imports torch._dynamo
# (~1.5 s), and a sweep's end imports the report (pandas, scipy, matplotlib: ~2 s)
PRELOAD += ("torch._dynamo", "normbench.report.build")


def serve(path: str) -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    server.settimeout(1.0)
    parent = os.getppid()
    print("ready", flush=True)
    while os.getppid() == parent:  # the test process is gone: so is its server
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        with conn:
            message, fds, _, _ = socket.recv_fds(conn, 1 << 16, 2)
            while chunk := conn.recv(1 << 16):  # the rest, up to the caller's end of writing
                message += chunk
            request = json.loads(message)
            pid = os.fork()
            if pid == 0:
                server.close()
                conn.close()
                child(request, fds)
            for fd in fds:
                os.close(fd)
            _, status = os.waitpid(pid, 0)
            conn.sendall(str(os.waitstatus_to_exitcode(status)).encode())


def child(request: dict, fds: list[int]) -> None:
    """Become ``python *argv``; never returns."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        code = run(request["argv"], request["cwd"])
    except SystemExit as exit_:
        code = exit_code(exit_)
    except BaseException:  # noqa: BLE001 - as the interpreter does: the traceback, exit 1
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe must not change the exit code
                stream.flush()
        os._exit(code)


def run(argv: list[str], cwd: str) -> int:
    # what the interpreter reads from the environment at start-up: PYTHONPATH, after sys.path[0]
    sys.path[1:1] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if argv[0] == "-c":
        sys.argv, sys.path[0] = ["-c", *argv[2:]], ""
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    elif argv[0] == "-m":
        sys.argv, sys.path[0] = [argv[1], *argv[2:]], cwd
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        script = os.path.join(cwd, argv[0])
        sys.argv, sys.path[0] = [argv[0], *argv[1:]], os.path.dirname(script)
        runpy.run_path(script, run_name="__main__")
    return 0


def exit_code(exit_: SystemExit) -> int:
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    serve(sys.argv[1])
