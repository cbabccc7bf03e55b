"""`storyteller ratings`: make blinded rating sheets, import the filled ones, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from storyteller.cli.guard import guarded

ratings_commands = typer.Typer(
    help="Blinded human ratings of generated stories: make sheets for raters, import the filled "
         "sheets, and report scores, agreement and attention checks. Manual: docs/ratings.md.",
    no_args_is_help=True,
)


@ratings_commands.command()
@guarded
def make(
    source: Annotated[Path, typer.Option(
        "--from", help="The folder storyteller evaluate --out wrote (its generations.jsonl), "
                       "or that file.", show_default=False)],
    raters: Annotated[int, typer.Option(
        "--raters", "-n", help="How many raters: one sheet each.", show_default=False)],
    items: Annotated[int | None, typer.Option(
        "--items", "-k", help="Stories to rate (default: all, at most 40), balanced across "
                              "models and genres.")] = None,
    pairwise: Annotated[int | None, typer.Option(
        "--pairwise", "-p", help="Side-by-side pairs (default: 6 with two or more models, "
                                 "else 0).")] = None,
    seed: Annotated[int, typer.Option(
        "--seed", help="Seed for the choice of stories, the item ids and each rater's "
                       "order.")] = 0,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output folder (default: FROM/ratings).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Write over an existing key.json and its sheets.")] = False,
) -> None:
    """Write one blinded rating sheet per rater, plus the key that unblinds them.

    Every rater gets the same stories in their own order, with a few
    attention checks and repeated stories mixed in. Writes
    DIR/sheets/rater-NN.csv and .xlsx (and rater-NN-pairs.csv when there are
    pairs), DIR/instructions.md for the raters, and DIR/key.json, the only
    file that says which model wrote what: keep it from the raters.

    Examples:

      storyteller ratings make --from out/eval --raters 3

      storyteller ratings make --from out/eval --raters 5 --items 30 --seed 7
    """
    from storyteller.ratings.run import make as run_make

    made = run_make(source, raters, items, pairwise, seed, out, force)
    c = made.counts
    typer.echo(f"{len(made.raters)} sheets in {made.out / 'sheets'}: {c['stories']} stories, "
               f"{c['attention']} attention checks, {c['repeats']} repeats, "
               f"{c['pairs']} pairs per rater")
    typer.echo(f"key (do not share): {made.out / 'key.json'}")
    typer.echo(f"for raters: {made.out / 'instructions.md'}")



@ratings_commands.command("import")
@guarded
def import_(
    sheets: Annotated[list[Path], typer.Argument(
        help="Filled sheets (.csv or .xlsx).", show_default=False)],
    store: Annotated[Path | None, typer.Option(
        "--store", "-s", help="SQLite store (default: ratings.sqlite next to key.json).")] = None,
    key: Annotated[Path | None, typer.Option(
        "--key", help="key.json (default: found next to the sheets' folder).")] = None,
    rater: Annotated[str | None, typer.Option(
        "--rater", help="Rater id for a sheet whose name or rater cell does not say, "
                        "e.g. rater-02.")] = None,
) -> None:
    """Check filled sheets row by row and store the valid rows.

    Each problem (a score outside 1–5, not a whole number, an empty cell, a
    duplicated or unknown item) is printed with its file, row and column;
    that row is left out and the other rows are stored (exit status 1).
    Importing a sheet again replaces that rater's earlier answers: fix the
    sheet and import it again.

    Examples:

      storyteller ratings import out/eval/ratings/sheets/rater-*.xlsx

      storyteller ratings import mail/rater-02.csv --key out/eval/ratings/key.json
    """
    from storyteller.errors import InputError
    from storyteller.ratings.run import import_sheets

    result = import_sheets(list(sheets), store, key, rater)
    for line in result.lines:
        typer.echo(line)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    if result.problems:
        raise InputError(*result.problems)



@ratings_commands.command()
@guarded
def report(
    source: Annotated[Path, typer.Option(
        "--from", help="The ratings folder (with key.json), or evaluate's --out "
                       "folder.")] = Path("."),
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for report.md (or a .md path); default: the ratings "
                            "folder.")] = None,
    store: Annotated[Path | None, typer.Option(
        "--store", "-s", help="SQLite store (default: ratings.sqlite there).")] = None,
) -> None:
    """Report the human ratings: scores per model, agreement, attention checks.

    Means per model and dimension with bootstrap 95% intervals and the
    difference between models; side-by-side win rates; Krippendorff's alpha
    per dimension; raters flagged by attention checks or inconsistent
    repeats (left out of the numbers); Spearman correlations with the
    automatic metrics. Writes report.md, plots/ and ratings_summary.json.

    Examples:

      storyteller ratings report --from out/eval/ratings

      storyteller ratings report --from out/eval --out reports/human.md
    """
    from storyteller.ratings.run import report as run_report

    done = run_report(source, out, store)
    flagged = done.summary.flagged
    if flagged:
        typer.echo(f"flagged raters (left out): {', '.join(sorted(flagged))}")
    typer.echo(str(done.report))



@ratings_commands.command()
@guarded
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.",
                                      show_default=False)],
    source: Annotated[Path, typer.Option(
        "--from", help="The ratings folder (with key.json), or evaluate's --out "
                       "folder.")] = Path("."),
    kind: Annotated[str, typer.Option(
        "--kind", "-k", help="preference: chosen/rejected pairs from the pairs sheets (the "
                             "majority's side; ties give none); kto: stories scored 4+ overall "
                             "as good answers, 2 or less as bad ones.")] = "preference",
    store: Annotated[Path | None, typer.Option(
        "--store", "-s", help="SQLite store (default: ratings.sqlite there).")] = None,
) -> None:
    """Write the imported ratings as preference data for preference tuning.

    Each record has the prompt the model was sent, the stories, where the
    judgement came from ("rating sheet") and how far the raters agreed;
    raters flagged by the attention checks are left out. The file is what
    `storyteller curate --preferences` reads.

    Examples:

      storyteller ratings export --from out/eval/ratings --out prefs/ratings.jsonl

      storyteller ratings export --from out/eval --kind kto --out prefs/thumbs.jsonl

      storyteller curate prefs/ratings.jsonl --preferences --out data/prefs
    """
    from storyteller.ratings.preferences import export as run_export

    done = run_export(source, out, kind, store)
    if done.left_out:
        typer.echo(f"flagged raters (left out): {', '.join(done.left_out)}")
    typer.echo(f"{done.records} {kind} records from {len(done.raters)} raters → {done.out}")
    typer.echo(f"next: storyteller curate {done.out} --preferences --out data/prefs")
