"""`storyteller merge`, `serve`, `write` and `prompt`: the commands around the endpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from storyteller.errors import InputError


def merge_command(
    run: Annotated[str, typer.Option("--run", "-r", help="The run directory (runs/NAME) or its "
                                     "final/.", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Model directory to write "
                                                "(default: models/NAME).")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Curated directory whose "
                                                 "test split verifies the merge (default: the "
                                                 "run's own, from run.json).")] = None,
    logits_atol: Annotated[float, typer.Option("--logits-atol", help="Largest allowed |Δlogit| "
                                               "between merged and base + adapter.")] = 1e-3,
    perplexity_rtol: Annotated[float, typer.Option("--perplexity-rtol", help="Largest allowed "
                                                   "relative held-out perplexity change.")] = 0.005,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out (only "
                                        "after the new one passes).")] = False,
) -> None:
    """Merge a run's adapter into its full-precision base and write a standalone model directory.

    The base is loaded in fp32 (never merged into 4-bit weights, also for QLoRA runs). Before the
    directory is published, the merged copy is reloaded from disk and checked against base +
    adapter on held-out prompts: logits within --logits-atol, identical greedy continuations,
    held-out perplexity within --perplexity-rtol. Results go to OUT/verification.json; a failed
    check exits 1, writes RUN/merge-verification.json and leaves no model directory behind.

    The directory holds safetensors weights, tokenizer, chat template, generation_config.json
    with every stop id, storyteller.json (base, control schema, genres, styles) and a model card.

    Examples:

      storyteller merge --run runs/quickstart

      storyteller merge --run runs/fables --out models/fables --data data/fables
    """
    from storyteller.cli import guarded
    from storyteller.console import console, steps
    from storyteller.serve.merge import Tolerances, merge

    def action():
        run_path = Path(run)
        name = run_path.parent.name if run_path.name == "final" else run_path.name
        target = out or Path("models") / name
        with steps() as progress:
            result = merge(run, target, data=data, force=force, steps=progress,
                           tolerances=Tolerances(logits_atol=logits_atol,
                                                 perplexity_rtol=perplexity_rtol))
        for check in result.verification["checks"]:
            mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
            measured = check["measured"]
            shown = f"{measured:.3g}" if isinstance(measured, float) else measured
            console.print(f"{mark} {check['name']}: {shown} (limit {check['limit']}) — "
                          f"{check['detail']}")
        if not result.passed:
            typer.echo(f"error: {run}: the merged model failed verification; nothing was written "
                       f"(details: {result.verification_path})", err=True)
            raise typer.Exit(1)
        typer.echo(str(result.out))

    guarded(action)


def serve_command(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model directory "
                                                 "(storyteller merge's --out), e.g. "
                                                 "models/quickstart.")] = None,
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
                                                       "for (default: the directory's name).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config, e.g. "
                                                   "configs/serve/default.yaml.")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key, "
                                                           "e.g. --set cpu.parallel=4 "
                                                           "(repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check everything and print the "
                                          "engine command line, without starting.")] = False,
) -> None:
    """Serve a model behind an OpenAI-compatible endpoint until Ctrl+C.

    On a CUDA GPU with vLLM installed the engine is `vllm serve` (served name, max model length,
    chat template, adapters with --enable-lora, tensor parallelism over the GPUs); otherwise
    llama.cpp's llama-server on the CPU (built by set-up; the model is converted to a float32
    GGUF once), or `transformers serve` where that is not built (--set cpu.backend=transformers
    picks it). Either way clients get the same API from
    storyteller's gateway: /v1/chat/completions and /v1/completions (streaming and not),
    /v1/models (with each model's genres, styles and control schema) and /health, with
    storyteller's sampling extras top_k, min_p, repetition_penalty and seed.

    Bound to 127.0.0.1 unless --host says otherwise; any other address requires --api-key.
    Before launch a preflight checks the chat template, stop ids, control schema and adapters.

    Examples:

      storyteller serve --model models/quickstart

      storyteller serve -m models/quickstart --host 0.0.0.0 --api-key "$KEY" --port 8080

      storyteller serve -m models/base --adapter fables=runs/fables --adapter noir=runs/noir
    """
    from storyteller.cli import guarded
    from storyteller.config import load_config
    from storyteller.serve.config import ServeConfig

    extra = list(overrides or [])
    for key, value in (("model", model), ("engine", engine), ("host", host), ("port", port),
                       ("served_name", served_name)):
        if value is not None:
            extra.append(f"{key}={value}")

    def action():
        from storyteller.serve.server import describe, serve

        cfg = load_config(ServeConfig, config, extra)
        if api_key is not None:
            cfg.api_key = api_key
        if adapters:
            cfg.adapters = list(cfg.adapters) + list(adapters)
        if dry_run:
            typer.echo(json.dumps(describe(cfg), indent=2))
            return
        serve(cfg, say=lambda line: typer.echo(line, err=True))

    guarded(action)


def request_options(premise, title, opening, kind, genre, style, tone, audience, pov, length):
    from storyteller.prompts import StoryRequest

    controls = {k: v for k, v in (("genre", genre), ("style", style), ("tone", tone),
                                  ("audience", audience), ("pov", pov), ("length", length)) if v}
    kind = kind or ("opening" if opening else "title" if title and not premise else "premise")
    if kind == "premise" and not premise:
        raise InputError.at("PREMISE", "a premise is needed", 'e.g. storyteller write "A fox '
                            'guards a lighthouse" --genre fable')
    return StoryRequest(kind=kind, controls=controls, premise=premise or None,
                        title=title or None, opening=opening or None)


PREMISE = Annotated[Optional[str], typer.Argument(help="What the story is about.",
                                                  show_default=False)]
GENRE = Annotated[Optional[str], typer.Option("--genre", "-g", help="e.g. fable, mystery, "
                                              "ghost story (see the model's storyteller.json).")]
STYLE = Annotated[Optional[str], typer.Option("--style", "-s", help="e.g. moral, refrain, "
                                              "noir, log, plain, lyrical.")]
TONE = Annotated[Optional[str], typer.Option("--tone", help="e.g. warm, eerie, wry.")]
AUDIENCE = Annotated[Optional[str], typer.Option("--audience", help="children, young adult, "
                                                 "adult, all ages.")]
POV = Annotated[Optional[str], typer.Option("--pov", help="first, second or third.")]
LENGTH = Annotated[Optional[str], typer.Option("--length", help="flash, short, medium, long.")]
TITLE = Annotated[Optional[str], typer.Option("--title", help="A title (alone: write the story "
                                              "for this title).")]
OPENING = Annotated[Optional[str], typer.Option("--opening", help="Continue this opening.")]
KIND = Annotated[Optional[str], typer.Option("--kind", help="premise, title or opening "
                                             "(default: from what is given).")]


def write_command(
    premise: PREMISE = None,
    genre: GENRE = None, style: STYLE = None, tone: TONE = None, audience: AUDIENCE = None,
    pov: POV = None, length: LENGTH = None, title: TITLE = None, opening: OPENING = None,
    kind: KIND = None,
    endpoint: Annotated[str, typer.Option("--endpoint", help="The endpoint's URL "
                                          "($STORYTELLER_ENDPOINT).", envvar="STORYTELLER_ENDPOINT")
                        ] = "http://127.0.0.1:8000",
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Served model name "
                                                 "(default: the first one served).")] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="STORYTELLER_API_KEY",
                                                   help="The server's key, if it has one "
                                                   "($STORYTELLER_API_KEY).", show_default=False)
                       ] = None,
    preset: Annotated[str, typer.Option("--preset", help="story, focused, wild or greedy.")] = "story",
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Longest story in tokens.")] = 1024,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Same seed, same story "
                                                "(on the same engine).")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", "-t",
                                                         help="Override the preset's.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait between pieces "
                                           "of the story.")] = 120.0,
) -> None:
    """Stream a story from the endpoint to the terminal, prompted exactly as in training.

    Examples:

      storyteller write "A lighthouse keeper finds a fox in the lamp room" --genre fable --style moral

      storyteller write --title "The Last Ferry" -g "ghost story" --preset focused --seed 7

      storyteller write --opening "The radio had been silent for nine days." -g "science fiction" -s log
    """
    from storyteller.cli import guarded

    def action():
        from storyteller.serve.client import Completion, Sampling, StoryClient

        request = request_options(premise, title, opening, kind, genre, style, tone, audience,
                                  pov, length)
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

    guarded(action)


def prompt_command(
    premise: PREMISE = None,
    genre: GENRE = None, style: STYLE = None, tone: TONE = None, audience: AUDIENCE = None,
    pov: POV = None, length: LENGTH = None, title: TITLE = None, opening: OPENING = None,
    kind: KIND = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model name to put in the request "
                                       "body.")] = "quickstart",
    preset: Annotated[str, typer.Option("--preset", help="story, focused, wild or greedy.")] = "story",
    body: Annotated[bool, typer.Option("--body", help="Print the whole /v1/chat/completions "
                                       "request body, not only the messages.")] = False,
) -> None:
    """Print the exact messages (or request body) to send for a story, as JSON.

    The header of controls and the wording are the ones the model was trained on
    (storyteller.prompts), so any client that sends these messages prompts the model as
    training did.

    Examples:

      storyteller prompt "A fox guards a lighthouse" --genre fable --style moral

      storyteller prompt "A fox guards a lighthouse" -g fable --body | curl -s http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' -d @-
    """
    from storyteller.cli import guarded

    def action():
        from storyteller.serve.client import Sampling, story_messages

        request = request_options(premise, title, opening, kind, genre, style, tone, audience,
                                  pov, length)
        messages = story_messages(request)
        if body:
            payload = {"model": model, "messages": messages, **Sampling.from_preset(preset).body()}
            typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        else:
            typer.echo(json.dumps(messages, indent=2, ensure_ascii=False))

    guarded(action)


def register(app: typer.Typer) -> None:
    app.command("merge")(merge_command)
    app.command("serve")(serve_command)
    app.command("write")(write_command)
    app.command("prompt")(prompt_command)
