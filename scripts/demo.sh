#!/usr/bin/env bash
# The main job on the embedded default: set up, then curate the starter corpus into data/starter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/storyteller curate corpora/starter --config configs/curate/starter.yaml --out data/starter
echo "demo: curated dataset in data/starter (see data/starter/report.md)"
