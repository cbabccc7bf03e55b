"""The studio's settings: which endpoint, key and model it writes with, where its library and
ratings live, and the limits on what a writer may send.

Each setting comes from the first of: the sidebar (the app's business), the environment, the
YAML file ($STORYTELLER_STUDIO_CONFIG or configs/studio/default.yaml), the defaults below."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from storyteller.config import load_config, require
from storyteller.client import DEFAULT_ENDPOINT

# Setting → the environment variable that overrides the file. `storyteller app` sets these from
# its options, so the command line wins over the file too.
ENVIRONMENT: dict[str, str] = {
    "endpoint": "STORYTELLER_ENDPOINT",
    "api_key": "STORYTELLER_API_KEY",
    "model": "STORYTELLER_MODEL",
    "library": "STORYTELLER_LIBRARY",
    "ratings": "STORYTELLER_RATINGS",
}
CONFIG_VARIABLE = "STORYTELLER_STUDIO_CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "studio" / "default.yaml"


@dataclass
class StudioConfig:
    # The `storyteller serve` endpoint (or any OpenAI-compatible one), with or without /v1.
    endpoint: str = DEFAULT_ENDPOINT
    # The endpoint's key; never shown by the studio. Usually from $STORYTELLER_API_KEY.
    api_key: str = ""
    # The served model to write with (empty: the first one the endpoint lists).
    model: str = ""
    # The story library's SQLite file (empty: $STORYTELLER_LIBRARY or the user's data folder).
    library: str = ""
    # A folder written by `storyteller ratings make` (with key.json), for the rater page.
    ratings: str = ""
    # Seconds to wait for the endpoint before telling the writer it timed out.
    timeout: float = 120.0
    # Longest premise and title accepted; longer ones are refused before any request.
    max_premise_chars: int = 2000
    max_title_chars: int = 200
    # The largest max_tokens one generation may ask for (the advanced panel's ceiling).
    max_tokens: int = 2048
    # Folder of fine-tune runs started outside the studio (the demo's, a terminal's): the Train
    # page shows the ones training now. Relative to the folder the studio was started in.
    runs: str = "runs"
    # Folder of merged models: the model picker says which run a served model came from and
    # how it scored (as `storyteller models` does).
    models: str = "models"
    # The largest file a writer may upload on the Train page, in MB (Streamlit refuses larger).
    max_upload_mb: int = 50
    # Words or phrases no story may use (one per item): the studio's global banned list,
    # sent with every request beside the story's own list and the one the writer keeps in
    # the library. Each is at most 100 characters; 500 in all (the endpoint's limits).
    banned: list[str] = field(default_factory=list)
    # Longest notes and direction a story keeps (characters): the notes are sent with every
    # request, so the context inspector says when they crowd out the story.
    max_notes_chars: int = 20000
    max_direction_chars: int = 1000
    # Longest document the Document page sends (words); a longer paste is kept in the library
    # but not sent, with a message. Long documents are summarised to fit the model's context.
    max_document_words: int = 1_000_000
    # Candidates written side by side at most (the endpoint allows 4).
    max_candidates: int = 4

    def __post_init__(self):
        require(self.timeout > 0, "timeout", "must be more than 0 seconds")
        require(self.max_premise_chars > 0, "max_premise_chars", "must be at least 1")
        require(self.max_title_chars > 0, "max_title_chars", "must be at least 1")
        require(16 <= self.max_tokens <= 32768, "max_tokens",
                "must be between 16 and 32768")
        require(1 <= self.max_upload_mb <= 4096, "max_upload_mb",
                "must be between 1 and 4096 (MB)")
        require(len(self.banned) <= 500, "banned", "may hold 500 phrases at most")
        require(all(0 < len(str(p).strip()) <= 100 for p in self.banned), "banned",
                "each phrase must be 1 to 100 characters")
        require(self.max_notes_chars > 0, "max_notes_chars", "must be at least 1")
        require(self.max_direction_chars > 0, "max_direction_chars", "must be at least 1")
        require(self.max_document_words > 0, "max_document_words", "must be at least 1")
        require(1 <= self.max_candidates <= 4, "max_candidates",
                "must be between 1 and 4 (the endpoint writes 4 at most)")


def load_studio_config(path: str | Path | None = None, env: Mapping[str, str] = os.environ,
                       flags: Mapping[str, tuple[str, Any]] | None = None) -> StudioConfig:
    """The file's settings (or the defaults), then the environment's, then `flags` (a config
    key → (flag, value), as `load_config` takes them)."""
    shipped = DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None
    path = path or env.get(CONFIG_VARIABLE) or shipped
    from_env = {name: (f"${variable}", env[variable]) for name, variable in ENVIRONMENT.items()
                if env.get(variable, "").strip()}
    given = {key: value for key, value in (flags or {}).items() if value[1] is not None}
    return load_config(StudioConfig, path, flags={**from_env, **given})


def with_environment(config: StudioConfig, env: Mapping[str, str]) -> StudioConfig:
    changes = {name: env[variable] for name, variable in ENVIRONMENT.items()
               if env.get(variable, "").strip()}
    return dataclasses.replace(config, **changes)


def environment_for(config: StudioConfig) -> dict[str, str]:
    """The variables that hand `config` to a studio process (`storyteller app`)."""
    values = dataclasses.asdict(config)
    return {variable: str(values[name]) for name, variable in ENVIRONMENT.items() if values[name]}
