"""`storyteller app` and `storyteller library`: the writing studio and its story library."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import typer

from storyteller.cli.guard import guarded


@guarded
def app(
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
    ssl_cert: Annotated[Path | None, typer.Option(
        "--ssl-cert", help="TLS certificate (PEM) to serve the studio over https; with "
                           "--ssl-key.", show_default=False)] = None,
    ssl_key: Annotated[Path | None, typer.Option(
        "--ssl-key", help="The certificate's private key (PEM).", show_default=False)] = None,
) -> None:
    """Start the writing studio: write stories with genre and style controls, keep them in a
    library, rate them, and score blinded rating items.

    The studio talks to a running `storyteller serve` endpoint; the API key comes from
    $STORYTELLER_API_KEY (or the sidebar) and is never shown. Stop it with Ctrl+C.

    The studio starts training runs and writes files, so it listens beyond
    this machine (--host 0.0.0.0) only behind a login: a password set in
    $STORYTELLER_STUDIO_PASSWORD (at least 8 characters; use --ssl-cert and
    --ssl-key so it does not travel in clear), or an OpenID Connect login
    configured in .streamlit/secrets.toml ([auth]).

    Manual: docs/studio.md.

    Examples:

      storyteller serve --model models/quickstart &  storyteller app

      storyteller app --endpoint http://gpu-box:8000 --library ~/stories.sqlite

      storyteller app --ratings out/eval/ratings   (raters open the Rate page)

      STORYTELLER_STUDIO_PASSWORD=... storyteller app --host 0.0.0.0 --ssl-cert c.pem --ssl-key k.pem
    """
    from storyteller.errors import InputError
    from storyteller.processes import check_port
    from storyteller.studio.access import check_exposure, oidc_configured, secrets_files
    from storyteller.studio.config import CONFIG_VARIABLE, environment_for, load_studio_config
    from storyteller.studio.launch import ENTRY, streamlit_command
    from storyteller.studio.library import default_library_path

    if not ENTRY.is_file():
        raise InputError.at(str(ENTRY), "the studio's pages are missing",
                            "run storyteller from a clone of the project (pip install -e .)")
    cfg = load_studio_config(config, flags={
        "endpoint": ("--endpoint", endpoint or None), "model": ("--model", model or None),
        "library": ("--library", library), "ratings": ("--ratings", ratings)})
    if ratings and not (ratings / "key.json").is_file():
        raise InputError.at(f"--ratings {ratings}", "holds no key.json",
                            "give the folder `storyteller ratings make` wrote")
    if not cfg.library:  # the default needs the user's data folder, so it is filled in here
        cfg = dataclasses.replace(cfg, library=str(default_library_path()))
    if (ssl_cert is None) != (ssl_key is None):
        raise InputError.at("--ssl-cert" if ssl_cert is None else "--ssl-key", "TLS needs both "
                            "the certificate and its key", "pass --ssl-cert and --ssl-key")
    for flag, path in (("--ssl-cert", ssl_cert), ("--ssl-key", ssl_key)):
        if path is not None and not path.is_file():
            raise InputError.at(f"{flag} {path}", "no such file", "give a PEM file")
    login = check_exposure(host, os.environ,
                           oidc_configured(secrets_files(Path.cwd(), Path.home())))
    check_port(host, port)
    env = {**os.environ, **environment_for(cfg)}
    if config:
        env[CONFIG_VARIABLE] = str(config)
    scheme = "https" if ssl_cert else "http"
    where = "localhost" if host in ("0.0.0.0", "::") else host
    login_note = {"password": "; asks for the studio password", "oidc": "; OpenID Connect login",
                  "open": ""}[login]
    typer.echo(f"studio: {scheme}://{where}:{port} (endpoint {cfg.endpoint}, library "
               f"{cfg.library}{login_note}); Ctrl+C stops it")
    # Streamlit takes this process's place, so Ctrl+C and a service manager's signals reach
    # it directly and no server is left behind.
    command = streamlit_command(host, port, open_browser, cfg.max_upload_mb,
                                (ssl_cert, ssl_key) if ssl_cert and ssl_key else None)
    os.execve(command[0], command, env)


library_commands = typer.Typer(
    help="The writing studio's story library: list and show stories, and export the rated "
         "versions as a JSONL dataset that `storyteller curate` reads. Manual: docs/studio.md.",
    no_args_is_help=True,
)

LibraryOption = Annotated[Path | None, typer.Option(
    "--library", "-l", help="Library file [default: $STORYTELLER_LIBRARY or "
                            "~/.local/share/storyteller/library.sqlite].", show_default=False)]


def _open(path: Path | None):
    from storyteller.studio.library import StoryLibrary, existing_library

    return StoryLibrary(existing_library(path))


@library_commands.command()
@guarded
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.",
                                      show_default=False)],
    library: LibraryOption = None,
    kind: Annotated[str, typer.Option(
        "--kind", "-k", help="sft: one record per well-rated version (the story and its "
                             "prompt); preference: chosen/rejected pairs of versions of one "
                             "request whose stars differ, the candidate the writer kept over "
                             "each other one, and the writer's edit over what the model "
                             "wrote; kto: each version rated 4★+ as a good answer, 2★ or "
                             "fewer as a bad one.")] = "sft",
    min_stars: Annotated[int, typer.Option(
        "--min-stars", min=1, max=5, help="sft: keep versions rated at least this.")] = 4,
) -> None:
    """Write the rated versions as a dataset for fine-tuning.

    Every record carries the story under `text` and its controls (genre,
    style, …) under their own names, so `storyteller curate` reads the file
    like any other record file; preference records add `prompt`, `chosen`
    and `rejected`. The answer to a continuation's prompt (which quoted the
    story so far) is only the part it added; `text` is the whole story.
    Preference and kto files are what `storyteller curate --preferences`
    reads (each record says where its judgement came from).

    Examples:

      storyteller library export --out feedback.jsonl

      storyteller library export --kind preference --out prefs.jsonl

      storyteller curate feedback.jsonl --out data/feedback

      storyteller library export --kind kto --out thumbs.jsonl

      storyteller curate prefs.jsonl --preferences --out data/prefs
    """
    from storyteller.errors import InputError
    from storyteller.files import write_atomic
    from storyteller.studio.export import DATASET_KINDS, jsonl_bytes, library_records
    from storyteller.studio.library import StoryLibrary, existing_library

    if kind not in DATASET_KINDS:
        raise InputError.at("--kind", f"{kind!r} is not a dataset kind",
                            "use sft, preference or kto")
    path = existing_library(library)
    with StoryLibrary(path) as lib:
        records = library_records(lib, kind, min_stars)
        rated = len(lib.rated()) if not records else 0  # for the message only
    if not records:
        hint = {"sft": f"rate versions {min_stars}★ or more in the studio, or lower --min-stars",
                "kto": "rate versions in the studio: 4★ or more is a good answer, 2★ or fewer "
                       "a bad one",
                "preference": "keep one of several candidates in the studio, edit what a "
                              "model wrote, or rate two versions of one request "
                              "differently"}[kind]
        raise InputError.at(str(path), f"nothing to export yet "
                            f"({rated} rated versions)", hint)
    if out.is_dir():
        raise InputError.at(str(out), "is a folder", "give --out a file name, e.g. "
                            f"{out / 'feedback.jsonl'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, jsonl_bytes(records))
    typer.echo(f"{len(records)} {kind} records → {out}")
    typer.echo(f"next: storyteller curate {out} --out data/feedback")



@library_commands.command("list")
@guarded
def list_(
    library: LibraryOption = None,
    search: Annotated[str, typer.Option("--search", "-s", help="Words every story shown "
                                                               "contains.")] = "",
) -> None:
    """List the stories, newest first.

    Examples:

      storyteller library list

      storyteller library list --search lighthouse
    """
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "title", "versions", "best ★", "updated")
    with _open(library) as lib:
        for story in lib.search(search):
            versions = lib.generations(story.id)
            stars = [v.stars for v in versions if v.stars]
            table.add_row(story.id, story.title or "Untitled story", str(len(versions)),
                          str(max(stars)) if stars else "", story.updated_at[:16])
    Console().print(table)



@library_commands.command()
@guarded
def show(
    story_id: Annotated[str, typer.Argument(help="The story's id (see `library list`).",
                                            show_default=False)],
    library: LibraryOption = None,
    format: Annotated[str, typer.Option(
        "--format", "-f", help="md, txt, html (the model's passages tinted) or json (who "
                               "wrote each passage, as spans).")] = "md",
) -> None:
    """Print a story's current version as Markdown, plain text, HTML or JSON.

    HTML and JSON keep who wrote what: the model's passages are marked
    (<span class="ai">; "spans": [{"by": "ai"|"writer", "text": ...}]).

    Examples:

      storyteller library show s-3f9a12c4b7 --format txt > story.txt

      storyteller library show s-3f9a12c4b7 --format html > story.html
    """
    from storyteller.errors import InputError
    from storyteller.studio.draft import authorship
    from storyteller.studio.export import story_html, story_json, story_markdown, story_text

    if format not in ("md", "txt", "html", "json"):
        raise InputError.at("--format", f"{format!r} is not a format",
                            "use md, txt, html or json")
    with _open(library) as lib:
        try:
            story = lib.story(story_id)
        except KeyError:
            raise InputError.at(story_id, "no such story in the library",
                                "see storyteller library list") from None
        text = lib.current_text(story_id)
        versions = lib.generations(story_id)
    if format in ("html", "json"):
        spans = authorship(versions, story.current_id)
        current = next((v for v in versions if v.id == story.current_id), None)
        typer.echo(story_html(story, spans) if format == "html" else
                   story_json(story, spans, current), nl=False)
        return
    typer.echo((story_markdown if format == "md" else story_text)(story, text), nl=False)

