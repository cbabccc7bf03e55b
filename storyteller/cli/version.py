"""`storyteller version`."""

from __future__ import annotations

import typer


def version() -> None:
    """Print storyteller's version."""
    import storyteller

    typer.echo(storyteller.__version__)
