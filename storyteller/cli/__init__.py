"""The `storyteller` command: one table of subcommands, each defined in its own module here.

A command module parses its options, builds the stage's config through `load_config` (YAML,
then `--set`, then typed flags) and calls the stage; `guard.guarded` turns every known problem
into one line (where: what (what to do)) and exit 1. Stage packages never import this package.
Heavy imports (torch, transformers) happen inside the commands, so `--help` stays fast."""

from __future__ import annotations

import importlib

import typer

# (command, module in storyteller/cli/, the function or Typer group it defines), in the order
# of the pipeline; `storyteller --help` lists them in this order.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("curate", "curate", "curate"),
    ("finetune", "finetune", "finetune"),
    ("pairs", "pairs", "pairs"),
    ("improve", "improve", "improve"),
    ("evaluate", "evaluate", "evaluate"),
    ("ratings", "ratings", "ratings_commands"),
    ("merge", "merge", "merge"),
    ("models", "models", "models_commands"),
    ("serve", "serve", "serve"),
    ("write", "serve", "write"),
    ("prompt", "serve", "prompt"),
    ("app", "studio", "app"),
    ("library", "studio", "library_commands"),
    ("version", "version", "version"),
)

app = typer.Typer(
    name="storyteller",
    help="Curate story corpora and build story-writing models in your genres and styles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown joins the lines of a docstring paragraph, so help text wraps to the terminal.
    rich_markup_mode="markdown",
)

for name, module, attribute in COMMANDS:
    command = getattr(importlib.import_module(f"storyteller.cli.{module}"), attribute)
    if isinstance(command, typer.Typer):
        app.add_typer(command, name=name)
    else:
        app.command(name)(command)


def main() -> None:
    app()
