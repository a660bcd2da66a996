#!/usr/bin/env bash
# Set up (if needed) and run the main job: the small_batch preset, the GroupNorm paper's
# Figure 1 on its own terms at CPU scale (per-device batch 2-32 on 8 simulated devices, a task
# calibrated to photographs; experiments/small_batch.yaml has the design, its pilot and why).
# Into one results folder, results/small_batch:
#   1. the calibration: the task against six photographs (calibration.json, for the report)
#   2. BN and GN (group8) at per-device batch 2, 4, 8, 16, 32     (the preset's own grid)
#   3. LN and IN at per-device batch 32                            (the paper's ordering)
# Each sweep ends with a report of the whole folder; the last one sees every run. Two jobs at a
# time on 2 cores, no download; re-running skips the runs already finished. Extra arguments go
# to every run.py call (e.g. seed=0 for a quicker look).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=results/small_batch
mkdir -p "$out"
# the preset's task (conf/data/photolike.yaml) and model (ResNet-8, width 8, residual scales
# not zeroed) against the photographs
.venv/bin/python scripts/calibrate.py --no-spread --depth 8 --width 8 --no-zero-init-residual \
  --glyphs photolike --json "$out/calibration.json"
run=(.venv/bin/python run.py -m experiment=small_batch)
"${run[@]}" "$@"
exec "${run[@]}" norm=layer,instance batch=32 "$@"
