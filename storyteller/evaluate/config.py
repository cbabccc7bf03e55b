"""The evaluate stage's configuration (every option of `storyteller evaluate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from storyteller.config import require
from storyteller.sampling import PRESETS


@dataclass
class GenerationConfig:
    # A named sampling preset (storyteller.sampling): story, focused, wild, greedy.
    preset: str = "story"
    # Stories per prompt and model; each has its own seed.
    samples: int = 1
    # Longest story in tokens (OpenAI's max_tokens).
    max_tokens: int = 1024
    # Prompts per batch for in-process generation.
    batch_size: int = 8
    # auto: vLLM on a GPU where it is installed, else in-process transformers; endpoint: an
    # OpenAI-compatible server (--endpoint), which is asked for each model by its name there.
    engine: Literal["auto", "transformers", "vllm", "endpoint"] = "auto"
    endpoint: str = ""
    # Seconds to wait for one endpoint answer.
    timeout: float = 600.0
    # Share of the GPU's memory the vLLM engine may take. Evaluate holds one model at a time,
    # but the perplexity pass (transformers) shares the GPU with it, so not vLLM's usual 0.9.
    gpu_memory_utilization: float = 0.5

    def __post_init__(self):
        require(self.preset in PRESETS, "preset", f"must be one of: {', '.join(PRESETS)}")
        require(self.samples >= 1, "samples", "must be at least 1")
        require(self.max_tokens >= 1, "max_tokens", "must be at least 1")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")
        require(0 < self.gpu_memory_utilization <= 1, "gpu_memory_utilization", "must be in (0, 1]")
        require(self.engine != "endpoint" or bool(self.endpoint), "endpoint",
                "the endpoint engine needs generation.endpoint (or --endpoint URL)")


@dataclass
class MetricsConfig:
    perplexity: bool = True
    relevance: bool = True
    # Memorisation: generated word n-grams of this size found in the training stories.
    memorisation_n: int = 8
    bootstrap_resamples: int = 2000

    def __post_init__(self):
        require(self.memorisation_n >= 2, "memorisation_n", "must be at least 2")
        require(self.bootstrap_resamples >= 100, "bootstrap_resamples", "must be at least 100")


@dataclass
class EvaluateConfig:
    name: str = "evaluation"
    seed: int = 0
    # The model to evaluate: a run directory or its final/, a merged model directory, or a
    # model name (smollm2-135m, a local path, a hub id). --model overrides it.
    model: str = ""
    # The model to compare with. "auto": the base of an adapter (none for a full model);
    # "" for no comparison. --baseline overrides it.
    baseline: str = "auto"
    # The curated data directory whose test split is evaluated (train is read for the tagger
    # and memorisation). --data overrides it.
    data: str = "data/starter"
    split: Literal["test", "val"] = "test"
    # Evaluate at most this many prompts (0: all), taken evenly across genres. --limit.
    limit: int = 0
    # Only prompts of these kinds (premise, title, opening, continuation); empty: all.
    kinds: list[str] = field(default_factory=list)
    # Where the report goes. --out overrides it.
    out: str = "runs/{name}"
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # Sample stories shown per genre in the report.
    samples_per_genre: int = 1

    def __post_init__(self):
        require(bool(self.name.strip()), "name", "must not be empty")
        require(self.limit >= 0, "limit", "must not be negative")
        require(self.samples_per_genre >= 0, "samples_per_genre", "must not be negative")
