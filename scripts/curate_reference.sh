#!/usr/bin/env bash
# Copy a preset's report into results/reference/<preset>/ for committing: report.md,
# the self-contained report.html and the PNG figures. SVGs stay behind (they double the size)
# and report.md's links to them are dropped; no number is touched.
#   bash scripts/curate_reference.sh results/small_batch [small_batch]
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:?usage: curate_reference.sh RESULTS_DIR [NAME]}
name=${2:-$(basename "$src")}
dst=results/reference/$name
mkdir -p "$dst"  # NOTES.md (the narrative) stays; the report and figures are replaced
rm -rf "$dst/figures" "$dst/report.md" "$dst/report.html" && mkdir -p "$dst/figures"
cp "$src/report.html" "$dst/"
cp "$src"/figures/*.png "$dst/figures/"
sed -E 's/ ?\(\[SVG\]\(figures\/[^)]*\.svg\)\)//g' "$src/report.md" > "$dst/report.md"
du -sh "$dst"
