#!/usr/bin/env bash
# The main job on the embedded default: set up, curate the starter corpus into data/starter,
# fine-tune SmolLM2-135M on it (configs/finetune/quickstart.yaml) into runs/quickstart,
# evaluate the tuned model against its base (configs/evaluate/quickstart.yaml) into
# runs/quickstart/evaluation, merge it into models/quickstart (verified), serve it at
# http://127.0.0.1:8000/v1 and open the writing studio at http://127.0.0.1:8501 on it, both
# until Ctrl+C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/storyteller curate corpora/starter --config configs/curate/starter.yaml --out data/starter
# A finished quickstart is kept; an interrupted one resumes from its last checkpoint.
.venv/bin/storyteller finetune --config configs/finetune/quickstart.yaml --data data/starter \
  --out runs/quickstart --resume
# Saved stories are reused: an interrupted evaluation continues where it stopped.
.venv/bin/storyteller evaluate --config configs/evaluate/quickstart.yaml
# Merge again only when the run's adapter is newer than the verified model.
if [ ! -f models/quickstart/verification.json ] || \
   [ runs/quickstart/final/adapter_model.safetensors -nt models/quickstart/verification.json ]; then
  .venv/bin/storyteller merge --run runs/quickstart --out models/quickstart --force
fi
echo "demo: curated dataset in data/starter (see data/starter/report.md)"
echo "demo: fine-tuned model in runs/quickstart/final (see runs/quickstart/summary.json and plots/)"
echo "demo: evaluation report in runs/quickstart/evaluation/report.html (and report.md)"
echo "demo: merged, verified model in models/quickstart (see verification.json)"
echo "demo: starting the endpoint (http://127.0.0.1:8000/v1) and the studio"
.venv/bin/storyteller serve --model models/quickstart &
SERVER=$!
STUDIO=
# Everything this script started stops with it: on Ctrl+C, on a TERM sent to the script alone,
# and on any exit.
trap 'kill $STUDIO $SERVER 2>/dev/null; wait $STUDIO $SERVER 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 600); do
  .venv/bin/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=2)" \
    >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { echo "demo: the endpoint did not start" >&2; exit 1; }
  sleep 1
done
echo "demo: writing studio at http://127.0.0.1:8501 (the endpoint serves models/quickstart);"
echo "      from a terminal: .venv/bin/storyteller write \"A fox guards a lighthouse\" --genre fable"
# In the background and waited for: bash runs a trap only once its foreground command ends,
# so a TERM to this script alone would otherwise leave the endpoint and studio running.
.venv/bin/storyteller app --endpoint http://127.0.0.1:8000 --model quickstart &
STUDIO=$!
wait $STUDIO
