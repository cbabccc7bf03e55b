"""The `storyteller` command: parse, load config, call the stage's run; errors → exit 1.

Every problem is printed on one line (where: what (what to do)); no traceback reaches users
unless STORYTELLER_DEBUG is set."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from storyteller.errors import StorytellerError

app = typer.Typer(
    name="storyteller",
    help="Curate story corpora and build story-writing models in your genres and styles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown joins the lines of a docstring paragraph, so help text wraps to the terminal.
    rich_markup_mode="markdown",
)


def fail(error: StorytellerError) -> None:
    for problem in error.problems:
        typer.echo(f"error: {problem}", err=True)
    raise typer.Exit(1)


def guarded(action):
    """Run `action`, turning known errors into one line each and exit 1."""
    try:
        return action()
    except StorytellerError as error:
        fail(error)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130)
    except Exception as error:  # an internal fault: one line unless debugging
        if os.environ.get("STORYTELLER_DEBUG"):
            raise
        typer.echo(f"error: internal error: {type(error).__name__}: {error} "
                   f"(set STORYTELLER_DEBUG=1 to see the traceback)", err=True)
        raise typer.Exit(1)


SET_HELP = "Override a config key, e.g. --set dedup.threshold=0.6 (repeatable)."


@app.command()
def curate(
    paths: List[str] = typer.Argument(..., help="Input files or folders (or a datasets hub id).",
                                      show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory for the curated dataset."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="YAML config, e.g. configs/curate/default.yaml."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f",
                                      help="Input format (default: detected per file): jsonl, json, "
                                           "csv, parquet, folder, text, gutenberg, tinystories, "
                                           "writingprompts, datasets."),
    seed: Optional[int] = typer.Option(None, help="Seed for splits and augmentation."),
    overrides: List[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Turn story files into clean, deduplicated, leakage-safe prompt–story pairs.

    Writes OUT/train.jsonl, val.jsonl, test.jsonl, rejects.jsonl, manifest.json and report.md
    with charts. Same inputs and seed give byte-identical outputs.

    Examples:

      storyteller curate corpora/starter --out data/starter

      storyteller curate stories.csv --format csv --set source.fields.text=body --out data/mine
    """
    from storyteller.config import load_config
    from storyteller.curate.config import CurateConfig
    from storyteller.curate.run import run

    from storyteller.curate.sources import FORMATS
    from storyteller.errors import ConfigError

    extra = list(overrides)
    if fmt is not None:
        if fmt not in FORMATS:
            fail(ConfigError.at("--format", f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}"))
        extra.append(f"source.format={fmt}")
    if seed is not None:
        extra.append(f"seed={seed}")

    def action():
        cfg = load_config(CurateConfig, config, extra)
        run(paths, out, cfg)

    guarded(action)


@app.command()
def finetune(
    config: Path = typer.Option(Path("configs/finetune/quickstart.yaml"), "--config", "-c",
                                help="YAML config, e.g. configs/finetune/quickstart.yaml."),
    data: Optional[Path] = typer.Option(None, "--data", "-d",
                                        help="Curated data directory (storyteller curate's --out); "
                                             "overrides data.dir."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Run directory (default: runs/<name>); overrides out."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after N optimizer steps."),
    save_steps: Optional[int] = typer.Option(None, "--save-steps",
                                             help="Write a checkpoint every N steps."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue from the run directory's newest complete checkpoint."),
    overrides: List[str] = typer.Option([], "--set", help="Override a config key, e.g. --set "
                                                          "lora.r=8 --set train.lr=1e-4 (repeatable)."),
) -> None:
    """Fine-tune a story model on curated pairs: QLoRA, LoRA or full.

    Writes RUN_DIR/ with config.yaml, run.json (data hash, git revision, environment),
    metrics.jsonl, tensorboard/, plots/, checkpoints/step-N/ (each with a COMPLETE marker) and
    final/ (adapter or weights, tokenizer, chat template, storyteller.json, model card).
    Killed or interrupted? Run the same command with --resume.

    Examples:

      storyteller finetune --config configs/finetune/quickstart.yaml --data data/starter

      storyteller finetune -c configs/finetune/qlora.yaml --set lora.r=32 --out runs/fables

      storyteller finetune -c configs/finetune/quickstart.yaml --resume
    """
    from storyteller.config import load_config
    from storyteller.train.config import FinetuneConfig

    extra = list(overrides)
    for key, value in (("data.dir", data), ("out", out), ("train.max_steps", max_steps),
                       ("checkpoint.every_steps", save_steps)):
        if value is not None:
            extra.append(f"{key}={value}")

    def action():
        from storyteller.train.run import run

        cfg = load_config(FinetuneConfig, config, extra)
        result = run(cfg, resume=resume)
        typer.echo(str(result.final))

    guarded(action)


@app.command()
def evaluate(
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="The model to evaluate: a run directory (or its final/), "
                                             "a merged model directory or a model name."),
    baseline: Optional[str] = typer.Option(None, "--baseline", "-b",
                                           help="The model to compare with (default: the base of "
                                                "an adapter). Pass '' for none."),
    data: Optional[Path] = typer.Option(None, "--data", "-d",
                                        help="Curated data directory; its test split is evaluated."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report directory."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n",
                                        help="Evaluate at most N prompts, spread across genres."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint",
                                           help="Generate through an OpenAI-compatible server at "
                                                "this URL; --model/--baseline are its model names."),
    preset: Optional[str] = typer.Option(None, "--preset",
                                         help="Sampling preset: story, focused, wild, greedy."),
    samples: Optional[int] = typer.Option(None, "--samples", help="Stories per prompt and model."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="YAML config, e.g. configs/evaluate/quickstart.yaml."),
    overrides: List[str] = typer.Option([], "--set", help="Override a config key, e.g. --set "
                                                          "generation.max_new_tokens=512 (repeatable)."),
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

    Examples:

      storyteller evaluate --model runs/quickstart --data data/starter --out runs/quickstart/evaluation

      storyteller evaluate -m runs/fables -b smollm2-135m -d data/fables -o reports/fables --limit 20

      storyteller evaluate -m quickstart --endpoint http://127.0.0.1:8000 -d data/starter -o reports/served
    """
    from storyteller.config import load_config
    from storyteller.evaluate.config import EvaluateConfig

    extra = list(overrides)
    for key, value in (("model", model), ("baseline", baseline), ("data", data), ("out", out),
                       ("limit", limit), ("generation.endpoint", endpoint),
                       ("generation.preset", preset), ("generation.samples", samples)):
        if value is not None:
            extra.append(f"{key}={value}")
    if endpoint:
        extra.append("generation.engine=endpoint")

    def action():
        from storyteller.evaluate.run import run

        cfg = load_config(EvaluateConfig, config, extra)
        result = run(cfg)
        typer.echo(str(result.out / "report.md"))

    guarded(action)


@app.command()
def version() -> None:
    """Print storyteller's version."""
    import storyteller

    typer.echo(storyteller.__version__)


from storyteller.evaluate.ratings.cli import ratings_app  # noqa: E402

app.add_typer(ratings_app, name="ratings")

from storyteller.studio.cli import library_app  # noqa: E402

app.add_typer(library_app, name="library")

from storyteller.serve.cli import register as register_serving  # noqa: E402

register_serving(app)

from storyteller.studio.launch import register as register_studio  # noqa: E402

register_studio(app)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
