"""Serving without an engine: the preflight checks on real files, the vLLM, llama.cpp and
transformers serve command lines, request validation and translation, and the sampling body
the client sends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyteller.config import load_config
from storyteller.serve.config import ServeConfig
from storyteller.serve.engines import transformers_command, vllm_command
from storyteller.serve.gateway import ApiError, ServedModel, engine_body, validate
from storyteller.serve.llamacpp import (context_tokens, gguf_path, kv_cache_type,
                                        llamacpp_command, prune_stale, sampling_flags,
                                        source_note)
from storyteller.serve.preflight import (Adapter, check_adapter, check_model, lora_rank_limit,
                                         parse_adapter)
from tests.conftest import ROOT

TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"


def model_dir(tmp_path: Path, *, template=True, eos=(2,), metadata=True, weights=True) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    if weights:
        (folder / "model.safetensors").write_bytes(b"0")
    if template:
        (folder / "chat_template.jinja").write_text(TEMPLATE)
    (folder / "tokenizer.json").write_text(json.dumps({
        "added_tokens": [{"id": 0, "content": "<|endoftext|>"}, {"id": 1, "content": "<|im_start|>"},
                         {"id": 2, "content": "<|im_end|>"}],
        "model": {"vocab": {"a": 3, "b": 4}}}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    if eos is not None:
        (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": list(eos)}))
    if metadata:
        (folder / "storyteller.json").write_text(json.dumps(
            {"control_schema": {"genre": {}}, "header_fields": ["genre"]}))
    return folder


def adapter_dir(tmp_path: Path, name="fables", **config) -> Adapter:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 16, "target_modules": ["q_proj", "v_proj"], **config}))
    return Adapter(name, folder)


def test_a_merged_model_directory_passes(tmp_path):
    assert check_model(model_dir(tmp_path)) == []


@pytest.mark.parametrize("kwargs, where, words", [
    ({"template": False}, "chat_template.jinja", "no chat template"),
    ({"eos": None}, "generation_config.json", "no eos_token_id"),
    ({"eos": (0,)}, "generation_config.json", "lacks stop id(s) [2]"),
    ({"metadata": False}, "storyteller.json", "missing"),
    ({"weights": False}, "model", "no weights"),
])
def test_each_missing_piece_is_named_with_what_to_do(tmp_path, kwargs, where, words):
    problems = check_model(model_dir(tmp_path, **kwargs))
    assert len(problems) == 1
    assert where in problems[0].where and words in problems[0].message
    assert "storyteller merge" in problems[0].hint


def test_an_adapter_directory_is_not_a_model(tmp_path):
    adapter = adapter_dir(tmp_path)
    [problem] = check_model(adapter.path)
    assert "is an adapter" in problem.message and "merge" in problem.hint


def test_a_plain_lora_adapter_passes(tmp_path):
    base = model_dir(tmp_path)
    assert check_adapter(adapter_dir(tmp_path), base) == []


@pytest.mark.parametrize("config, words", [
    ({"r": 1024}, "above the engine's maximum LoRA rank 512"),
    ({"modules_to_save": ["lm_head"]}, "trains the embedding or output layer (lm_head)"),
    ({"target_modules": ["q_proj", "embed_tokens"]}, "(embed_tokens)"),
    ({"trainable_token_indices": [5]}, "trainable_token_indices"),
    ({"use_dora": True}, "DoRA"),
])
def test_adapters_an_engine_cannot_serve_are_refused(tmp_path, config, words):
    problems = check_adapter(adapter_dir(tmp_path, **config), model_dir(tmp_path))
    assert any(words in p.message for p in problems), problems


def test_an_adapter_that_adds_tokens_is_refused(tmp_path):
    base = model_dir(tmp_path)
    adapter = adapter_dir(tmp_path)
    tokens = json.loads((base / "tokenizer.json").read_text())
    tokens["added_tokens"].append({"id": 5, "content": "<|genre|>"})
    (adapter.path / "tokenizer.json").write_text(json.dumps(tokens))
    [problem] = check_adapter(adapter, base)
    assert "adds 1 token(s)" in problem.message and "<|genre|>" in problem.message


def test_lora_ranks_round_up_to_what_vllm_accepts():
    assert [lora_rank_limit(r) for r in (1, 4, 16, 17, 300, 512, 513)] == \
        [1, 8, 16, 32, 320, 512, None]


def test_adapter_specs_name_runs_by_their_folder(tmp_path):
    run = tmp_path / "runs" / "noir"
    (run / "final").mkdir(parents=True)
    assert parse_adapter(str(run)) == Adapter("noir", run / "final")
    assert parse_adapter(f"dark={run}") == Adapter("dark", run / "final")


def test_vllm_command_line(tmp_path):
    cfg = load_config(ServeConfig, ROOT / "configs/serve/default.yaml", ["max_model_len=4096"])
    folder = model_dir(tmp_path)
    adapters = [Adapter("fables", tmp_path / "a"), Adapter("noir", tmp_path / "b")]
    command = vllm_command(cfg, folder, "quickstart", adapters, [16, 24], 9123, "secret", gpus=2)
    joined = " ".join(command)
    assert command[:5] == [command[0], "-m", "vllm.entrypoints.cli.main", "serve", str(folder)]
    for flag in ("--served-model-name quickstart", "--host 127.0.0.1", "--port 9123",
                 "--max-model-len 4096", f"--chat-template {folder / 'chat_template.jinja'}",
                 "--api-key secret", "--enable-lora", "--max-loras 2", "--max-lora-rank 32",
                 f"--lora-modules fables={tmp_path / 'a'} noir={tmp_path / 'b'}",
                 "--tensor-parallel-size 2"):
        assert flag in joined, flag
    single = vllm_command(load_config(ServeConfig, None, []), folder, "q", [], [], 1, "k", gpus=1)
    assert "--enable-lora" not in single and "--tensor-parallel-size" not in single
    assert "2048" in single  # max model length from config.json when not set


def test_transformers_command_line(tmp_path):
    cfg = load_config(ServeConfig, None, [])
    command = transformers_command(cfg, tmp_path, 9000, "cpu")
    assert command[1:5] == ["-m", "transformers.cli.transformers", "serve", str(tmp_path)]
    assert command[command.index("--host") + 1] == "127.0.0.1"
    # Off by default: in that mode every request would get the first request's sampling.
    assert "--continuous-batching" not in command
    on = load_config(ServeConfig, None, ["cpu.continuous_batching=true"])
    command = transformers_command(on, tmp_path, 9000, "cpu")
    assert "--continuous-batching" in command
    # The KV cache takes a bounded share of RAM, not transformers' default 60% per server.
    assert command[command.index("--cb-max-memory-percent") + 1] == "0.1"


MODELS = {"tiny": ServedModel("tiny", "/models/tiny", 512, {},
                              {"eos_token_id": [0, 2], "pad_token_id": 2, "bos_token_id": 1})}


def test_validation_accepts_a_full_request_and_names_bad_parameters():
    body = {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10,
            "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
            "repetition_penalty": 1.1, "seed": 3, "stream": True, "stop": ["THE END"]}
    assert validate(body, "chat", MODELS)[1].name == "tiny"
    for change, param in ((("max_tokens", 513), "max_tokens"), (("top_p", 0), "top_p"),
                          (("seed", 1.5), "seed"), (("stream", "yes"), "stream"),
                          (("stop", ["a"] * 5), "stop"), (("top_k", True), "top_k")):
        with pytest.raises(ApiError) as error:
            validate({**body, change[0]: change[1]}, "chat", MODELS)
        assert error.value.status == 400 and error.value.param == param
    with pytest.raises(ApiError, match="prompt must be"):
        validate({"model": "tiny", "prompt": ""}, "completions", MODELS)


def test_transformers_engine_gets_sampling_as_a_generation_config_with_every_stop_id():
    body = {"model": "tiny", "messages": [], "max_tokens": 50, "temperature": 0.7, "top_p": 0.9,
            "top_k": 40, "repetition_penalty": 1.1, "seed": 3}
    out = engine_body(body, "chat", MODELS["tiny"], "transformers")
    config = json.loads(out.pop("generation_config"))
    assert out == {"model": "/models/tiny", "messages": [], "max_tokens": 50, "temperature": 0.7,
                   "top_p": 0.9, "seed": 3}
    assert config == {"eos_token_id": [0, 2], "pad_token_id": 2, "bos_token_id": 1,
                      "do_sample": True, "max_new_tokens": 50, "temperature": 0.7, "top_p": 0.9,
                      "top_k": 40, "repetition_penalty": 1.1}
    greedy = json.loads(engine_body({"model": "tiny", "messages": [], "temperature": 0}, "chat",
                                    MODELS["tiny"], "transformers")["generation_config"])
    assert greedy["do_sample"] is False and "top_k" not in greedy


def test_vllm_engine_gets_the_extras_as_they_are():
    body = {"model": "tiny", "prompt": "x", "top_k": 40, "min_p": 0.1, "repetition_penalty": 1.2}
    out = engine_body(body, "completions", MODELS["tiny"], "vllm")
    assert out == {**body, "model": "/models/tiny"}


def test_llamacpp_engine_gets_its_own_names_for_the_extras():
    body = {"model": "tiny", "messages": [], "max_completion_tokens": 30, "top_k": -1,
            "min_p": 0.1, "repetition_penalty": 1.2, "seed": -1, "n": 1}
    out = engine_body(body, "chat", MODELS["tiny"], "llama.cpp")
    assert out == {"model": "/models/tiny", "messages": [], "max_tokens": 30, "top_k": 0,
                   "min_p": 0.1, "repeat_penalty": 1.2, "seed": 0xFFFFFFFF - 1,
                   "cache_prompt": False}
    # All ones is llama.cpp's "pick a random seed": a stated seed never becomes it.
    assert engine_body({"model": "tiny", "prompt": "x", "seed": 0xFFFFFFFF}, "completions",
                       MODELS["tiny"], "llama.cpp")["seed"] == 0
    # Without a seed the prompt cache may serve the prompt.
    assert "cache_prompt" not in engine_body({"model": "tiny", "prompt": "x"}, "completions",
                                             MODELS["tiny"], "llama.cpp")


def test_llamacpp_command_line(tmp_path):
    command = llamacpp_command(Path("/opt/llama-server"), tmp_path / "m.gguf",
                               tmp_path / "chat_template.jinja", "quickstart", 9124, "secret",
                               parallel=8, threads=2,
                               context=context_tokens(8192, 8, 0), generation={},
                               kv_cache="bf16")
    joined = " ".join(command)
    for flag in (f"--model {tmp_path / 'm.gguf'}", "--alias quickstart", "--host 127.0.0.1",
                 "--port 9124", "--api-key secret",
                 f"--chat-template-file {tmp_path / 'chat_template.jinja'}", "--threads 2",
                 "--parallel 8", "--no-kv-unified --ctx-size 65536", "--poll 0",
                 "--cache-type-k bf16 --cache-type-v bf16",
                 # Quantised weights load only in GGUF's own layout on this llama.cpp.
                 "--no-repack",
                 # Transformers' order, and neutral defaults instead of top-k 40 / min-p 0.05.
                 "--samplers penalties;temperature;top_k;top_p;min_p", "--temp 1.0",
                 "--top-p 1.0", "--top-k 0", "--min-p 0.0", "--repeat-penalty 1.0"):
        assert flag in joined, flag
    stated = sampling_flags({"do_sample": True, "temperature": 0.7, "top_p": 0.9})
    assert "--temp 0.7" in " ".join(stated) and "--top-p 0.9" in " ".join(stated)
    # Without do_sample a model's temperature is not a default it samples with.
    assert "--temp 1.0" in " ".join(sampling_flags({"temperature": 0.7}))
    assert context_tokens(2048, 2, 0) == 4096 and context_tokens(2048, 8, 4096) == 4096


def test_the_kv_cache_is_bf16_only_where_the_cpu_computes_bf16():
    assert kv_cache_type("auto", native_bf16=True) == "bf16"
    assert kv_cache_type("auto", native_bf16=False) == "f16"
    # A stated type is kept either way.
    assert kv_cache_type("f32", native_bf16=True) == "f32"
    assert kv_cache_type("bf16", native_bf16=False) == "bf16"


def test_the_gguf_is_named_by_the_model_it_came_from(tmp_path):
    folder = model_dir(tmp_path)
    first = gguf_path(folder, tmp_path / "cache")
    assert first == gguf_path(folder, tmp_path / "cache")
    assert first.parent == tmp_path / "cache" / "gguf" and first.name.startswith("model-")
    (folder / "model.safetensors").write_bytes(b"01")  # re-merged: converted again
    assert gguf_path(folder, tmp_path / "cache") != first


def test_cached_ggufs_no_request_can_reach_are_removed(tmp_path):
    cache = tmp_path / "cache" / "gguf"
    cache.mkdir(parents=True)
    kept, other = tmp_path / "kept", tmp_path / "other"
    kept.mkdir()
    other.mkdir()

    def cached(name: str, source: Path | None) -> Path:
        gguf = cache / f"{name}.f32.gguf"
        gguf.write_bytes(b"GGUF")
        if source is not None:
            source_note(gguf).write_text(str(source))
        return gguf

    older = cached("kept-old", kept)               # an earlier conversion of the same directory
    gone = cached("gone-1", tmp_path / "deleted")  # its directory was removed
    alive = cached("other-1", other)               # another model, still there
    unnoted = cached("unnoted-1", None)            # written before notes existed
    current = cached("kept-new", kept)
    assert sorted(prune_stale(cache, keep=current, source=str(kept))) == sorted([older, gone])
    assert not older.exists() and not source_note(older).exists() and not gone.exists()
    assert current.exists() and alive.exists() and unnoted.exists()


def test_the_weights_type_chosen_is_the_gguf_served_and_converted(tmp_path, monkeypatch):
    from storyteller.serve import engines

    monkeypatch.setenv("STORYTELLER_CACHE", str(tmp_path / "cache"))
    folder = model_dir(tmp_path)
    for weights in ("f32", "q8_0", "q4_k_m"):
        cfg = load_config(ServeConfig, None, [f"cpu.weights={weights}"])
        launch = engines.plan_launch(cfg, "llama.cpp", folder, "model", [])
        served = Path(launch.command[launch.command.index("--model") + 1])
        assert served.name.endswith(f".{weights}.gguf") and launch.convert == (folder, served)
        assert served.parent == tmp_path / "cache" / "gguf"
    assert ServeConfig().cpu.weights == load_config(ServeConfig, ROOT / "configs/serve/"
                                                    "default.yaml").cpu.weights


def test_the_cpu_backend_is_llamacpp_where_installed_else_transformers(monkeypatch, tmp_path):
    from storyteller.errors import InputError
    from storyteller.serve import engines

    monkeypatch.setattr(engines, "gpu_available", lambda: False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("STORYTELLER_LLAMA_CPP", str(tmp_path / "none"))
    engine, why = engines.choose_engine("auto")
    assert engine == "transformers" and "scripts/llama-cpp.sh" in why
    with pytest.raises(InputError, match="llama-server is not installed"):
        engines.choose_engine("cpu", "llama.cpp")
    home = tmp_path / "llama.cpp"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "llama-server").write_text("#!/bin/sh\n")
    (home / "bin" / "llama-server").chmod(0o755)
    (home / "convert_hf_to_gguf.py").write_text("")
    monkeypatch.setenv("STORYTELLER_LLAMA_CPP", str(home))
    assert engines.choose_engine("auto")[0] == "llama.cpp"
    assert engines.choose_engine("cpu", "transformers")[0] == "transformers"


def test_a_connection_the_engine_closed_as_it_was_reused_is_retried_once():
    import asyncio

    import httpx

    from storyteller.serve.gateway import send_to_engine

    calls = []

    def engine(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        if len(calls) == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(200, json={"ok": True})

    async def ask(transport) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://engine") as client:
            answer = await send_to_engine(client, "/v1/completions", {"prompt": "x"}, {})
            await answer.aread()
            return answer

    assert asyncio.run(ask(httpx.MockTransport(engine))).json() == {"ok": True}
    assert calls == [{"prompt": "x"}, {"prompt": "x"}]

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    with pytest.raises(httpx.RemoteProtocolError):  # twice is the engine's fault, not a race
        asyncio.run(ask(httpx.MockTransport(down)))


def test_a_server_started_before_llama_cpp_was_built_moves_to_it_for_later_loads():
    from storyteller.serve import llamacpp
    from storyteller.serve.fleet import Loader

    said = []
    auto = load_config(ServeConfig, None, flags={"engine": ("--engine", "cpu")})
    loader = Loader(auto, "transformers", say=said.append)
    if not llamacpp.available():
        pytest.fail("llama-server is not built here: run scripts/llama-cpp.sh")
    assert loader.kind_now() == "llama.cpp" and loader.kind_now() == "llama.cpp"
    assert len(said) == 1 and "llama.cpp" in said[0]
    # Asked for transformers serve: it stays, whatever is installed.
    pinned = load_config(ServeConfig, None, flags={"cpu.backend": ("--set", "transformers")})
    assert Loader(pinned, "transformers", say=said.append).kind_now() == "transformers"


def test_cpu_threads_reach_transformers_serve_too(tmp_path):
    from storyteller.serve.engines import plan_launch

    one = load_config(ServeConfig, None, flags={"cpu.threads": ("--set", 1)})
    launch = plan_launch(one, "transformers", tmp_path, "m", [])
    assert launch.env["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in plan_launch(ServeConfig(), "transformers", tmp_path, "m",
                                                []).env
