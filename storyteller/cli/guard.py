"""How every command ends: known problems as one line each and exit 1, Ctrl+C as exit 130, an
internal fault as one line unless STORYTELLER_DEBUG is set. A leaf: it imports no command."""

from __future__ import annotations

import functools
import os
from typing import Callable, TypeVar

import click
import typer

from storyteller.errors import StorytellerError

F = TypeVar("F", bound=Callable)


def fail(error: StorytellerError) -> None:
    for problem in error.problems:
        typer.echo(f"error: {problem}", err=True)
    raise typer.Exit(1)


def guarded(command: F) -> F:
    """Decorate a command so that what it raises reaches the user as one line per problem."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except StorytellerError as error:
            fail(error)
        except (click.exceptions.Exit, typer.Exit, click.exceptions.Abort, click.ClickException):
            # typer's own ways out: the command chose its exit (typer's Exit is not click's
            # in the typer installed here, and a failed merge's exit 1 read as an internal error)
            raise
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130)
        except Exception as error:  # an internal fault: one line unless debugging
            if os.environ.get("STORYTELLER_DEBUG"):
                raise
            typer.echo(f"error: internal error: {type(error).__name__}: {error} "
                       f"(set STORYTELLER_DEBUG=1 to see the traceback)", err=True)
            raise typer.Exit(1)

    return run  # type: ignore[return-value]
