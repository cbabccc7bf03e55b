"""`storyteller curate`: story files → clean, deduplicated, leakage-safe prompt–story pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from storyteller.cli.guard import guarded
from storyteller.cli.options import config_option, set_option

FORMATS_HELP = ("Input format (default: detected per file): jsonl, json, csv, parquet, folder, "
                "text, gutenberg, tinystories, writingprompts, datasets, docx, odt, rtf, epub, "
                "html.")


@guarded
def curate(
    paths: Annotated[list[str], typer.Argument(help="Input files or folders (or a datasets hub "
                                                    "id).", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output directory for the "
                                                "curated dataset (not with --preview).",
                                                show_default=False)] = None,
    config: Annotated[Optional[Path], config_option("configs/curate/default.yaml")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", help=FORMATS_HELP)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for splits and "
                                                               "augmentation.")] = None,
    sets: Annotated[Optional[list[str]], set_option("dedup.threshold=0.6")] = None,
    executor: Annotated[Optional[str], typer.Option(
        "--executor", help="Who runs the work: local (this machine, the default) or datatrove "
        "(its local executor here; Slurm with resources.slurm_partition). Same outputs either "
        "way.", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Go on from the tasks an interrupted "
                                         "run finished (kept in OUT/.curate-work, or "
                                         "resources.work_dir); the outputs are the same as an "
                                         "uninterrupted run's.")] = False,
    preview: Annotated[bool, typer.Option("--preview", help="Read and divide the inputs only and "
                                          "show what was found (format, every story, front and "
                                          "back matter, warnings); write nothing.")] = False,
    preferences: Annotated[bool, typer.Option(
        "--preferences", help="The inputs are preference records (chosen / rejected pairs, or "
        "completions with a true/false label; JSONL or JSON): check, deduplicate and split them "
        "by prompt into a preference directory for preference tuning.")] = False,
    val_fraction: Annotated[Optional[float], typer.Option(
        "--val-fraction", help="With --preferences: share of prompts for val [default: "
        "split.val].", show_default=False)] = None,
    test_fraction: Annotated[Optional[float], typer.Option(
        "--test-fraction", help="With --preferences: share of prompts for test [default: "
        "split.test].", show_default=False)] = None,
    judgement: Annotated[str, typer.Option(
        "--judgement", help="With --preferences: where the judgement of records that do not "
        "say came from: rating sheet, studio stars, studio pick, writer edit or style "
        "check.")] = "rating sheet",
) -> None:
    """Turn story files into clean, deduplicated, leakage-safe prompt–story pairs.

    Writes OUT/train.jsonl, val.jsonl, test.jsonl, rejects.jsonl, manifest.json and report.md
    with charts. Same inputs and seed give byte-identical outputs. Manual: docs/curate.md.

    Check a book or a folder first with --preview: it shows each input's format and why, how a
    book was divided, every story found (line, title, words, first words), the front and back
    matter set aside, and warnings where the division looks wrong.

    Examples:

      storyteller curate my_book.txt --preview

      storyteller curate corpora/starter --out data/starter

      storyteller curate stories.csv --format csv --set source.fields.text=body --out data/mine

    Millions of stories: memory stays flat (the work goes through OUT/.curate-work); a killed
    run goes on with --resume; --executor datatrove runs the same stages as datatrove tasks.

      storyteller curate shards/ --out data/big --executor datatrove --set resources.tasks=64

    Preference data (pairs and thumbs from the studio, rating sheets or TRL-style files):

      storyteller curate prefs.jsonl --preferences --out data/prefs --val-fraction 0.2
    """
    from storyteller.config import load_config
    from storyteller.curate.config import CurateConfig
    from storyteller.curate.run import run
    from storyteller.curate.sources import FORMATS
    from storyteller.errors import ConfigError

    if fmt is not None and fmt not in FORMATS:
        raise ConfigError.at("--format", f"unknown format {fmt!r}",
                             f"use one of: {', '.join(FORMATS)}")
    cfg = load_config(CurateConfig, config, sets or [],
                      {"source.format": ("--format", fmt), "seed": ("--seed", seed),
                       "resources.executor": ("--executor", executor)})
    if preferences or val_fraction is not None or test_fraction is not None:
        from storyteller.curate.preference_run import options_config, preview as look, run as curate

        cfg = options_config(cfg, preferences, val_fraction, test_fraction, judgement)
        if preview:
            look(paths, cfg, judgement)
        elif out is None:
            raise ConfigError.at("--out", "where should the curated preferences go?",
                                 "e.g. --out data/prefs (or --preview to only look)")
        else:
            curate(paths, out, cfg, judgement)
        return
    if preview:
        from storyteller.console import console
        from storyteller.curate.preview import show
        from storyteller.curate.run import preview as read_only

        show(read_only(paths, cfg), console)
        return
    if out is None:
        raise ConfigError.at("--out", "where should the curated dataset go?",
                             "e.g. --out data/mine (or --preview to only look)")
    run(paths, out, cfg, resume=resume)
