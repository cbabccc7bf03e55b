#!/usr/bin/env bash
# Build llama.cpp's OpenAI-compatible server (llama-server), the CPU engine behind
# `storyteller serve`, into .venv/llama.cpp: the binary, and the converter that writes a model
# directory as GGUF. The source is llama.cpp as vendored in PyPI's llama-cpp-python source
# package (PyPI is reachable where model hubs and GitHub are not). Built for this machine's CPU
# (GGML_NATIVE), statically, so the directory can move with the venv.
# Re-running is cheap: it does nothing while the installed version matches LLAMA_CPP_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA_CPP_PYTHON=${LLAMA_CPP_PYTHON:-0.3.36}
HOME_DIR=.venv/llama.cpp
STAMP=$HOME_DIR/.version

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$LLAMA_CPP_PYTHON" ] && [ -x "$HOME_DIR/bin/llama-server" ]; then
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
echo "llama.cpp: building llama-server ($(nproc) cores; about 6 minutes on 2)"
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  > "$WORK/cmake.log" 2>&1 || { tail -30 "$WORK/cmake.log" >&2; exit 1; }
cmake --build "$WORK/build" --target llama-server -j "$(nproc)" > "$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; exit 1; }
rm -rf "$HOME_DIR"
mkdir -p "$HOME_DIR/bin"
cp "$WORK/build/bin/llama-server" "$HOME_DIR/bin/"
# The converter (HF directory -> GGUF) with the gguf library of the same version.
cp -r "$SRC/convert_hf_to_gguf.py" "$SRC/conversion" "$SRC/gguf-py" "$SRC/LICENSE" "$HOME_DIR/"
echo "$LLAMA_CPP_PYTHON" > "$STAMP"
echo "llama.cpp: llama-server installed in $HOME_DIR"
