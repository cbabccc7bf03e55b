"""`storyteller models`: the fine-tune runs and merged models here, and which are served now;
`models use` and `models unload` change what a running endpoint serves, without a restart."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from storyteller.cli.guard import guarded


def _number(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


models_commands = typer.Typer(invoke_without_command=True)

EndpointOption = Annotated[str, typer.Option(
    "--endpoint", "-e", envvar="STORYTELLER_ENDPOINT",
    help="The running `storyteller serve` ($STORYTELLER_ENDPOINT).")]
KeyOption = Annotated[Optional[str], typer.Option(
    "--api-key", envvar="STORYTELLER_API_KEY", show_default=False,
    help="The server's key, if it has one ($STORYTELLER_API_KEY).")]


@models_commands.callback()
@guarded
def models(
    ctx: typer.Context,
    runs: Annotated[Path, typer.Option("--runs", help="Folder of fine-tune runs "
                                       "(storyteller finetune --out).")] = Path("runs"),
    models_dir: Annotated[Path, typer.Option("--models", help="Folder of merged models "
                                             "(storyteller merge --out).")] = Path("models"),
    endpoint: Annotated[str, typer.Option("--endpoint", help="Ask this endpoint which models it "
                                          "serves now ($STORYTELLER_ENDPOINT); '' to skip. "
                                          "Unreachable means nothing is served.",
                                          envvar="STORYTELLER_ENDPOINT")] = "http://127.0.0.1:8000",
    api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="STORYTELLER_API_KEY",
                                                   help="The server's key, if it has one "
                                                   "($STORYTELLER_API_KEY).", show_default=False)
                       ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object for programs: "
                                          "{entries: [...], endpoint: {...}}.")] = False,
) -> None:
    """List fine-tune runs and merged models: what each is and how good it is.

    For each run (RUNS/NAME) and merged model (MODELS/NAME): the base model, the curated data it
    was trained on, the steps trained (of an unfinished run: its newest checkpoint), the method
    (lora, qlora, full) and objective, the best validation loss (summary.json), the newest
    evaluation's headline scores (house style followed, held-out perplexity; from the
    metrics.json of `storyteller evaluate` whose model is this one), whether the merge passed
    verification (verification.json), and whether the endpoint serves it right now
    (/v1/models).

    Nothing is loaded: the command only reads the files the stages wrote, so it is instant.
    `storyteller models use` and `models unload` change what a running endpoint serves.

    Examples:

      storyteller models

      storyteller models --endpoint http://gpu-box:8000

      storyteller models --json | jq '.entries[] | select(.served) | .name'

      storyteller models use models/quickstart --default
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console

    from storyteller.catalog import catalog
    from storyteller.console import table

    entries, served = catalog(runs, models_dir, endpoint or None, api_key)
    if as_json:
        endpoint_json = None if served is None else {
            "url": served.endpoint, "reachable": not served.problem, "problem": served.problem,
            "models": [name for name, _ in served.models]}
        typer.echo(json.dumps({"entries": [e.to_json() for e in entries],
                               "endpoint": endpoint_json}, indent=2))
        return
    if not entries:
        typer.echo(f"no runs in {runs}/ and no merged models in {models_dir}/ "
                   "(storyteller finetune writes runs, storyteller merge writes models)")
    else:
        rows = []
        for e in entries:
            status = ("verified" if e.verified else "NOT verified") if e.kind == "model" else \
                ("finished" if e.complete else "unfinished")
            rows.append((f"{e.name} ({e.kind})", e.base_model or "-", e.data or "-",
                         "-" if e.steps is None else e.steps,
                         f"{e.method or '-'}/{e.objective or '-'}",
                         _number(e.best_val_loss, 3),
                         "-" if e.style_followed is None else f"{e.style_followed:.0%}",
                         _number(e.perplexity, 2), status,
                         f"yes, as {e.served_as}" if e.served else "no"))
        # In a pipe or log, rich would squeeze the columns into 80 characters.
        Console(width=None if sys.stdout.isatty() else 250).print(table("models", ["name", "base", "data", "steps", "method/objective",
                                       "best val loss", "style followed", "perplexity",
                                       "state", "served"], rows), soft_wrap=False)
    if served is not None and served.problem:
        typer.echo(f"endpoint {served.endpoint}: {served.problem}: nothing counted as served",
                   err=True)


@models_commands.command("use")
@guarded
def use(
    path: Annotated[str, typer.Argument(help="A merged model directory (storyteller merge "
                                        "--out) on the server's machine, or a base model's "
                                        "name (smollm2-135m).", show_default=False)],
    name: Annotated[Optional[str], typer.Option(
        "--name", "-n", help="Name to serve it under [default: the directory's name].",
        show_default=False)] = None,
    default: Annotated[bool, typer.Option(
        "--default", help="List it first, so clients that take the first model (the studio) "
                          "use it.")] = False,
    weights: Annotated[Optional[str], typer.Option(
        "--weights", help="llama.cpp only: serve a GGUF of this number type (f32, bf16, f16, "
                          "q8_0, q4_k_m) instead of the server's cpu.weights, converted once.",
        show_default=False)] = None,
    endpoint: EndpointOption = "http://127.0.0.1:8000",
    api_key: KeyOption = None,
) -> None:
    """Have a running endpoint serve a model, without a restart.

    The endpoint checks the model as `storyteller serve --model` does, starts an engine for it
    and answers once it writes; a name already served is replaced, and the requests running on
    the old one finish first. The studio lists it at its next refresh.

    Examples:

      storyteller models use models/quickstart --default

      storyteller models use models/fables --name fables --endpoint http://gpu-box:8000

      storyteller models use models/quickstart --name quickstart-q8 --weights q8_0
    """
    from storyteller.client import load_model

    target = Path(path)
    if target.exists():
        path = str(target.resolve())
    served = load_model(endpoint, name or Path(path).name, path, api_key, default=default,
                        weights=weights)
    typer.echo(f"{endpoint}: serving {served.id}"
               + (f" ({weights} weights)" if weights else "")
               + (" (listed first)" if default else ""))


@models_commands.command("unload")
@guarded
def unload(
    name: Annotated[str, typer.Argument(help="The served name (storyteller models shows "
                                        "them).", show_default=False)],
    drain: Annotated[Optional[float], typer.Option(
        "--drain", help="Seconds to let running requests finish [default: the server's, "
                        "300].", show_default=False)] = None,
    endpoint: EndpointOption = "http://127.0.0.1:8000",
    api_key: KeyOption = None,
) -> None:
    """Stop serving a model once its running requests are done.

    Example:

      storyteller models unload smollm2-135m
    """
    from storyteller.client import unload_model

    answer = unload_model(endpoint, name, api_key, drain)
    cut = " (some requests were cut short)" if answer.get("cut_short") else ""
    typer.echo(f"{endpoint}: no longer serving {name}{cut}")
