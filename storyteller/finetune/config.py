"""The finetune stage's configuration (every option of `storyteller finetune`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from storyteller.config import require

Method = Literal["qlora", "lora", "full"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]

# A neutral premise (no genre, no style): any story model can start from it.
DEFAULT_SAMPLE_PREMISE = ("A woman finds a key in her late father's coat and a note saying which "
                          "door it opens.")


@dataclass
class ModelConfig:
    # A name (smollm2-135m, tiny-random), a local directory or a hub id.
    base: str = "smollm2-135m"
    method: Method = "lora"
    # auto: bf16 autocast on a GPU with bf16 (fp16 otherwise) and on CPUs with native bf16
    # (AVX512-BF16 or AMX); fp32 on CPUs without it, where bf16 is emulated and far slower.
    precision: Precision = "auto"
    gradient_checkpointing: bool = False
    # packed: padding-free rows, attention pair by pair (fastest); sdpa / eager: padded batches
    # with a block-causal mask.
    attention: Literal["packed", "sdpa", "eager"] = "packed"


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # "all-linear": every linear layer of the transformer blocks (not the output layer).
    target_modules: str | list[str] = "all-linear"
    rslora: bool = False
    dora: bool = False

    def __post_init__(self):
        require(self.r >= 1, "r", "must be at least 1")
        require(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")


@dataclass
class QloraConfig:
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    # The dtype the 4-bit weights are de-quantised to for each matmul; auto follows
    # model.precision (bf16 where it is fast, fp32 on CPUs without native bf16).
    compute_dtype: Precision = "auto"
    # FSDP shards the quantised weights only when they are stored in the training dtype.
    quant_storage: Literal["uint8", "bf16", "fp32"] = "uint8"


@dataclass
class DataConfig:
    # The curated directory (storyteller curate's --out); --data overrides it.
    dir: str = "data/starter"
    max_length: int = 2048
    # Pack several pairs per sequence, attention kept inside each pair.
    pack: bool = True
    # Use only the first N training pairs after the seeded shuffle (0: all).
    max_train_pairs: int = 0
    # Only pairs of these kinds (premise, title, opening, continuation …); empty: all.
    kinds: list[str] = field(default_factory=list)
    # Read the training split lazily, file by file and line by line, instead of whole: for a
    # split (sharded or not) too large to hold in memory. Needs train.max_steps; with
    # max_train_pairs, the first N pairs of the split are used. Validation and test stay whole.
    streaming: bool = False
    # Streaming: pairs read, tokenised and packed together; their packs are shuffled together,
    # so a larger buffer mixes the data more, and memory holds one buffer.
    stream_buffer: int = 10000

    def __post_init__(self):
        require(self.max_length >= 16, "max_length", "must be at least 16")
        require(self.max_train_pairs >= 0, "max_train_pairs", "must not be negative")
        require(self.stream_buffer >= 1, "stream_buffer", "must be at least 1")


@dataclass
class TrainConfig:
    epochs: float = 1.0
    max_steps: int = 0  # 0: as many as `epochs` gives
    batch_size: int = 4  # sequences (packs) per micro-batch, per process
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = 0
    warmup_ratio: float = 0.03  # used when warmup_steps is 0
    max_grad_norm: float = 1.0  # 0: no clipping
    # NEFTune: uniform noise of scale alpha / sqrt(length * dim) on the input embeddings.
    neftune_alpha: float = 0.0

    def __post_init__(self):
        require(self.epochs > 0, "epochs", "must be positive")
        require(self.max_steps >= 0, "max_steps", "must not be negative")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")
        require(self.grad_accum >= 1, "grad_accum", "must be at least 1")
        require(self.lr > 0, "lr", "must be positive")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
                "must be two numbers in [0, 1)")
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)")
        require(self.neftune_alpha >= 0, "neftune_alpha", "must not be negative")


@dataclass
class EvalConfig:
    every_steps: int = 50  # 0: only at the end
    # Evaluate on at most this many validation pairs (0: all) — a fixed, seeded subset.
    max_pairs: int = 0
    # Stop when validation loss has not improved by min_delta for `patience` evaluations (0: never).
    patience: int = 0
    min_delta: float = 0.0
    # At the end, compare base and tuned story loss on the test split.
    test_at_end: bool = True
    batch_size: int = 4
    # At every evaluation the model being trained writes a story from this premise, greedily,
    # so the stories of successive steps differ only by what training changed: samples.jsonl
    # and TensorBoard's text tab. '' writes none.
    sample_prompt: str = DEFAULT_SAMPLE_PREMISE
    # The sample's length in tokens: enough to see the style take shape, little time on a CPU.
    sample_tokens: int = 160
    # Which evaluation's checkpoint is the best (kept, and final/ with checkpoint.final_from_best):
    # loss: the lowest validation loss. style: the most probe stories that keep their house style
    # (ties: more stories that end by themselves, then the lower loss). mixed: the most stories
    # that keep their style and end by themselves, less the hollow ones, among evaluations whose
    # validation loss is within select_margin of the lowest seen up to them (docs/finetune.md,
    # "Choosing the checkpoint by what it writes").
    select: Literal["loss", "style", "mixed"] = "loss"
    # mixed: how far (a fraction) above the lowest validation loss so far a checkpoint may be.
    select_margin: float = 0.03
    # The probe (storyteller/finetune/probe.py) runs at every evaluation when select is style or
    # mixed, or when this is true (its scores are then logged but choose nothing). Off by default
    # with select: loss: on a CPU it costs more than the validation loss.
    probe: bool = False
    # Validation prompts that ask for a house style, spread over the styles, and prompts without
    # one (their stories count in the stop and hollow rates).
    probe_styled: int = 8
    probe_plain: int = 2
    # Each probe story's length in tokens: a house style shows at the end (a moral, a refrain's
    # third time), so long enough for a short story to finish.
    probe_tokens: int = 320
    # 0: greedy. Above 0: sampled (top-p 0.95) with a fixed seed per prompt (from probe_seed and
    # the record's id), so two evaluations still differ only by the weights.
    probe_temperature: float = 0.0
    probe_seed: int = 0

    def __post_init__(self):
        require(self.every_steps >= 0, "every_steps", "must not be negative")
        require(self.patience >= 0, "patience", "must not be negative")
        require(self.sample_tokens >= 1, "sample_tokens", "must be at least 1")
        require(self.select_margin >= 0, "select_margin", "must not be negative")
        require(self.probe_styled >= 0, "probe_styled", "must not be negative")
        require(self.probe_plain >= 0, "probe_plain", "must not be negative")
        require(self.select == "loss" or self.probe_styled >= 1, "probe_styled",
                f"must be at least 1 with select: {self.select} (the probe's house-style prompts "
                "are what it selects by)")
        require(self.probe_styled + self.probe_plain >= 1 or not self.probing, "probe_styled",
                "the probe needs at least one prompt (probe_styled + probe_plain)")
        require(self.probe_tokens >= 1, "probe_tokens", "must be at least 1")
        require(self.probe_temperature >= 0, "probe_temperature", "must not be negative")

    @property
    def probing(self) -> bool:
        """Whether each evaluation runs the probe."""
        return self.probe or self.select != "loss"


@dataclass
class CheckpointConfig:
    every_steps: int = 50  # 0: only at the end
    keep_last: int = 2
    keep_best: bool = True
    # final/ holds the best checkpoint's weights when validation ran, else the last.
    final_from_best: bool = True

    def __post_init__(self):
        require(self.every_steps >= 0, "every_steps", "must not be negative")
        require(self.keep_last >= 1, "keep_last", "must be at least 1")


@dataclass
class LogConfig:
    every_steps: int = 1
    tensorboard: bool = True
    plots: bool = True


Objective = Literal["sft", "dpo", "kto", "orpo", "simpo"]


@dataclass
class PreferenceConfig:
    """Settings of the preference objectives (objective dpo, kto, orpo or simpo); the names
    and conventions are TRL's, so a run here and a TRL run with the same values compare."""

    # How far the policy may move from the reference: the reward is beta x (policy - reference)
    # log-probability of a whole story (summed over its tokens). SimPO applies it to the
    # per-token average log-probability instead, where the SimPO paper uses 2.0 to 2.5.
    beta: float = 0.1
    # Conservative DPO / SimPO: the share of pairs assumed to be labelled the wrong way round.
    label_smoothing: float = 0.0
    # KTO: weights of the good (label true) and bad (label false) stories; keep
    # desirable_weight x good / (undesirable_weight x bad) between 1 and 4/3 (KTO paper).
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    # SimPO: the target reward margin (TRL's simpo_gamma).
    simpo_gamma: float = 0.5
    # ORPO: the weight of the odds-ratio term beside the chosen story's loss (TRL's beta).
    orpo_lambda: float = 0.1
    # DPO / SimPO: add this x the chosen story's per-token loss (RPO): keeps the chosen stories
    # likely while the margin grows. 0: none.
    sft_weight: float = 0.0

    def __post_init__(self):
        require(self.beta > 0, "beta", "must be positive")
        require(0 <= self.label_smoothing < 0.5, "label_smoothing", "must be in [0, 0.5)")
        require(self.desirable_weight > 0, "desirable_weight", "must be positive")
        require(self.undesirable_weight > 0, "undesirable_weight", "must be positive")
        require(self.simpo_gamma >= 0, "simpo_gamma", "must not be negative")
        require(self.orpo_lambda > 0, "orpo_lambda", "must be positive")
        require(self.sft_weight >= 0, "sft_weight", "must not be negative")


@dataclass
class FinetuneConfig:
    name: str = "default"
    seed: int = 0
    # The run directory; {name} is replaced by the config's name. --out overrides it.
    out: str = "runs/{name}"
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    qlora: QloraConfig = field(default_factory=QloraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    # sft: learn to write the curated stories. dpo / kto / orpo / simpo: learn which of two
    # stories is preferred, from a curated preference directory (docs/finetune.md).
    objective: Objective = "sft"
    # A finished run directory (--from): continue its final/ adapter, on its base model, and
    # measure preferences against it as it was. '': start from model.base.
    start_from: str = ""
    preference: PreferenceConfig = field(default_factory=PreferenceConfig)

    def __post_init__(self):
        require(bool(self.name.strip()), "name", "must not be empty")
        if self.objective != "sft":
            # A story pair is one row of whole sequences, attention kept inside each story.
            require(self.model.attention == "packed", "model.attention",
                    f"must be packed for objective {self.objective} (preference sequences are "
                    "laid end to end with attention kept inside each)")
            require(not self.data.streaming, "data.streaming",
                    f"is not supported with objective {self.objective}: the reference "
                    "log-probabilities are computed for the whole split before the first step")
        # A streamed split's length is unknown until it has been read to the end, so the run's
        # length (and the learning-rate schedule with it) cannot come from train.epochs.
        require(not self.data.streaming or self.train.max_steps > 0, "train.max_steps",
                "must be set (above 0) when data.streaming is true: a streamed split's size is "
                "not known in advance, so epochs cannot give the number of steps")

    @property
    def preference_run(self) -> bool:
        return self.objective != "sft"

    @property
    def adapter(self) -> bool:
        return self.model.method in ("lora", "qlora")
