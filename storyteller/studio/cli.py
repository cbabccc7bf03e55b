"""`storyteller library`: the studio's story library from a terminal — list, show, export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

library_app = typer.Typer(
    help="The writing studio's story library: list and show stories, and export the rated "
         "versions as a JSONL dataset that `storyteller curate` reads.",
    no_args_is_help=True,
)

LibraryOption = Annotated[Path | None, typer.Option(
    "--library", "-l", help="Library file [default: $STORYTELLER_LIBRARY or "
                            "~/.local/share/storyteller/library.sqlite].", show_default=False)]


def _library_path(path: Path | None) -> Path:
    """The library file to read, checked: opening any other file would add the library's
    tables to it, and these commands only read."""
    import sqlite3
    from contextlib import closing

    from storyteller.errors import InputError
    from storyteller.studio.library import default_library_path

    path = (path or default_library_path()).expanduser()
    if not path.is_file():
        raise InputError.at(str(path), "no story library here",
                            "write a story in the studio first (storyteller app), or pass "
                            "--library FILE")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'stories'").fetchone()
    except sqlite3.DatabaseError as error:
        found, why = None, str(error)
    else:
        why = "it has no stories table"
    if not found:
        raise InputError.at(str(path), f"not a story library ({why})",
                            "pass the library file the studio writes (its Library page shows "
                            "where), e.g. --library ~/.local/share/storyteller/library.sqlite")
    return path


def _open(path: Path | None):
    from storyteller.studio.library import StoryLibrary

    return StoryLibrary(_library_path(path))


@library_app.command()
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.",
                                      show_default=False)],
    library: LibraryOption = None,
    kind: Annotated[str, typer.Option(
        "--kind", "-k", help="sft: one record per well-rated version (the story and its "
                             "prompt); preference: chosen/rejected pairs of versions of one "
                             "request whose stars differ.")] = "sft",
    min_stars: Annotated[int, typer.Option(
        "--min-stars", min=1, max=5, help="sft: keep versions rated at least this.")] = 4,
) -> None:
    """Write the rated versions as a dataset for fine-tuning.

    Every record carries the story under `text` and its controls (genre,
    style, …) under their own names, so `storyteller curate` reads the file
    like any other record file; preference records add `prompt`, `chosen`
    and `rejected`. The answer to a continuation's prompt (which quoted the
    story so far) is only the part it added; `text` is the whole story.

    Examples:

      storyteller library export --out feedback.jsonl

      storyteller library export --kind preference --out prefs.jsonl

      storyteller curate feedback.jsonl --out data/feedback
    """
    from storyteller.cli import guarded

    def action():
        from storyteller.errors import InputError
        from storyteller.files import write_atomic
        from storyteller.studio.export import jsonl_bytes, preference_records, sft_records
        from storyteller.studio.library import StoryLibrary

        if kind not in ("sft", "preference"):
            raise InputError.at("--kind", f"{kind!r} is not a dataset kind",
                                "use sft or preference")
        path = _library_path(library)
        with StoryLibrary(path) as lib:
            rated = lib.rated()
            # Every version of the rated stories: an edit takes the prompt of what it edited,
            # a continuation's new part is told from the story it grew from.
            versions = [v for story_id in {s.id for s, _ in rated}
                        for v in lib.generations(story_id)]
        records = sft_records(rated, min_stars, versions) if kind == "sft" else \
            preference_records(rated, versions)
        if not records:
            hint = (f"rate versions {min_stars}★ or more in the studio, or lower --min-stars"
                    if kind == "sft" else "rate two versions of one request differently "
                                          "(Regenerate makes a second version)")
            raise InputError.at(str(path), f"nothing to export yet "
                                f"({len(rated)} rated versions)", hint)
        if out.is_dir():
            raise InputError.at(str(out), "is a folder", "give --out a file name, e.g. "
                                f"{out / 'feedback.jsonl'}")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, jsonl_bytes(records))
        typer.echo(f"{len(records)} {kind} records → {out}")
        typer.echo(f"next: storyteller curate {out} --out data/feedback")

    guarded(action)


@library_app.command("list")
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
    from storyteller.cli import guarded

    def action():
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

    guarded(action)


@library_app.command()
def show(
    story_id: Annotated[str, typer.Argument(help="The story's id (see `library list`).",
                                            show_default=False)],
    library: LibraryOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="md or txt.")] = "md",
) -> None:
    """Print a story's current version as Markdown or plain text.

    Example:

      storyteller library show s-3f9a12c4b7 --format txt > story.txt
    """
    from storyteller.cli import guarded

    def action():
        from storyteller.errors import InputError
        from storyteller.studio.export import story_markdown, story_text

        if format not in ("md", "txt"):
            raise InputError.at("--format", f"{format!r} is not a format", "use md or txt")
        with _open(library) as lib:
            try:
                story = lib.story(story_id)
            except KeyError:
                raise InputError.at(story_id, "no such story in the library",
                                    "see storyteller library list") from None
            text = lib.current_text(story_id)
        typer.echo((story_markdown if format == "md" else story_text)(story, text), nl=False)

    guarded(action)
