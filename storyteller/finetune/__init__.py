"""`storyteller finetune`: supervised fine-tuning of story models (QLoRA, LoRA or full)."""
