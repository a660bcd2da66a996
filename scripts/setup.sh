#!/usr/bin/env bash
# Create .venv and install normbench into it; a no-op when nothing changed since last time.
#   NORMBENCH_TORCH        torch requirement (default torch==2.13.0)
#   NORMBENCH_TORCH_INDEX  index for torch, e.g. https://download.pytorch.org/whl/cu128 for a
#                          CUDA build, https://download.pytorch.org/whl/cpu for a CPU build
#   PYTHON                 interpreter for the venv (default python3, >= 3.10)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
torch_spec=${NORMBENCH_TORCH:-torch==2.13.0}
torch_index=${NORMBENCH_TORCH_INDEX:-}
stamp="$venv/.normbench-setup"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $torch_spec $torch_index"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  exit 0
fi
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build on a CPU machine
if [ -n "$torch_index" ]; then
  "${pip[@]}" "$torch_spec" --index-url "$torch_index"
else
  "${pip[@]}" "$torch_spec"
fi
"${pip[@]}" -e ".[dev]"
echo "$want" > "$stamp"
echo "normbench installed in $venv ($("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
