#!/usr/bin/env bash
# Set up (if needed) and run the test suite, one pytest-xdist worker per core
# (NORMBENCH_TEST_WORKERS overrides: 0 runs in this process, e.g. for a debugger).
# Extra arguments go to pytest, e.g. -m "not slow" for the fast tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# --dist loadgroup: the tests marked slurm share one local cluster, so they run on one worker
exec .venv/bin/python -m pytest -n "${NORMBENCH_TEST_WORKERS:-auto}" --dist loadgroup "$@"
