#!/usr/bin/env bash
# Set up (if needed) and run the test suite, one pytest-xdist worker per core
# (NORMBENCH_TEST_WORKERS overrides: 0 runs in this process, e.g. for a debugger).
# Extra arguments go to pytest, e.g. -m "not slow" for the fast tier. Without -m it runs the
# suite without the science tier (tests marked science: the defaults and every norm train until
# they learn, minutes each); -m science runs that tier (a later -m replaces the first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Compiled modules and pytest's rewritten test modules cached in __pycache__ beside them (the
# environment may say PYTHONDONTWRITEBYTECODE): seconds saved per worker and per process a test
# starts. Not PYTHONPYCACHEPREFIX: it hides the .pyc files pip wrote for torch, pandas and the
# rest, which then compile again (~15 s more for the first run in a fresh clone).
unset PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX
# --dist loadgroup: the tests marked slurm share one local cluster, so they run on one worker
exec .venv/bin/python -m pytest -n "${NORMBENCH_TEST_WORKERS:-auto}" --dist loadgroup -m "not science" "$@"
