"""`storyteller app`: start the writing studio (app/studio.py) with Streamlit."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

APP_DIR = Path(__file__).resolve().parents[2] / "app"
ENTRY = APP_DIR / "studio.py"


def streamlit_command(host: str, port: int, open_browser: bool) -> list[str]:
    """The command line that serves the studio: on `host` only, without usage statistics, and
    headless unless a browser should open."""
    return [sys.executable, "-m", "streamlit", "run", str(ENTRY),
            "--server.address", host, "--server.port", str(port),
            "--server.headless", "false" if open_browser else "true",
            "--browser.gatherUsageStats", "false",
            "--browser.serverAddress", host if host not in ("0.0.0.0", "::") else "localhost",
            "--server.fileWatcherType", "none",
            "--client.toolbarMode", "minimal"]


def app_command(
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", "-e", help="The storyteller serve endpoint [default: from the config, "
                                 "$STORYTELLER_ENDPOINT, else http://127.0.0.1:8000].",
        show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Served model to write with [default: the first served].",
        show_default=False)] = None,
    library: Annotated[Path | None, typer.Option(
        "--library", help="Story library file [default: $STORYTELLER_LIBRARY or "
                          "~/.local/share/storyteller/library.sqlite].",
        show_default=False)] = None,
    ratings: Annotated[Path | None, typer.Option(
        "--ratings", help="Folder written by `storyteller ratings make`, for the Rate page.",
        show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Studio config, e.g. configs/studio/default.yaml.",
        show_default=False)] = None,
    host: Annotated[str, typer.Option(help="Address to serve the studio on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve the studio on.")] = 8501,
    open_browser: Annotated[bool, typer.Option(
        "--open/--no-open", help="Open the studio in a browser.")] = False,
) -> None:
    """Start the writing studio: write stories with genre and style controls, keep them in a
    library, rate them, and score blinded rating items.

    The studio talks to a running `storyteller serve` endpoint; the API key comes from
    $STORYTELLER_API_KEY (or the sidebar) and is never shown. Stop it with Ctrl+C.

    Examples:

      storyteller serve --model models/quickstart &  storyteller app

      storyteller app --endpoint http://gpu-box:8000 --library ~/stories.sqlite

      storyteller app --ratings out/eval/ratings   (raters open the Rate page)
    """
    from storyteller.cli import guarded

    def action():
        from storyteller.errors import InputError
        from storyteller.serve.server import check_port
        from storyteller.studio.config import CONFIG_VARIABLE, environment_for, load_studio_config
        from storyteller.studio.library import default_library_path

        if not ENTRY.is_file():
            raise InputError.at(str(ENTRY), "the studio's pages are missing",
                                "run storyteller from a clone of the project (pip install -e .)")
        cfg = load_studio_config(config)
        given = {"endpoint": endpoint, "model": model,
                 "library": str(library) if library else None,
                 "ratings": str(ratings) if ratings else None}
        cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if v})
        if ratings and not (ratings / "key.json").is_file():
            raise InputError.at(f"--ratings {ratings}", "holds no key.json",
                                "give the folder `storyteller ratings make` wrote")
        if not cfg.library:
            cfg = dataclasses.replace(cfg, library=str(default_library_path()))
        check_port(host, port)
        env = {**os.environ, **environment_for(cfg)}
        if config:
            env[CONFIG_VARIABLE] = str(config)
        typer.echo(f"studio: http://{'localhost' if host in ('0.0.0.0', '::') else host}:{port} "
                   f"(endpoint {cfg.endpoint}, library {cfg.library}); Ctrl+C stops it")
        # Streamlit takes this process's place, so Ctrl+C and a service manager's signals reach
        # it directly and no server is left behind.
        command = streamlit_command(host, port, open_browser)
        os.execve(command[0], command, env)

    guarded(action)


def register(app: typer.Typer) -> None:
    app.command("app")(app_command)
