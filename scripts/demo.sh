#!/usr/bin/env bash
# The main job on the embedded default, in the order that gets a writer writing soonest:
#   1. set up (without llama.cpp for now), curate the starter corpus into data/starter;
#   2. serve the *base* model (SmolLM2-135M-Instruct) at http://127.0.0.1:8000/v1 and open the
#      writing studio on it at http://127.0.0.1:8501 — a first story within minutes;
#   3. meanwhile fine-tune it on the starter corpus (configs/finetune/quickstart.yaml) into
#      runs/quickstart, at a lower CPU priority so writing stays quick; the studio's Train page
#      shows its loss curve and sample stories as it goes;
#   4. merge it into models/quickstart (verified) and have the running endpoint serve it as
#      `quickstart`, listed first (the base stays, to compare);
#   5. build llama.cpp's server (minutes of CPU, so after the fine-tune) and move both models
#      onto it, about twice as fast as the transformers serve they started on, without a restart;
#   6. evaluate the tuned model against its base into runs/quickstart/evaluation.
# The endpoint and the studio then run until Ctrl+C. Each milestone is printed with the time
# since the start. A finished step is kept on a re-run; an interrupted one resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
ENDPOINT=http://127.0.0.1:8000
STUDIO_PORT=8501
BASE=smollm2-135m
milestone() { printf 'demo [%d:%02d] %s\n' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)) "$*"; }

STORYTELLER_NO_LLAMA_CPP=1 bash scripts/setup.sh
milestone "set-up done"
.venv/bin/storyteller curate corpora/starter --config configs/curate/starter.yaml --out data/starter
milestone "curated data/starter (see data/starter/report.md)"

SERVER= STUDIO=
# Everything this script started stops with it: on Ctrl+C, on a TERM sent to the script alone,
# and on any exit. (The engines behind the endpoint die with it however it dies.)
trap 'kill $STUDIO $SERVER 2>/dev/null; wait $STUDIO $SERVER 2>/dev/null' EXIT INT TERM
# One engine thread: training and evaluation run beside it, and an engine whose threads wait for
# each other at every step crawls when another process holds a core (measured: 1.5 tokens/s
# with two threads against 21 with one, while the evaluation ran).
.venv/bin/storyteller serve --model "$BASE" --set cpu.threads=1 &
SERVER=$!
for _ in $(seq 1 600); do
  .venv/bin/python -c "import urllib.request as u; u.urlopen('$ENDPOINT/health', timeout=2)" \
    >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { echo "demo: the endpoint did not start" >&2; exit 1; }
  sleep 1
done
.venv/bin/storyteller app --endpoint "$ENDPOINT" --port $STUDIO_PORT &
STUDIO=$!
for _ in $(seq 1 120); do
  .venv/bin/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$STUDIO_PORT/_stcore/health', timeout=2)" \
    >/dev/null 2>&1 && break
  sleep 1
done
milestone "studio writing with the base model at http://127.0.0.1:$STUDIO_PORT (endpoint $ENDPOINT/v1)"
echo "      from a terminal: .venv/bin/storyteller write \"A fox guards a lighthouse\" --genre fable"

# Training yields the CPU to the endpoint while a writer writes.
nice -n 10 .venv/bin/storyteller finetune --config configs/finetune/quickstart.yaml \
  --data data/starter --out runs/quickstart --resume
milestone "fine-tuned runs/quickstart (see runs/quickstart/summary.json and plots/)"
# Merge again only when the run's adapter is newer than the verified model.
if [ ! -f models/quickstart/verification.json ] || \
   [ runs/quickstart/final/adapter_model.safetensors -nt models/quickstart/verification.json ]; then
  nice -n 10 .venv/bin/storyteller merge --run runs/quickstart --out models/quickstart --force
fi
.venv/bin/storyteller models use models/quickstart --name quickstart --default --endpoint "$ENDPOINT"
milestone "tuned model offered: the studio's model picker has quickstart (and $BASE to compare)"

if ! bash scripts/llama-cpp.sh --check; then
  if nice -n 10 bash scripts/llama-cpp.sh; then
    # Loading a served name again moves it to the engine installed now; requests running on
    # the old one finish first.
    .venv/bin/storyteller models use "$BASE" --endpoint "$ENDPOINT"
    .venv/bin/storyteller models use models/quickstart --name quickstart --default --endpoint "$ENDPOINT"
    milestone "both models now served by llama.cpp"
  else
    echo "demo: llama.cpp did not build (see above); the models stay on transformers serve" >&2
  fi
fi

# Saved stories are reused: an interrupted evaluation continues where it stopped.
nice -n 10 .venv/bin/storyteller evaluate --config configs/evaluate/quickstart.yaml
milestone "evaluation report in runs/quickstart/evaluation/report.html (and report.md)"
echo "demo: the endpoint and the studio run until Ctrl+C"
# Waited for in the background: bash runs a trap only once its foreground command ends, so a
# TERM to this script alone would otherwise leave the endpoint and studio running.
wait $STUDIO
