"""`storyteller finetune`: supervised fine-tuning (QLoRA, LoRA or full) on curated pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from storyteller.cli.guard import guarded
from storyteller.cli.options import set_option


@guarded
def finetune(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config, e.g. "
                                         "configs/finetune/quickstart.yaml.")
                      ] = Path("configs/finetune/quickstart.yaml"),
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Curated data directory "
                                                 "(storyteller curate's --out); overrides "
                                                 "data.dir.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default: "
                                                "runs/<name>); overrides out.")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after N "
                                                     "optimizer steps.")] = None,
    save_steps: Annotated[Optional[int], typer.Option("--save-steps", help="Write a checkpoint "
                                                      "every N steps.")] = None,
    start_from: Annotated[Optional[Path], typer.Option("--from", help="A finished run directory: "
                                                       "continue its final/ adapter on its base "
                                                       "(preference tuning after SFT); sets "
                                                       "start_from.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run directory's "
                                         "newest complete checkpoint.")] = False,
    sets: Annotated[Optional[list[str]], set_option("lora.r=8 --set train.lr=1e-4")] = None,
) -> None:
    """Fine-tune a story model on curated pairs (QLoRA, LoRA or full), or on preferences (DPO, KTO, ORPO, SimPO).

    Writes RUN_DIR/ with config.yaml, run.json (data hash, git revision, environment),
    metrics.jsonl, tensorboard/, plots/, checkpoints/step-N/ (each with a COMPLETE marker) and
    final/ (adapter or weights, tokenizer, chat template, storyteller.json, model card).
    Killed or interrupted? Run the same command with --resume. Manual: docs/finetune.md.

    Examples:

      storyteller finetune --config configs/finetune/quickstart.yaml --data data/starter

      storyteller finetune -c configs/finetune/qlora.yaml --set lora.r=32 --out runs/fables

      storyteller finetune -c configs/finetune/quickstart.yaml --resume

      storyteller finetune -c configs/finetune/preference.yaml --from runs/quickstart --data data/prefs
    """
    from storyteller.config import load_config
    from storyteller.finetune.config import FinetuneConfig
    from storyteller.finetune.run import run

    cfg = load_config(FinetuneConfig, config, sets or [],
                      {"data.dir": ("--data", data), "out": ("--out", out),
                       "train.max_steps": ("--max-steps", max_steps),
                       "checkpoint.every_steps": ("--save-steps", save_steps),
                       "start_from": ("--from", str(start_from) if start_from else None)})
    result = run(cfg, resume=resume)
    typer.echo(str(result.final))
