"""`storyteller serve`, `write` and `prompt`: the endpoint, and a story from it in a terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from storyteller.cli import options
from storyteller.cli.guard import guarded
from storyteller.cli.options import config_option, set_option


@guarded
def serve(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model directory "
                                                 "(storyteller merge's --out), e.g. "
                                                 "models/quickstart, or a base model by "
                                                 "name: smollm2-135m.")] = None,
    engine: Annotated[Optional[str], typer.Option("--engine", "-e", help="auto (vLLM on a GPU, "
                                                  "else CPU), vllm or cpu.")] = None,
    host: Annotated[Optional[str], typer.Option("--host", help="Address to bind (default "
                                                "127.0.0.1; any other needs an API key).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", "-p", help="Port (default 8000).")] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", help="Require this key "
                                                   "(Authorization: Bearer KEY) on every route "
                                                   "but /health; default $STORYTELLER_API_KEY.",
                                                   show_default=False)] = None,
    adapters: Annotated[Optional[list[str]], typer.Option("--adapter", "-a", help="Also serve "
                                                          "an adapter unmerged (vLLM), as PATH "
                                                          "or NAME=PATH; repeatable.")] = None,
    served_name: Annotated[Optional[str], typer.Option("--served-name", help="Name clients ask "
                                                       "for (default: the directory's name, "
                                                       "or the base model's).")] = None,
    config: Annotated[Optional[Path], config_option("configs/serve/default.yaml")] = None,
    sets: Annotated[Optional[list[str]], set_option("cpu.parallel=4")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check everything and print the "
                                          "engine command line, without starting.")] = False,
) -> None:
    """Serve a model behind an OpenAI-compatible endpoint until Ctrl+C.

    On a CUDA GPU with vLLM installed the engine is `vllm serve` (served name, max model length,
    chat template, adapters with --enable-lora, tensor parallelism over the GPUs); otherwise
    llama.cpp's llama-server on the CPU (built by set-up; the model is converted once to an
    8-bit q8_0 GGUF, --set cpu.weights=f32 for its own float32 numbers), or `transformers serve` where that is not built (--set cpu.backend=transformers
    picks it). Either way clients get the same API from
    storyteller's gateway: /v1/chat/completions and /v1/completions (streaming and not),
    /v1/models (with each model's genres, styles and control schema) and /health, with
    storyteller's sampling extras top_k, min_p, repetition_penalty and seed.

    Bound to 127.0.0.1 unless --host says otherwise; any other address requires --api-key.
    Before launch a preflight checks the chat template, stop ids, control schema and adapters.

    More models load and unload while it runs, each on its own engine:
    POST /v1/storyteller/models {"name", "path", "default"} and
    DELETE /v1/storyteller/models/NAME (the key when set; else loopback clients only). Every
    engine goes down with the server, however it ends.

    Manual: docs/serve.md; the HTTP API: docs/API.md.

    Examples:

      storyteller serve --model models/quickstart

      storyteller serve --model smollm2-135m

      storyteller serve -m models/quickstart --host 0.0.0.0 --api-key "$KEY" --port 8080

      storyteller serve -m models/base --adapter fables=runs/fables --adapter noir=runs/noir
    """
    from storyteller.config import load_config
    from storyteller.serve.config import ServeConfig
    from storyteller.serve.server import describe, serve as run_server

    flags = {"model": ("--model", model), "engine": ("--engine", engine), "host": ("--host", host),
             "port": ("--port", port), "served_name": ("--served-name", served_name),
             "api_key": ("--api-key", api_key)}
    cfg = load_config(ServeConfig, config, sets or [], flags)
    if adapters:
        # --adapter adds to the config's adapters; the whole list is checked like the file's.
        flags["adapters"] = ("--adapter", [*cfg.adapters, *adapters])
        cfg = load_config(ServeConfig, config, sets or [], flags)
    if dry_run:
        typer.echo(json.dumps(describe(cfg), indent=2))
        return
    run_server(cfg, say=lambda line: typer.echo(line, err=True))


def request_from(premise, title, opening, kind, genre, style, tone, audience, pov, length):
    """The story request the options describe (the same rule as the studio's form)."""
    from storyteller.errors import InputError
    from storyteller.prompts import story_request

    controls = {"genre": genre, "style": style, "tone": tone, "audience": audience, "pov": pov,
                "length": length}
    try:
        return story_request(premise, title, controls, opening, kind)
    except ValueError as error:
        raise InputError.at("PREMISE" if "premise" in str(error) else f"--{kind}", str(error),
                            'e.g. storyteller write "A fox guards a lighthouse" --genre fable') \
            from None


@guarded
def write(
    premise: options.Premise = None,
    genre: options.Genre = None, style: options.Style = None, tone: options.Tone = None,
    audience: options.Audience = None, pov: options.Pov = None, length: options.Length = None,
    title: options.Title = None, opening: options.Opening = None, kind: options.Kind = None,
    endpoint: Annotated[str, typer.Option("--endpoint", help="The endpoint's URL "
                                          "($STORYTELLER_ENDPOINT).", envvar="STORYTELLER_ENDPOINT")
                        ] = "http://127.0.0.1:8000",
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Served model name "
                                                 "(default: the first one served).")] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="STORYTELLER_API_KEY",
                                                   help="The server's key, if it has one "
                                                   "($STORYTELLER_API_KEY).", show_default=False)
                       ] = None,
    preset: options.Preset = "story",
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Longest story in tokens.")] = 1024,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Same seed, same story "
                                                "(on the same engine).")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", "-t",
                                                         help="Override the preset's.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait between pieces "
                                           "of the story.")] = 120.0,
) -> None:
    """Stream a story from the endpoint to the terminal, prompted exactly as in training.

    Manual: docs/serve.md.

    Examples:

      storyteller write "A lighthouse keeper finds a fox in the lamp room" --genre fable --style moral

      storyteller write --title "The Last Ferry" -g "ghost story" --preset focused --seed 7

      storyteller write --opening "The radio had been silent for nine days." -g "science fiction" -s log
    """
    from storyteller.client import Completion, StoryClient
    from storyteller.sampling import Sampling

    request = request_from(premise, title, opening, kind, genre, style, tone, audience, pov,
                           length)
    client = StoryClient(endpoint, api_key=api_key, timeout=timeout)
    name = model or client.models()[0].id
    sampling = Sampling.from_preset(preset, max_tokens=max_tokens, seed=seed,
                                    temperature=temperature)
    finish = None
    for piece in client.write(request, name, sampling):
        if isinstance(piece, Completion):
            finish = piece.finish_reason
        else:
            sys.stdout.write(piece)
            sys.stdout.flush()
    sys.stdout.write("\n")
    if finish == "length":
        typer.echo(f"(stopped at --max-tokens {max_tokens})", err=True)


@guarded
def prompt(
    premise: options.Premise = None,
    genre: options.Genre = None, style: options.Style = None, tone: options.Tone = None,
    audience: options.Audience = None, pov: options.Pov = None, length: options.Length = None,
    title: options.Title = None, opening: options.Opening = None, kind: options.Kind = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model name to put in the request "
                                       "body.")] = "quickstart",
    preset: options.Preset = "story",
    body: Annotated[bool, typer.Option("--body", help="Print the whole /v1/chat/completions "
                                       "request body, not only the messages.")] = False,
) -> None:
    """Print the exact messages (or request body) to send for a story, as JSON.

    The header of controls and the wording are the ones the model was trained on
    (storyteller.prompts), so any client that sends these messages prompts the model as
    training did.

    Manual: docs/serve.md.

    Examples:

      storyteller prompt "A fox guards a lighthouse" --genre fable --style moral

      storyteller prompt "A fox guards a lighthouse" -g fable --body | curl -s http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' -d @-
    """
    from storyteller.client import story_messages
    from storyteller.sampling import Sampling

    request = request_from(premise, title, opening, kind, genre, style, tone, audience, pov,
                           length)
    messages = story_messages(request)
    if body:
        payload = {"model": model, "messages": messages, **Sampling.from_preset(preset).body()}
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        typer.echo(json.dumps(messages, indent=2, ensure_ascii=False))
