#!/usr/bin/env bash
# Set up (if needed) and run the main job: the small_batch preset (the GroupNorm paper's
# Figure 1 at CPU scale: BN, GN, LN, IN x batch 2..32 x 2 seeds on synthetic images; about
# 8-11 minutes on 2 cores, no download). It ends by printing where its report is. Re-running
# skips the runs already finished. Extra arguments go to run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python run.py -m experiment=small_batch "$@"
