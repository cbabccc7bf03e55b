"""`storyteller pairs`: self-judged preference pairs from a model's own stories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from storyteller.cli.guard import guarded
from storyteller.cli.options import config_option, set_option


@guarded
def pairs(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="The model that writes: "
                                                 "a run directory (or its final/), a merged "
                                                 "model directory or a model name.")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Curated SFT data; its "
                                                 "train and val prompts are sampled (never "
                                                 "test).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Preference directory to "
                                                "write (empty, or --resume).")] = None,
    samples: Annotated[Optional[int], typer.Option("--samples", "-k", help="Stories per prompt "
                                                   "(default 4).")] = None,
    prompts: Annotated[Optional[int], typer.Option("--prompts", "-n", help="At most N train "
                                                   "prompts, house styles first (val gets the "
                                                   "same share); default all.")] = None,
    min_margin: Annotated[Optional[float], typer.Option("--min-margin", help="Smallest judge "
                                                        "score difference for a pair (default "
                                                        "0.1).")] = None,
    endpoint: Annotated[Optional[str], typer.Option("--endpoint", help="Generate through an "
                                                    "OpenAI-compatible server at this URL; "
                                                    "--model is its model name.")] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Sampling preset: story, "
                                                  "focused, wild, greedy.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a run in --out, reusing "
                                         "its saved stories.")] = False,
    no_reference: Annotated[bool, typer.Option("--no-reference", help="Only the model's "
                                               "stories are candidates (by default the "
                                               "prompt's own curated story is one too, judged "
                                               "the same way).")] = False,
    config: Annotated[Optional[Path], config_option("my-pairs.yaml")] = None,
    sets: Annotated[Optional[list[str]], set_option("generation.max_tokens=512")] = None,
) -> None:
    """Make preference pairs from a model's own stories, judged by the house-style checks.

    For each chosen train and val prompt of a curated directory (house-style prompts first,
    spread over the styles, and a share without), the model writes k stories with fixed seeds;
    storyteller/judge.py scores each (house style, stopped by itself, length, repetition, and
    hollow stories that pass a check emptily score lowest); the best and the worst story of a
    prompt become a pair when their scores differ by at least --min-margin. The prompt's own
    story from the curated data is a candidate too (judged the same way): where the model never
    keeps a style, it is the one that does. --no-reference leaves it out.

    Writes OUT/ as a curated preference directory (train/val/test.jsonl, rejects.jsonl,
    manifest.json, report.md) for storyteller finetune's preference objectives, and
    OUT/samples.jsonl with every story and its judgement. Killed? Run it again with --resume.
    Manual: docs/pairs.md.

    Examples:

      storyteller pairs --model runs/quickstart --data data/starter --out data/quickstart-pairs

      storyteller pairs -m runs/quickstart -d data/starter -o data/pairs-small -n 40 -k 6

      storyteller pairs -m quickstart --endpoint http://127.0.0.1:8000 -d data/starter -o data/served-pairs
    """
    from storyteller.config import load_config
    from storyteller.selfjudge.config import PairsConfig
    from storyteller.selfjudge.run import run

    cfg = load_config(PairsConfig, config, sets or [], {
        "model": ("--model", model), "data": ("--data", data), "out": ("--out", out),
        "prompts": ("--prompts", prompts), "min_margin": ("--min-margin", min_margin),
        "resume": ("--resume", True if resume else None),
        "with_reference": ("--no-reference", False if no_reference else None),
        "generation.samples": ("--samples", samples),
        "generation.endpoint": ("--endpoint", endpoint),
        "generation.engine": ("--endpoint", "endpoint" if endpoint else None),
        "generation.preset": ("--preset", preset),
    })
    result = run(cfg)
    typer.echo(str(result.out / "report.md"))
