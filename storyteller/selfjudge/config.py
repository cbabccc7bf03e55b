"""The configuration of `storyteller pairs` (every option of the command)."""

from __future__ import annotations

from dataclasses import dataclass, field

from storyteller.config import require
from storyteller.evaluate.config import GenerationConfig


@dataclass
class PairsGenerationConfig(GenerationConfig):
    # Stories per prompt: the candidates a pair is chosen from.
    samples: int = 4


@dataclass
class PairsConfig:
    # The model that writes: a run directory (or its final/), a merged model directory or a
    # model name; with an endpoint, its name there. --model.
    model: str = ""
    # The curated SFT data whose train and val prompts are sampled (test is never read). --data.
    data: str = ""
    # The preference directory to write; it must be empty unless resuming. --out.
    out: str = ""
    # Continue a killed run in `out`: stories in OUT/samples.jsonl with the same settings are
    # reused. --resume.
    resume: bool = False
    seed: int = 0
    # Train prompts to sample (0: all chosen ones); val gets the same share of its prompts.
    # --prompts.
    prompts: int = 0
    # At most this share of the prompts carry no house style: those pairs are judged only on
    # stopping, length and repetition, a weaker signal than a style check.
    plain_share: float = 0.25
    # Prompt kinds sampled: those whose answer is a whole story the judge can read.
    kinds: list[str] = field(default_factory=lambda: ["premise", "title", "opening"])
    # The smallest score difference between chosen and rejected. 0.1 lets any single failed
    # check (at least 0.12 apart) make a pair and no tie. --min-margin.
    min_margin: float = 0.1
    # Pairs per prompt: 1 is best vs worst; more adds best vs each other clearly worse story.
    pairs_per_prompt: int = 1
    # The prompt's own story from the curated data joins the candidates, judged like the
    # model's. Where the model never keeps a style (the quickstart kept no refrain in 18 tries),
    # no sample passes and every refrain prompt ties; the writer's story, which passes by
    # construction, then becomes the chosen one against the model's worst. false: only the
    # model's stories. --no-reference.
    with_reference: bool = True
    # Sampling and engine, as `storyteller evaluate` has them; `samples` is stories per prompt.
    generation: PairsGenerationConfig = field(default_factory=PairsGenerationConfig)

    def __post_init__(self):
        require(self.prompts >= 0, "prompts", "must not be negative (0: all)")
        require(0 <= self.plain_share < 1, "plain_share", "must be in [0, 1)")
        require(self.min_margin > 0, "min_margin", "must be above 0 (a pair needs a difference)")
        require(self.pairs_per_prompt >= 1, "pairs_per_prompt", "must be at least 1")
        require(self.generation.samples >= 2, "generation.samples",
                "must be at least 2 (a pair compares two stories of one prompt)")
