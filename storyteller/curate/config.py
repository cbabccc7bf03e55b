"""The curate stage's configuration (every option of `storyteller curate`)."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Literal

from storyteller.config import require
from storyteller.curate.records import META_KEYS

Format = Literal["auto", "jsonl", "json", "csv", "parquet", "folder", "text", "gutenberg",
                 "tinystories", "writingprompts", "datasets", "docx", "odt", "rtf", "epub",
                 "html"]
# The pipeline names a record's columns can be mapped to with source.fields.
FIELD_NAMES = ("text", *META_KEYS)


def field_problem(value: str | list[str]) -> str | None:
    """Why a source.fields value cannot name columns, or None: a column, a list of columns
    (joined with a space) or a template with {column} placeholders."""
    if isinstance(value, list):
        if not value:
            return "must name at least one column"
        return "every item must name a column" if any(not v.strip() for v in value) else None
    if not value.strip():
        return "must name a column"
    try:
        placeholders = [name for _, name, _, _ in string.Formatter().parse(value)
                        if name is not None]
    except ValueError as exc:
        return f"not a valid template: {exc} (write {{{{ or }}}} for a literal brace)"
    if any(not name.strip() for name in placeholders):
        return "a template's {} must name a column, as in {sentence1}"
    return None


@dataclass
class SourceConfig:
    format: Format = "auto"
    # Pipeline field → the record's column, e.g. {text: body, title: name, moral: lesson}; a
    # list of columns is joined in order with a space ({text: [sentence1, sentence2]}), and a
    # string with {column} placeholders is a template ({text: "{setup}\n\n{ending}"}).
    fields: dict[str, str | list[str]] = field(default_factory=dict)
    encoding: str = "auto"
    separator: Literal["auto", "blank-lines", "line", "endoftext", "asterism", "regex"] = "auto"
    separator_regex: str = ""
    min_blank_lines: int = 2
    records_key: str = ""
    dataset_split: str = "train"
    # A record's moral (e.g. a fable's `lesson` field) becomes its last line, `Moral: …`.
    append_moral: bool = True

    def __post_init__(self):
        require(self.min_blank_lines >= 1, "min_blank_lines", "must be at least 1")
        for name, value in self.fields.items():
            require(name in FIELD_NAMES, f"fields.{name}",
                    f"not a field curate reads (one of: {', '.join(FIELD_NAMES)})")
            problem = field_problem(value)
            require(problem is None, f"fields.{name}", problem or "")


@dataclass
class CleanConfig:
    strip_html: bool = True
    strip_markdown: bool = True


@dataclass
class FilterConfig:
    min_words: int = 50
    max_words: int = 20000
    min_tokens: int = 0
    max_tokens: int = 0  # 0: no bound; long stories become continuation windows instead
    max_repeated_share: float = 0.5
    min_letter_share: float = 0.6
    # Above this share of bad records (malformed or filtered, duplicates not counted) the run
    # exits 1, after writing everything it could.
    max_bad_share: float = 0.5
    # Records whose tags (e.g. WritingPrompts' [NSFW], [Modpost]) include one of these are rejected.
    exclude_tags: list[str] = field(default_factory=lambda: ["nsfw", "modpost"])

    def __post_init__(self):
        require(0 <= self.max_bad_share <= 1, "max_bad_share", "must be between 0 and 1")
        require(0 <= self.max_repeated_share <= 1, "max_repeated_share", "must be between 0 and 1")
        require(self.min_words >= 0, "min_words", "must not be negative")


@dataclass
class DedupConfig:
    exact: bool = True
    near: bool = True
    threshold: float = 0.5
    num_perm: int = 128
    shingle_words: int = 3
    # drop: keep one representative per cluster; group: keep all, in the representative's group.
    near_action: Literal["drop", "group"] = "drop"

    def __post_init__(self):
        require(0 < self.threshold <= 1, "threshold", "must be in (0, 1]")
        require(self.num_perm >= 16, "num_perm", "must be at least 16")
        require(self.shingle_words >= 1, "shingle_words", "must be at least 1")


@dataclass
class TagConfig:
    # Tagged stories the classifier learns from, besides the tagged stories of the inputs.
    reference: list[str] = field(default_factory=lambda: ["corpora/starter"])
    min_confidence: float = 0.3
    # At most this many tagged input stories join the reference corpus to train the tagger
    # (chosen deterministically); more adds little and costs time on large corpora.
    max_training_stories: int = 1000


@dataclass
class PairsConfig:
    # document: continuations of a story so far with optional notes, direction and summary
    # (what the studio's document mode sends); see docs/curate.md.
    kinds: list[Literal["premise", "title", "opening", "document"]] = field(
        default_factory=lambda: ["premise", "title", "opening"])
    derive_premise: bool = True
    max_story_tokens: int = 1536
    context_words: int = 120
    opening_share: float = 0.2
    document_windows: int = 2          # document pairs cut from each story (at most)
    document_context_words: int = 600  # longest story so far quoted; each cut draws up to it
    document_passage_words: int = 180  # the passage the model writes
    notes_probability: float = 0.6     # share of document pairs with notes
    direction_probability: float = 0.6  # … with a direction
    summary_probability: float = 0.7   # … with a summary (where text precedes the window)
    summary_words: int = 120           # the summary's length

    def __post_init__(self):
        require(self.max_story_tokens >= 64, "max_story_tokens", "must be at least 64")
        require(0 < self.opening_share < 0.6, "opening_share", "must be between 0 and 0.6")
        require(self.document_windows >= 1, "document_windows", "must be at least 1")
        require(self.document_context_words >= 20, "document_context_words",
                "must be at least 20")
        require(self.document_passage_words >= 20, "document_passage_words",
                "must be at least 20")
        require(self.summary_words >= 10, "summary_words", "must be at least 10")
        for name in ("notes_probability", "direction_probability", "summary_probability"):
            require(0 <= getattr(self, name) <= 1, name, "must be between 0 and 1")


@dataclass
class AugmentConfig:
    ratio: float = 0.5  # variants per training pair, on average
    methods: list[Literal["rename", "phrasing", "controls", "window"]] = field(
        default_factory=lambda: ["rename", "phrasing", "controls", "window"])
    apply_to: list[Literal["train", "val", "test"]] = field(default_factory=lambda: ["train"])
    control_dropout: float = 0.3

    def __post_init__(self):
        require(self.ratio >= 0, "ratio", "must not be negative")
        require(0 <= self.control_dropout <= 1, "control_dropout", "must be between 0 and 1")


@dataclass
class SplitConfig:
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    stratify: Literal["genre", "none"] = "genre"

    def __post_init__(self):
        require(min(self.train, self.val, self.test) >= 0, "train", "fractions must not be negative")
        require(abs(self.train + self.val + self.test - 1.0) < 1e-6, "train",
                "train + val + test must add up to 1")


@dataclass
class ResourcesConfig:
    """How the work is run; never what it produces, so none of it enters the manifest."""

    # local: this machine, in this process and its worker pool. datatrove: every stage as
    # datatrove tasks (its local executor here; Slurm or Ray on a cluster, see docs/curate.md).
    executor: Literal["local", "datatrove"] = "local"
    # Intermediate files (one folder per stage and task): a local folder or any fsspec URL;
    # "" = OUT/.curate-work. Kept after a failed run so that --resume finishes it.
    work_dir: str = ""
    keep_work: bool = False      # keep the intermediate files after a successful run
    # On Slurm, each task's memory request (--mem-per-cpu, one CPU per task).
    memory_gb: float = 3.0
    # Tasks the inputs are divided into (whole files, in order); 0 = one per input file, at most
    # 256. More tasks: finer resume and more parallelism on an engine.
    tasks: int = 0
    # A split file above this many MiB is written as shards, train-00000-of-000NN.jsonl.
    shard_mb: float = 1024
    # With the datatrove executor: submit every stage to this Slurm partition, each task with
    # this time limit ("" = run them on this machine).
    slurm_partition: str = ""
    slurm_time: str = "04:00:00"

    def __post_init__(self):
        require(self.memory_gb >= 0.5, "memory_gb", "must be at least 0.5")
        require(self.tasks >= 0, "tasks", "must not be negative")
        require(self.shard_mb > 0, "shard_mb", "must be above 0")


@dataclass
class CurateConfig:
    name: str = "curated"
    seed: int = 0
    tokenizer: str = "smollm2-135m"
    source: SourceConfig = field(default_factory=SourceConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    tags: TagConfig = field(default_factory=TagConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    charts: bool = True
    workers: int = 0  # processes for cleaning, signing and pair building; 0 = one per core
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
