"""`storyteller improve`: self-judged pairs and studio preferences → preference tuning →
evaluation against the run it came from → merged and served only if it is better."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from storyteller.cli.guard import guarded
from storyteller.cli.options import set_option


@guarded
def improve(
    run: Annotated[Path, typer.Option("--run", "-r", help="The fine-tuned run to improve "
                                      "(runs/NAME, written by storyteller finetune).")],
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Its curated SFT data "
                                                 "(default: what the run was trained on); "
                                                 "train/val prompts are sampled, test is "
                                                 "evaluated.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where every stage writes "
                                                "(default: runs/NAME-OBJECTIVE).")] = None,
    objective: Annotated[str, typer.Option("--objective", help="dpo (pairs), kto (thumbs), "
                                           "orpo or simpo.")] = "dpo",
    config: Annotated[Path, typer.Option("--config", "-c", help="The preference-tuning config.")
                      ] = Path("configs/finetune/preference.yaml"),
    samples: Annotated[int, typer.Option("--samples", "-k", help="Stories per prompt the "
                                         "pairs are chosen from.")] = 4,
    prompts: Annotated[int, typer.Option("--prompts", "-n", help="At most N train prompts, "
                                         "house styles first (0: all; each is k stories to "
                                         "write).")] = 48,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Longest story when sampling "
                                            "pairs, in tokens.")] = 640,
    library: Annotated[Optional[Path], typer.Option("--library", help="A studio library whose "
                                                    "stars, picks and edits join the pairs.")
                       ] = None,
    eval_limit: Annotated[int, typer.Option("--eval-limit", help="Evaluate at most N test "
                                            "prompts (0: all).")] = 0,
    models: Annotated[Path, typer.Option("--models", help="Where an accepted model is "
                                         "merged.")] = Path("models"),
    endpoint: Annotated[Optional[str], typer.Option("--endpoint", help="Hand an accepted "
                                                    "model to this running storyteller serve "
                                                    "(it switches without a restart).")] = None,
    sets: Annotated[Optional[list[str]], set_option("preference.beta=0.2")] = None,
    eval_config: Annotated[Path, typer.Option("--eval-config", help="The evaluation's config "
                                              "(3 stories per test prompt by default).")
                           ] = Path("configs/evaluate/improve.yaml"),
    eval_sets: Annotated[Optional[list[str]], typer.Option(
        "--eval-set", help="KEY=VALUE for the evaluation (storyteller evaluate's config), "
                           "e.g. --eval-set generation.samples=1")] = None,
) -> None:
    """Make a run keep its house styles better, from its own stories and your judgements.

    1. samples k stories per training prompt from the run, scores each with the house-style
       checks (and stop, length, repetition, hollow-style checks) and keeps best-vs-worst
       pairs (storyteller pairs); adds the studio's pairs when --library is given;
    2. preference-tunes the run's adapter on them (storyteller finetune, --from the run);
    3. evaluates new against old on the test prompts, with 95% intervals;
    4. merges and verifies the new model, and hands it to --endpoint, only if house style
       improved beyond its interval and perplexity, stop rate, diversity, memorisation and
       hollow style did not get worse beyond theirs.

    Everything lands in OUT/ (pairs/, run/, evaluation/, improve.json); a killed improve
    continues where it stopped when run again. Exit code 3: evaluated, not handed over (the
    reason is printed and in improve.json). Manual: docs/finetune.md (Improve).

    Examples:

      storyteller improve --run runs/quickstart

      storyteller improve --run runs/quickstart --library ~/.local/share/storyteller/library.sqlite

      storyteller improve -r runs/fables --objective kto --endpoint http://127.0.0.1:8000
    """
    from storyteller.improve.run import ImproveOptions, run as improve_run

    result = improve_run(ImproveOptions(
        run=run, data=data, out=out, objective=objective, finetune_config=config,
        finetune_sets=sets or [], samples=samples, prompts=prompts, max_tokens=max_tokens,
        library=library, eval_limit=eval_limit, eval_config=eval_config,
        eval_sets=eval_sets or [], models=models,
        endpoint=endpoint))
    typer.echo(str(result.model) if result.model else str(result.out / "improve.json"))
    if not result.decision.accept:
        raise typer.Exit(3)
