#!/usr/bin/env bash
# The main job on the embedded default: set up, curate the starter corpus into data/starter,
# fine-tune SmolLM2-135M on it (configs/finetune/quickstart.yaml) into runs/quickstart, then
# evaluate the tuned model against its base (configs/evaluate/quickstart.yaml) into
# runs/quickstart/evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/storyteller curate corpora/starter --config configs/curate/starter.yaml --out data/starter
# A finished quickstart is kept; an interrupted one resumes from its last checkpoint.
.venv/bin/storyteller finetune --config configs/finetune/quickstart.yaml --data data/starter \
  --out runs/quickstart --resume
# Saved stories are reused: an interrupted evaluation continues where it stopped.
.venv/bin/storyteller evaluate --config configs/evaluate/quickstart.yaml
echo "demo: curated dataset in data/starter (see data/starter/report.md)"
echo "demo: fine-tuned model in runs/quickstart/final (see runs/quickstart/summary.json and plots/)"
echo "demo: evaluation report in runs/quickstart/evaluation/report.html (and report.md)"
