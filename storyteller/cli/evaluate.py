"""`storyteller evaluate`: a tuned model against its base on the test prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from storyteller.cli.guard import guarded
from storyteller.cli.options import config_option, set_option


@guarded
def evaluate(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="The model to evaluate: "
                                                 "a run directory (or its final/), a merged "
                                                 "model directory or a model name.")] = None,
    baseline: Annotated[Optional[str], typer.Option("--baseline", "-b", help="The model to "
                                                    "compare with (default: the base of an "
                                                    "adapter). Pass '' for none.")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Curated data directory; "
                                                 "its test split is evaluated.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report directory.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", help="Evaluate at most N "
                                                 "prompts, spread across genres.")] = None,
    endpoint: Annotated[Optional[str], typer.Option("--endpoint", help="Generate through an "
                                                    "OpenAI-compatible server at this URL; "
                                                    "--model/--baseline are its model "
                                                    "names.")] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Sampling preset: story, "
                                                  "focused, wild, greedy.")] = None,
    samples: Annotated[Optional[int], typer.Option("--samples", help="Stories per prompt and "
                                                   "model.")] = None,
    config: Annotated[Optional[Path], config_option("configs/evaluate/quickstart.yaml")] = None,
    sets: Annotated[Optional[list[str]], set_option("generation.max_tokens=512")] = None,
) -> None:
    """Compare a tuned model with its base on the test prompts: stories, metrics, report.

    Generates stories for the test split's prompts (fixed seeds, a named sampling preset;
    in-process on CPU, vLLM on a GPU, or through --endpoint), saves every generation with its
    settings, and scores them: held-out perplexity, distinct-n, self-BLEU, seq-rep-4, length and
    stop rate, prompt relevance, genre and house-style adherence, memorisation of training
    8-grams, ROUGE-L / BLEU (weak signals) and readability — each with a 95% bootstrap interval
    and the tuned − base difference.

    Writes OUT/generations.jsonl, metrics.json, report.md, report.html (self-contained) and
    plots/. Killed? Run the same command again: saved stories are reused.
    Manual: docs/evaluate.md.

    Examples:

      storyteller evaluate --model runs/quickstart --data data/starter --out runs/quickstart/evaluation

      storyteller evaluate -m runs/fables -b smollm2-135m -d data/fables -o reports/fables --limit 20

      storyteller evaluate -m quickstart --endpoint http://127.0.0.1:8000 -d data/starter -o reports/served
    """
    from storyteller.config import load_config
    from storyteller.evaluate.config import EvaluateConfig
    from storyteller.evaluate.run import run

    cfg = load_config(EvaluateConfig, config, sets or [], {
        "model": ("--model", model), "baseline": ("--baseline", baseline),
        "data": ("--data", data), "out": ("--out", out), "limit": ("--limit", limit),
        "generation.endpoint": ("--endpoint", endpoint),
        # An endpoint means the endpoint engine: a URL alone would be ignored by engine auto.
        "generation.engine": ("--endpoint", "endpoint" if endpoint else None),
        "generation.preset": ("--preset", preset), "generation.samples": ("--samples", samples),
    })
    result = run(cfg)
    typer.echo(str(result.out / "report.md"))
