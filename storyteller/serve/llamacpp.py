"""llama.cpp's `llama-server`, the CPU engine: where it is installed, how a model directory
becomes the GGUF file it loads, and its command line.

Why this engine on a CPU: it batches concurrent requests continuously while sampling each with
its own settings and seed, and one stream of the 135M model runs at 3x the speed of
`transformers serve` on the same two cores (docs/BENCHMARKS.md, serve). `scripts/llama-cpp.sh`
builds it into .venv/llama.cpp; without it the CPU engine is `transformers serve`.

The weights are served as `cpu.weights` says (WEIGHTS): float32, the merged model's own numbers,
or a smaller GGUF type converted once per type and cached beside the float32 file. The KV
cache is bf16 on CPUs that compute bf16 natively and float16 elsewhere (kv_cache_type): float32
made decoding slower on both CPUs measured, and neither half-precision type changed a greedy
story in bench/serve_fidelity.py."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from storyteller.errors import InputError

# Sampling is applied in the order transformers and vLLM apply it (temperature before the
# truncations), so a request means the same on every engine; llama.cpp's own default order
# truncates before it scales.
SAMPLER_ORDER = "penalties;temperature;top_k;top_p;min_p"
# The model's generation_config.json keys llama-server takes as defaults, with its flag and
# the neutral value used where the model states none (llama-server's own defaults, top-k 40
# and min-p 0.05, would quietly change every story).
SAMPLING_DEFAULTS = {"temperature": ("--temp", 1.0), "top_p": ("--top-p", 1.0),
                     "top_k": ("--top-k", 0), "min_p": ("--min-p", 0.0),
                     "repetition_penalty": ("--repeat-penalty", 1.0)}


def home() -> Path:
    """Where scripts/llama-cpp.sh installed llama.cpp: $STORYTELLER_LLAMA_CPP, else the venv's."""
    return Path(os.environ.get("STORYTELLER_LLAMA_CPP") or Path(sys.prefix) / "llama.cpp")


def _tool(name: str) -> Path | None:
    """A llama.cpp program: the one scripts/llama-cpp.sh installed, else one on PATH."""
    installed = home() / "bin" / name
    if installed.is_file() and os.access(installed, os.X_OK):
        return installed
    found = shutil.which(name)
    return Path(found) if found else None


def server_binary() -> Path | None:
    """The llama-server to run."""
    return _tool("llama-server")


def converter() -> Path | None:
    script = home() / "convert_hf_to_gguf.py"
    return script if script.is_file() else None


def available() -> bool:
    return server_binary() is not None and converter() is not None


# The GGUF number types `cpu.weights` may name: written by convert_hf_to_gguf.py `--outtype`
# straight from the model directory, or by llama-quantize from the float32 GGUF (its name for
# the type as the value). q8_0 and q4_k_m quantise the matmul weights in blocks of 32 and 256;
# llama-quantize gives rows that are not a multiple of 256 (the 135M model's 576 columns) a
# block-32 type instead.
CONVERTED = ("f32", "bf16", "f16", "q8_0")
QUANTIZED = {"q4_k_m": "Q4_K_M"}
WEIGHTS = (*CONVERTED, *QUANTIZED)


def quantizer() -> Path | None:
    """The llama-quantize that writes the q4_k_m GGUF."""
    return _tool("llama-quantize")


def gguf_path(model_dir: Path, cache: Path, weights: str = "f32") -> Path:
    """Where the GGUF of `model_dir` with `weights` (WEIGHTS) lives: in the cache, named by the
    directory and a digest of its weights, config and tokenizer (sizes and mtimes), so an
    edited or re-merged model is converted again and an unchanged one never is; the number
    type is the name's last part (weights_of)."""
    if weights not in WEIGHTS:
        raise InputError.at("cpu.weights", f"unknown GGUF weights {weights!r}",
                            f"choose one of {', '.join(WEIGHTS)}")
    digest = hashlib.sha256(str(model_dir.resolve()).encode())
    for path in sorted(model_dir.iterdir()):
        if path.suffix in (".safetensors", ".json", ".jinja") and path.is_file():
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return cache / "gguf" / f"{model_dir.name}-{digest.hexdigest()[:16]}.{weights}.gguf"


def weights_of(gguf: Path) -> str:
    """The number type in a name gguf_path wrote: `quickstart-<digest>.q8_0.gguf` -> q8_0."""
    return gguf.name.removesuffix(".gguf").rsplit(".", 1)[-1]


def conversion_of(gguf: Path) -> str:
    """The model version a cached GGUF is of (`quickstart-<digest>`), whatever its type."""
    return gguf.name.removesuffix(".gguf").rsplit(".", 1)[0]


def ensure_gguf(model_dir: Path, target: Path) -> Path:
    """Convert `model_dir` to the GGUF `target` (named by gguf_path, which gives its type)
    unless it is there: a converter type straight from the directory, a quantised one with
    llama-quantize from the float32 GGUF, itself converted first where missing and kept (a
    later switch of cpu.weights then costs no second conversion). Each file is written under
    a temporary name and renamed, so a killed conversion leaves no file that looks finished."""
    if target.is_file():
        return target
    weights = weights_of(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(target)
    # One temporary name per process: two servers starting on one model do not write into
    # each other's file (the second rename replaces an identical file).
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    if weights in QUANTIZED:
        tool = quantizer()
        if tool is None:
            raise InputError.at(f"cpu.weights {weights}", f"llama-quantize is not installed "
                                f"under {home() / 'bin'} nor on PATH", "re-run "
                                "scripts/llama-cpp.sh (it builds llama-quantize), or serve "
                                "with --set cpu.weights=q8_0")
        f32 = ensure_gguf(model_dir, target.with_name(f"{conversion_of(target)}.f32.gguf"))
        command = [str(tool), str(f32), str(partial), QUANTIZED[weights]]
    else:
        script = converter()
        if script is None:
            raise InputError.at("cpu.backend llama.cpp", f"the GGUF converter is not installed "
                                f"under {home()}", "run scripts/llama-cpp.sh, or serve with "
                                "--set cpu.backend=transformers")
        command = [sys.executable, str(script), str(model_dir), "--outtype", weights,
                   "--outfile", str(partial)]
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        tail = "\n  ".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        other = ("serve float32 weights with --set cpu.weights=f32" if weights != "f32"
                 else "serve it with --set cpu.backend=transformers")
        raise InputError.at(str(model_dir), f"llama.cpp could not convert it to a {weights} "
                            f"GGUF ({Path(command[0]).name} exited with {result.returncode}):"
                            f"\n  {tail}", other)
    partial.replace(target)
    source = str(model_dir.resolve())
    source_note(target).write_text(source)
    prune_stale(target.parent, keep=target, source=source)
    return target


def remove_abandoned(target: Path) -> list[Path]:
    """Delete temporary files of `target` whose writer is no longer running (a conversion
    killed midway leaves up to 540 MB); a live writer's file stays."""
    removed = []
    for partial in target.parent.glob(f"{target.name}.*.partial"):
        pid = partial.name[len(target.name) + 1:-len(".partial")]
        if pid.isdigit() and not process_alive(int(pid)):
            partial.unlink(missing_ok=True)
            removed.append(partial)
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def source_note(gguf: Path) -> Path:
    """The file next to a cached GGUF that names the model directory it came from."""
    return gguf.with_name(gguf.name + ".source")


def prune_stale(folder: Path, keep: Path, source: str) -> list[Path]:
    """Remove cached GGUFs no request can reach again: those of a directory that is gone, and
    conversions of an older version of `source`, the directory `keep` came from (a re-merged
    model is converted anew, and each float32 conversion of the 135M model is 540 MB). Other
    types of the same version as `keep` stay: a switch of cpu.weights reaches them. GGUFs
    without a note are left alone. Returns what was removed."""
    removed = []
    for note in folder.glob("*.gguf.source"):
        gguf = note.with_name(note.name[:-len(".source")])
        if gguf == keep:
            continue
        came_from = note.read_text()
        older = came_from == source and conversion_of(gguf) != conversion_of(keep)
        if older or not Path(came_from).is_dir():
            gguf.unlink(missing_ok=True)
            note.unlink(missing_ok=True)
            removed.append(gguf)
    return removed


def sampling_flags(generation: dict) -> list[str]:
    """Server-wide sampling defaults: the model's own where generation_config.json states them
    (and samples), else neutral; every request may override them."""
    stated = generation.get("do_sample", False)
    flags = ["--samplers", SAMPLER_ORDER]
    for key, (flag, neutral) in SAMPLING_DEFAULTS.items():
        value = generation.get(key) if stated or key == "repetition_penalty" else None
        flags += [flag, str(neutral if value is None else value)]
    return flags


def context_tokens(max_len: int, parallel: int, requested: int) -> int:
    """The KV cache: as asked, else the model's limit for every slot (1.5 GB for 8 slots of
    the 135M model's 8,192 tokens at float16)."""
    return requested or max_len * parallel


def kv_cache_type(requested: str, native_bf16: bool) -> str:
    """The KV cache's number type for `cpu.kv_cache`. auto: bf16 where the CPU has native bf16
    (AVX512-BF16 or AMX), where llama.cpp's attention over a bf16 cache is the fastest (8
    streams ~15% faster than float16 on a Xeon with AMX, docs/BENCHMARKS.md); float16, llama.cpp's
    default, elsewhere, since emulated bf16 would be slower."""
    if requested != "auto":
        return requested
    return "bf16" if native_bf16 else "f16"


def llamacpp_command(binary: Path, gguf: Path, template: Path, served_name: str, port: int,
                     engine_key: str, parallel: int, threads: int,
                     context: int, generation: dict, kv_cache: str = "f16") -> list[str]:
    """`llama-server` on loopback: the model's own chat template (rendered with Jinja, as in
    training), `parallel` slots decoded together (continuous batching), each with its own
    part of the KV cache: a shared one makes every request attend over all requests' tokens,
    which cost a fifth of the 8-stream throughput here; keys and values stored as `kv_cache`
    (kv_cache_type). Worker threads sleep between steps instead of polling (the same
    throughput here, and an idle server holds no core); sampling follows SAMPLER_ORDER with
    SAMPLING_DEFAULTS."""
    return [str(binary), "--model", str(gguf), "--alias", served_name,
            "--host", "127.0.0.1", "--port", str(port), "--api-key", engine_key,
            "--jinja", "--chat-template-file", str(template),
            "--threads", str(threads or os.cpu_count() or 1), "--poll", "0",
            "--parallel", str(parallel), "--cont-batching",
            "--no-kv-unified", "--ctx-size", str(context),
            "--cache-type-k", kv_cache, "--cache-type-v", kv_cache,
            "--cache-ram", "1024", "--no-webui",
            # Weights stay in GGUF's own layout: the CPU backend's repacked and AMX layouts
            # (its "extra buffer types") crash this build while loading q8_0 and q4_k_m weights
            # on a Xeon with AMX (SIGSEGV), and do nothing for float weights.
            "--no-repack",
            *sampling_flags(generation)]
