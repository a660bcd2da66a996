#!/usr/bin/env bash
# Set up (if needed) and run the main job: a short sweep of norms x batch sizes on the
# synthetic image task with a ResNet-8, then print where its results are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python run.py -m name=main model=resnet norm=batch,group batch=4,32 epochs=2 "$@"
