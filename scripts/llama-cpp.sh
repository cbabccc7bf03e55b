#!/usr/bin/env bash
# Build llama.cpp's OpenAI-compatible server (llama-server), the CPU engine behind
# `storyteller serve`, into .venv/llama.cpp: the binary, llama-quantize (which writes the
# q4_k_m GGUF of `cpu.weights`), and the converter that writes a model directory as GGUF. The source is llama.cpp as vendored in PyPI's llama-cpp-python source
# package (PyPI is reachable where model hubs and GitHub are not). Built for this machine's CPU
# (GGML_NATIVE), statically, so the directory can move with the venv.
# Re-running is cheap: it does nothing while the installed version and tools match the stamp
# (the version and the tools it names; an install with fewer tools is rebuilt once).
# `--check` only says, by its exit status, whether the install is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA_CPP_PYTHON=${LLAMA_CPP_PYTHON:-0.3.36}
HOME_DIR=.venv/llama.cpp
STAMP=$HOME_DIR/.version
TOOLS="llama-server llama-quantize"
WANTED="$LLAMA_CPP_PYTHON $TOOLS"

installed() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANTED" ] || return 1
  for tool in $TOOLS; do [ -x "$HOME_DIR/bin/$tool" ] || return 1; done
}
if [ "${1:-}" = --check ]; then
  installed
  exit
fi
if installed; then
  exit 0
fi
for tool in cmake c++ make; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "llama.cpp: $tool is missing, so llama-server cannot be built; storyteller serve will" \
         "use transformers serve on the CPU (slower). Install cmake and a C++ compiler, then" \
         "re-run scripts/setup.sh." >&2
    exit 1; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "llama.cpp: fetching the source of llama-cpp-python $LLAMA_CPP_PYTHON from PyPI"
.venv/bin/pip download -q --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$WORK"
tar -xzf "$WORK"/llama_cpp_python-*.tar.gz -C "$WORK"
SRC=$(echo "$WORK"/llama_cpp_python-*/vendor/llama.cpp)
echo "llama.cpp: building $TOOLS ($(nproc) cores; about 7 minutes on 2)"
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  > "$WORK/cmake.log" 2>&1 || { tail -30 "$WORK/cmake.log" >&2; exit 1; }
# shellcheck disable=SC2086  # one target per tool
cmake --build "$WORK/build" --target $TOOLS -j "$(nproc)" > "$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; exit 1; }
rm -rf "$HOME_DIR"
mkdir -p "$HOME_DIR/bin"
for tool in $TOOLS; do cp "$WORK/build/bin/$tool" "$HOME_DIR/bin/"; done
# The converter (HF directory -> GGUF) with the gguf library of the same version.
cp -r "$SRC/convert_hf_to_gguf.py" "$SRC/conversion" "$SRC/gguf-py" "$SRC/LICENSE" "$HOME_DIR/"
echo "$WANTED" > "$STAMP"
echo "llama.cpp: $TOOLS installed in $HOME_DIR"
