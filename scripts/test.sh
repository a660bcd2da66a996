#!/usr/bin/env bash
# Set up (if needed) and run the test suite on pytest-xdist workers, one per core and one more
# for the whole suite (NORMBENCH_TEST_WORKERS overrides: 0 runs in this process, e.g. for a
# debugger).
# Extra arguments go to pytest, e.g. -m "not slow" for the fast tier. Without -m it runs the
# suite without the science tier (tests marked science: the defaults and every norm train until
# they learn, minutes each); -m science runs that tier (a later -m replaces the first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Compiled modules and pytest's rewritten test modules cached under .venv (the environment may
# say PYTHONDONTWRITEBYTECODE): seconds saved per worker and per process a test starts.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="$PWD/.venv/pycache"
# Workers: the suite's tests wait on the processes they start (fresh interpreters, SLURM's
# scheduler, signals), so one worker more than the cores keeps them busy (2 cores: 7:46 against
# 8:13 with one per core); a tier chosen with -m is CPU-bound (the fast tier: 57.6 s with one per
# core, 62.8 s with one more) and keeps one per core.
if [ -z "${NORMBENCH_TEST_WORKERS:-}" ]; then
  cores=$(nproc)
  case " $* " in
    *" -m "*) NORMBENCH_TEST_WORKERS=$cores ;;
    *) NORMBENCH_TEST_WORKERS=$((cores + 1)) ;;
  esac
fi
# --dist loadgroup: the tests marked slurm share one local cluster, so they run on one worker
exec .venv/bin/python -m pytest -n "$NORMBENCH_TEST_WORKERS" --dist loadgroup -m "not science" "$@"
