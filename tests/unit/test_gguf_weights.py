"""The CPU engine's GGUF weights types (`cpu.weights`): one cached file per type beside the
float32 one, named by the model version it came from, never served stale; real conversions of
the tiny model with llama.cpp's converter and llama-quantize; clear errors when either fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from storyteller.errors import InputError
from storyteller.serve import llamacpp
from storyteller.serve.llamacpp import (WEIGHTS, conversion_of, ensure_gguf, gguf_path,
                                        prune_stale, remove_abandoned, source_note, weights_of)


def model_dir(root: Path, name: str = "model") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for file, text in {"config.json": "{}", "tokenizer.json": "{}",
                       "model.safetensors": "0"}.items():
        (folder / file).write_text(text)
    return folder


def tiny_copy(root: Path) -> Path:
    """The tiny random-weight model (real tokenizer, llama architecture) as a model directory
    of its own, so each test's GGUFs are its own."""
    from storyteller.models import TINY_MODEL, resolve_model

    out = root / "tiny"
    shutil.copytree(resolve_model(TINY_MODEL), out)
    return out


def tensor_types(gguf: Path) -> dict[str, str]:
    """Each tensor's number type as the GGUF file records it (read with llama.cpp's gguf-py)."""
    from gguf import GGUFReader

    return {t.name: t.tensor_type.name for t in GGUFReader(gguf).tensors}


# --- names and the cache -----------------------------------------------------------------------

def test_each_type_has_its_own_file_beside_the_float32_one(tmp_path):
    folder = model_dir(tmp_path)
    paths = {w: gguf_path(folder, tmp_path / "cache", w) for w in WEIGHTS}
    assert paths["f32"] == gguf_path(folder, tmp_path / "cache")  # float32 stays the default
    assert len(set(paths.values())) == len(WEIGHTS)
    assert {p.parent for p in paths.values()} == {tmp_path / "cache" / "gguf"}
    for weights, path in paths.items():
        assert path.name.endswith(f".{weights}.gguf") and weights_of(path) == weights
    # Every type of one model version shares the version's name; a re-merge changes all.
    assert len({conversion_of(p) for p in paths.values()}) == 1
    (folder / "model.safetensors").write_text("01")
    assert conversion_of(gguf_path(folder, tmp_path / "cache", "q8_0")) != \
        conversion_of(paths["q8_0"])


def test_an_unknown_type_is_refused_naming_the_key_and_the_choices(tmp_path):
    with pytest.raises(InputError) as caught:
        gguf_path(model_dir(tmp_path), tmp_path / "cache", "q5_k")
    message = str(caught.value)
    assert "cpu.weights" in message and "q5_k" in message and "q4_k_m" in message


def test_other_types_of_the_served_version_stay_and_older_versions_go(tmp_path):
    cache = tmp_path / "cache" / "gguf"
    cache.mkdir(parents=True)
    source = tmp_path / "quickstart"
    source.mkdir()

    def cached(version: str, weights: str) -> Path:
        gguf = cache / f"quickstart-{version}.{weights}.gguf"
        gguf.write_bytes(b"GGUF")
        source_note(gguf).write_text(str(source))
        return gguf

    old = [cached("aaaa", w) for w in ("f32", "q8_0", "q4_k_m")]
    new_f32, new_q4 = cached("bbbb", "f32"), cached("bbbb", "q4_k_m")
    keep = cached("bbbb", "q8_0")
    assert sorted(prune_stale(cache, keep=keep, source=str(source))) == sorted(old)
    assert not any(p.exists() or source_note(p).exists() for p in old)
    assert keep.exists() and new_f32.exists() and new_q4.exists()


def test_a_killed_conversions_file_is_removed_and_a_running_ones_kept(tmp_path):
    target = tmp_path / "gguf" / "quickstart-bbbb.q8_0.gguf"
    target.parent.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead = target.with_name(f"{target.name}.{finished.stdout.strip()}.partial")
    live = target.with_name(f"{target.name}.{os.getpid()}.partial")
    other = target.with_name("quickstart-bbbb.f32.gguf.1.partial")  # another file's
    for path in (dead, live, other):
        path.write_bytes(b"GG")
    assert remove_abandoned(target) == [dead]
    assert live.exists() and other.exists() and not dead.exists()


# --- real conversions -----------------------------------------------------------------------

def test_q8_0_comes_straight_from_the_converter(tmp_path):
    tiny = tiny_copy(tmp_path)
    target = gguf_path(tiny, tmp_path / "cache", "q8_0")
    assert ensure_gguf(tiny, target) == target
    types = tensor_types(target)
    # The matmul weights are 8-bit blocks; norms stay float32 (the converter's rule).
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["blk.0.ffn_down.weight"] == "Q8_0"
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert source_note(target).read_text() == str(tiny.resolve())
    # No float32 file was needed for it, and nothing temporary is left.
    assert not gguf_path(tiny, tmp_path / "cache", "f32").exists()
    assert [p.name for p in target.parent.glob("*.partial")] == []


def test_q4_k_m_is_quantised_from_the_float32_gguf_which_stays(tmp_path):
    tiny = tiny_copy(tmp_path)
    target = gguf_path(tiny, tmp_path / "cache", "q4_k_m")
    ensure_gguf(tiny, target)
    f32 = gguf_path(tiny, tmp_path / "cache", "f32")
    assert f32.is_file() and source_note(f32).exists()
    assert set(tensor_types(f32).values()) == {"F32"}
    types = tensor_types(target)
    # The tiny model's rows (64 and 128 wide) are not multiples of 256, K-quant's block:
    # llama-quantize gives those a block-32 type instead; none stays float32 but the norms.
    quantised = {name: kind for name, kind in types.items() if not name.endswith("norm.weight")}
    assert "F32" not in quantised.values(), quantised
    # Under half the size (the tied embedding, most of this tiny model, stays 6-8-bit).
    assert target.stat().st_size < f32.stat().st_size / 2
    # Cached: asked again, nothing is converted (the file is not rewritten).
    stamp = target.stat().st_mtime_ns
    assert ensure_gguf(tiny, target) == target and target.stat().st_mtime_ns == stamp


def test_a_remerged_model_is_converted_again_and_its_old_files_pruned(tmp_path):
    tiny = tiny_copy(tmp_path)
    first = ensure_gguf(tiny, gguf_path(tiny, tmp_path / "cache", "q8_0"))
    config = tiny / "config.json"
    config.write_text(config.read_text())  # same bytes, new mtime: another version
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    second = ensure_gguf(tiny, gguf_path(tiny, tmp_path / "cache", "q8_0"))
    assert second != first and second.is_file()
    assert not first.exists() and not source_note(first).exists()


# --- failures ----------------------------------------------------------------------------

def test_a_failed_conversion_names_the_model_the_type_and_what_to_do(tmp_path):
    broken = tiny_copy(tmp_path)
    (broken / "config.json").write_text('{"architectures": ["NoSuchForCausalLM"]}')
    target = gguf_path(broken, tmp_path / "cache", "q8_0")
    with pytest.raises(InputError) as caught:
        ensure_gguf(broken, target)
    message = str(caught.value)
    assert str(broken) in message and "q8_0 GGUF" in message
    assert "NoSuchForCausalLM" in message  # the converter's own words
    assert "cpu.weights=f32" in message
    assert not target.exists() and not list(target.parent.glob("*.partial"))


def test_q4_k_m_without_llama_quantize_says_how_to_get_it(tmp_path, monkeypatch):
    home = tmp_path / "llama.cpp"
    home.mkdir()
    real = llamacpp.home()
    (home / "convert_hf_to_gguf.py").symlink_to(real / "convert_hf_to_gguf.py")
    monkeypatch.setenv("STORYTELLER_LLAMA_CPP", str(home))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert llamacpp.quantizer() is None
    tiny = tiny_copy(tmp_path)
    with pytest.raises(InputError) as caught:
        ensure_gguf(tiny, gguf_path(tiny, tmp_path / "cache", "q4_k_m"))
    message = str(caught.value)
    assert "cpu.weights q4_k_m" in message and "llama-quantize is not installed" in message
    assert "scripts/llama-cpp.sh" in message and "cpu.weights=q8_0" in message
