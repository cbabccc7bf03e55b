"""The model being trained: base loading (full precision or 4-bit), adapters, precision choice,
NEFTune, and the story-only loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from storyteller.finetune.config import FinetuneConfig
from storyteller.finetune.data import IGNORE
from storyteller.models import cpu_has_native_bf16

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class PrecisionChoice:
    name: str  # fp32 | bf16 | fp16
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]


def choose_precision(requested: str, device: torch.device) -> PrecisionChoice:
    """The compute precision for `requested` on `device`, with the reason (logged in the run)."""
    if requested != "auto":
        return PrecisionChoice(requested, "set in the config")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", "the GPU supports bf16")
        return PrecisionChoice("fp16", "the GPU has no bf16")
    if cpu_has_native_bf16():
        return PrecisionChoice("bf16", "the CPU has native bf16 (AVX512-BF16 or AMX)")
    return PrecisionChoice("fp32", "the CPU has no native bf16 (bf16 would be emulated, "
                                   "about 100x slower here: see bench/matmul.py)")


def load_base(cfg: FinetuneConfig, path, precision: PrecisionChoice, device: torch.device):
    """The base model in fp32 master weights (autocast does the low-precision compute), or in
    4-bit NF4 for QLoRA."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    attention = cfg.model.attention
    if attention == "packed":
        from storyteller.finetune.attention import register

        attention = register()
    kwargs = {"attn_implementation": attention, "dtype": torch.float32}
    if cfg.model.method == "qlora":
        compute = precision if cfg.qlora.compute_dtype == "auto" else \
            PrecisionChoice(cfg.qlora.compute_dtype, "")
        storage = {"uint8": torch.uint8, "bf16": torch.bfloat16, "fp32": torch.float32}
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=cfg.qlora.quant_type,
            bnb_4bit_use_double_quant=cfg.qlora.double_quant,
            bnb_4bit_compute_dtype=compute.dtype,
            bnb_4bit_quant_storage=storage[cfg.qlora.quant_storage])
        if device.type == "cuda":
            kwargs["device_map"] = {"": device.index or 0}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.config.use_cache = False
    return model


def enable_checkpointing(model) -> None:
    """Recompute activations in the backward pass (newer transformers renamed the method)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def apply_method(model, cfg: FinetuneConfig):
    """Wrap the base for the configured method: LoRA / QLoRA adapters, or every weight trainable."""
    if cfg.model.method == "full":
        if cfg.model.gradient_checkpointing:
            enable_checkpointing(model)
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.model.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.model.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cfg.model.gradient_checkpointing:
        enable_checkpointing(model)
        model.enable_input_require_grads()
    lora = cfg.lora
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=lora.target_modules, use_rslora=lora.rslora,
                             use_dora=lora.dora, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, peft_config)


def causal_lm(model):
    """The *ForCausalLM module under an adapter wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def add_neftune(model, alpha: float):
    """NEFTune: uniform noise on the input embeddings while training. Returns the hook handle."""
    embeddings = causal_lm(model).get_input_embeddings()

    def hook(module, inputs, output):
        if not module.training:
            return output
        # Noise per real token: the packed sequence length stands in for the pair length, as
        # NEFTune's reference implementation does with padded batches.
        length, dim = output.shape[-2], output.shape[-1]
        scale = alpha / (length * dim) ** 0.5
        return output + torch.zeros_like(output).uniform_(-scale, scale)

    return embeddings.register_forward_hook(hook)


class StoryLoss(torch.nn.Module):
    """The model with a forward that returns the summed cross-entropy over the supervised tokens
    of a batch, and their count. Distributed wrappers (DDP, FSDP) wrap this module, so gradient
    synchronisation sees the real forward.

    The output layer runs only on positions whose next token is supervised, in chunks: the
    full [tokens x vocabulary] logits of a long packed batch would dominate memory, and prompt
    positions need no logits at all."""

    def __init__(self, model, chunk: int = 2048):
        super().__init__()
        self.model = model
        self.chunk = chunk

    def forward(self, input_ids, position_ids, labels, attention_mask=None, cu_seq_lens_q=None):
        lm = causal_lm(self.model)
        extra = {"cu_seq_lens_q": cu_seq_lens_q} if cu_seq_lens_q is not None else {}
        hidden = lm.model(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids, use_cache=False, **extra).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != IGNORE
        hidden = hidden[:, :-1][keep]
        targets = targets[keep]
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, targets.numel(), self.chunk):
            logits = lm.lm_head(hidden[start:start + self.chunk]).float()
            total = total + torch.nn.functional.cross_entropy(
                logits, targets[start:start + self.chunk], reduction="sum")
        return total, keep.sum()


def sequence_logps(model, input_ids, position_ids, labels, segments, cu_seq_lens_q,
                   chunk: int = 2048):
    """Summed log-probability of the supervised tokens of each sequence of a row laid end to
    end (prefdata.collate_items), and each sequence's count of them: two float tensors of
    length `segments.max() + 1`. Like StoryLoss, the output layer runs only where a story
    token is predicted. A sequence's first token is never supervised (its prompt comes first),
    so no prediction crosses from one sequence into the next."""
    lm = causal_lm(model)
    hidden = lm.model(input_ids=input_ids, position_ids=position_ids, use_cache=False,
                      cu_seq_lens_q=cu_seq_lens_q).last_hidden_state
    targets = labels[0, 1:]
    keep = targets != IGNORE
    hidden = hidden[0, :-1][keep]
    targets = targets[keep]
    owner = segments[1:][keep]
    count = int(segments.max().item()) + 1
    pieces = []
    for start in range(0, targets.numel(), chunk):
        logits = lm.lm_head(hidden[start:start + chunk]).float()
        pieces.append(-torch.nn.functional.cross_entropy(
            logits, targets[start:start + chunk], reduction="none"))
    token_logps = torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)
    sums = token_logps.new_zeros(count).index_add(0, owner, token_logps)
    tokens = token_logps.new_zeros(count).index_add(0, owner, torch.ones_like(token_logps))
    return sums, tokens


class PreferenceLoss(torch.nn.Module):
    """The model with a forward that returns a preference objective summed over the items of a
    batch, their count and the batch's reward statistics (preference.STATS): the same
    (sum, count) StoryLoss returns, so the loop normalises per step over items as it does over
    tokens, and distributed wrappers see the real forward."""

    def __init__(self, model, objective: str, settings):
        super().__init__()
        self.model = model
        self.objective = objective
        self.settings = settings
        self.last_eval = None  # the statistics of the latest evaluate_loss pass (loop.py)

    def forward(self, input_ids, position_ids, labels, segments, cu_seq_lens_q, item_labels,
                reference=None):
        from storyteller.finetune import preference as pref

        sums, tokens = sequence_logps(self.model, input_ids, position_ids, labels, segments,
                                      cu_seq_lens_q)
        logps, counts = sums.view(-1, 2), tokens.view(-1, 2)
        p = self.settings
        if reference is not None:
            reference = reference.to(logps.device, logps.dtype)
        if self.objective == "dpo":
            out = pref.dpo_loss(logps[:, 0], logps[:, 1], reference[:, 0], reference[:, 1],
                                p.beta, p.label_smoothing, counts[:, 0], p.sft_weight)
        elif self.objective == "kto":
            out = pref.kto_loss(logps[:, 0], reference[:, 0], item_labels.to(logps.device),
                                logps[:, 1], reference[:, 1], p.beta, p.desirable_weight,
                                p.undesirable_weight)
        elif self.objective == "orpo":
            out = pref.orpo_loss(logps[:, 0], logps[:, 1], counts[:, 0], counts[:, 1],
                                 p.orpo_lambda)
        else:
            out = pref.simpo_loss(logps[:, 0], logps[:, 1], counts[:, 0], counts[:, 1], p.beta,
                                  p.simpo_gamma, p.label_smoothing, p.sft_weight)
        n = torch.tensor(logps.shape[0], device=logps.device)
        return out.loss.sum(), n, out.stats.to(logps.device)


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The trainable weights by name: what a checkpoint must hold to restore the model."""
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters()
            if p.requires_grad}


def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [name for name, p in params.items() if p.requires_grad and name not in state]
    if missing:
        raise KeyError(f"checkpoint lacks {len(missing)} trainable weights, e.g. {missing[0]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
