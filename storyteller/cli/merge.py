"""`storyteller merge`: a run's adapter merged into its full-precision base, verified."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from storyteller.cli.guard import guarded


@guarded
def merge(
    run: Annotated[str, typer.Option("--run", "-r", help="The run directory (runs/NAME) or its "
                                     "final/.", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Model directory to write "
                                                "(default: models/NAME).")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Curated directory whose "
                                                 "test split verifies the merge (default: the "
                                                 "run's own, from run.json).")] = None,
    logits_atol: Annotated[float, typer.Option("--logits-atol", help="Largest allowed |Δlogit| "
                                               "between merged and base + adapter.")] = 1e-3,
    perplexity_rtol: Annotated[float, typer.Option("--perplexity-rtol", help="Largest allowed "
                                                   "relative held-out perplexity change.")] = 0.005,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out (only "
                                        "after the new one passes).")] = False,
) -> None:
    """Merge a run's adapter into its full-precision base and write a standalone model directory.

    The base is loaded in fp32 (never merged into 4-bit weights, also for QLoRA runs). Before the
    directory is published, the merged copy is reloaded from disk and checked against base +
    adapter on held-out prompts: logits within --logits-atol, identical greedy continuations,
    held-out perplexity within --perplexity-rtol. Results go to OUT/verification.json; a failed
    check exits 1, writes RUN/merge-verification.json and leaves no model directory behind.

    The directory holds safetensors weights, tokenizer, chat template, generation_config.json
    with every stop id, storyteller.json (base, control schema, genres, styles) and a model card.

    Manual: docs/merge.md.

    Examples:

      storyteller merge --run runs/quickstart

      storyteller merge --run runs/fables --out models/fables --data data/fables
    """
    from storyteller.console import console, steps
    from storyteller.merge import Tolerances, merge as merge_run

    run_path = Path(run)
    name = run_path.parent.name if run_path.name == "final" else run_path.name
    target = out or Path("models") / name
    with steps() as progress:
        result = merge_run(run, target, data=data, force=force, steps=progress,
                           tolerances=Tolerances(logits_atol=logits_atol,
                                                 perplexity_rtol=perplexity_rtol))
    for check in result.verification["checks"]:
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        measured = check["measured"]
        shown = f"{measured:.3g}" if isinstance(measured, float) else measured
        console.print(f"{mark} {check['name']}: {shown} (limit {check['limit']}) — "
                      f"{check['detail']}")
    if not result.passed:
        typer.echo(f"error: {run}: the merged model failed verification; nothing was written "
                   f"(details: {result.verification_path})", err=True)
        raise typer.Exit(1)
    typer.echo(str(result.out))
