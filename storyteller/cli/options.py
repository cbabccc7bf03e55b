"""Options several commands share, declared once so they read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def config_option(example: str) -> object:
    return typer.Option("--config", "-c", help=f"YAML config, e.g. {example}.")


def set_option(example: str) -> object:
    return typer.Option("--set", help=f"Override a config key, e.g. --set {example} (repeatable).")


Config = Optional[Path]
Sets = Optional[list[str]]

# What a story is about: `storyteller write` and `storyteller prompt` take the same request.
Premise = Annotated[Optional[str], typer.Argument(help="What the story is about.",
                                                  show_default=False)]
Genre = Annotated[Optional[str], typer.Option("--genre", "-g", help="e.g. fable, mystery, "
                                              "ghost story (see the model's storyteller.json).")]
Style = Annotated[Optional[str], typer.Option("--style", "-s", help="e.g. moral, refrain, "
                                              "noir, log, plain, lyrical.")]
Tone = Annotated[Optional[str], typer.Option("--tone", help="e.g. warm, eerie, wry.")]
Audience = Annotated[Optional[str], typer.Option("--audience", help="children, young adult, "
                                                 "adult, all ages.")]
Pov = Annotated[Optional[str], typer.Option("--pov", help="first, second or third.")]
Length = Annotated[Optional[str], typer.Option("--length", help="flash, short, medium, long.")]
Title = Annotated[Optional[str], typer.Option("--title", help="A title (alone: write the story "
                                              "for this title).")]
Opening = Annotated[Optional[str], typer.Option("--opening", help="Continue this opening.")]
Kind = Annotated[Optional[str], typer.Option("--kind", help="premise, title or opening "
                                             "(default: from what is given).")]
Preset = Annotated[str, typer.Option("--preset", help="story, focused, wild or greedy.")]
