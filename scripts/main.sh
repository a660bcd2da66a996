#!/usr/bin/env bash
# Set up (if needed) and run the main job: the small_batch preset (the GroupNorm paper's
# Figure 1 at CPU scale on the glyphs task, 5 seeds; see experiments/small_batch.yaml for the
# design and its pilot). Three sweeps into one results folder, results/small_batch:
#   1. BN and GN (group8) at batch 2 and 32           (the preset's own grid, 20 runs)
#   2. LN and IN at batch 32                           (the batch-32 ordering, 10 runs)
#   3. ghost BN at batch 32, ghost size 2              (noisy statistics or small steps? 5 runs)
# Each sweep ends with a report of the whole folder; the last one sees all 35 runs. About 10
# minutes of two jobs at a time on 2 cores (9 min 47 s and 11 min 46 s measured on two days,
# set-up included), no download. Re-running skips the runs already finished. Extra arguments
# go to every run.py call.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
run=(.venv/bin/python run.py -m experiment=small_batch)
"${run[@]}" "$@"
"${run[@]}" norm=layer,instance batch=32 "$@"
exec "${run[@]}" norm=ghost2 batch=32 "$@"
