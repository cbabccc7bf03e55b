"""What every studio page shares: the settings, the endpoint connection in the sidebar, the story
library, and showing text and errors safely.

Model text and anything a writer typed is shown with `st.text` (no Markdown, no HTML) or, where
Streamlit only takes Markdown (headings, labels), escaped first by `plain`."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from storyteller.errors import StorytellerError
from storyteller.client import ClientError, ServedModel, StoryClient
from storyteller.studio.access import PASSWORD_VARIABLE, login_mode, password_matches
from storyteller.studio.config import StudioConfig, load_studio_config
from storyteller.studio import draft
from storyteller.studio.library import StoryLibrary, default_library_path

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: str) -> str:
    """`text` for a Markdown slot, shown exactly as written: every Markdown character escaped
    (HTML is never rendered: Streamlit escapes it unless told otherwise, and this is not)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", " ".join(str(text).split()))


def story_name(story) -> str:
    """What a story is called on screen: its title, else the start of its premise. (An untitled
    story keeps an empty title, so no made-up title reaches an exported dataset.)"""
    if story.title.strip():
        return story.title
    premise = " ".join(story.premise.split())
    return (premise[:60] + "…" if len(premise) > 60 else premise) or "Untitled story"


def config() -> StudioConfig:
    """The studio's settings, read once per browser session."""
    if "studio_config" not in st.session_state:
        try:
            st.session_state.studio_config = load_studio_config()
        except StorytellerError as error:
            st.session_state.studio_config = StudioConfig()
            st.session_state.config_problem = str(error)
    return st.session_state.studio_config


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, KeyError, ValueError):
        return False


def require_login() -> None:
    """Stop the page here until the browser session has logged in, where the studio has a login
    (a password from $STORYTELLER_STUDIO_PASSWORD, or OpenID Connect): nothing below runs, so no
    page, upload or training control exists for a stranger."""
    mode = login_mode(os.environ, _oidc_configured())
    if mode == "open" or st.session_state.get("logged_in"):
        return
    if mode == "oidc":
        if st.user.is_logged_in:
            return
        st.title("storyteller studio")
        st.button("Log in", on_click=st.login, type="primary")
        st.stop()
    st.title("storyteller studio")
    with st.form("login"):
        given = st.text_input("Studio password", type="password")
        sent = st.form_submit_button("Log in", type="primary")
    if sent:
        if password_matches(given, os.environ.get(PASSWORD_VARIABLE, "")):
            st.session_state.logged_in = True
            st.rerun()
        time.sleep(1.0)  # slows guessing down; the studio's own sessions are unaffected
        st.error("That is not the studio password.")
    st.stop()


@st.cache_resource(show_spinner=False)
def _library(path: str) -> StoryLibrary:
    # One connection per file for the whole server: the library locks around each call.
    return StoryLibrary(path)


def library() -> StoryLibrary:
    return _library(config().library or str(default_library_path()))


def open_story(lib: StoryLibrary, key: str) -> tuple:
    """(story, its versions, the current version) of the story whose id the session keeps
    under `key`; three Nones where there is none or it was deleted on the Library page (the
    key is cleared then)."""
    story_id = st.session_state.get(key)
    if story_id:
        try:
            story = lib.story(story_id)
            versions = lib.generations(story_id)
            return story, versions, next((v for v in versions if v.id == story.current_id), None)
        except KeyError:
            st.session_state[key] = None
    return None, None, None


def version_picker(lib: StoryLibrary, story_id: str, versions, current_id: str,
                   history_key: str, key: str) -> None:
    """The current version's branches as radio buttons (none when it has no siblings); a pick
    becomes the story's current version, remembered in the undo history under `history_key`."""
    alternatives = draft.branches(versions, current_id)
    if len(alternatives) < 2:
        return
    ids = [v.id for v in alternatives]
    picked = st.radio("Version", ids, index=ids.index(current_id), horizontal=True,
                      format_func=lambda i: f"Version {ids.index(i) + 1}", key=key)
    if picked != current_id:
        st.session_state[history_key] = st.session_state[history_key].moved(current_id, picked)
        lib.set_current(story_id, picked)
        st.rerun()


def show_problem(error: Exception) -> None:
    """A failed call as a message a writer can act on; the page goes on working."""
    if isinstance(error, ClientError):
        text = plain(error.message[:1].upper() + error.message[1:])
        st.warning(f"{text} — {error.hint}" if error.hint else text, icon="⚠️")
    elif isinstance(error, StorytellerError):
        st.warning("; ".join(str(p) for p in error.problems), icon="⚠️")
    else:
        st.error(f"Something went wrong ({type(error).__name__}). The studio still works; "
                 f"try again, and see the studio's console output if it keeps happening.")


@dataclass
class Connection:
    client: StoryClient | None
    models: list[ServedModel] = field(default_factory=list)
    model: ServedModel | None = None
    problem: Exception | None = None

    @property
    def ready(self) -> bool:
        return self.client is not None and self.model is not None


def _key_in_use() -> str:
    typed = st.session_state.get("api_key_typed", "")
    return typed or config().api_key


def _client() -> StoryClient:
    endpoint = st.session_state.get("endpoint") or config().endpoint
    key = _key_in_use()
    cached = st.session_state.get("client")
    # The client is kept per endpoint and key; the key itself is never put in session state
    # under a name a page shows, and never rendered.
    if cached is None or cached[0] != (endpoint, hash(key)):
        cached = ((endpoint, hash(key)), StoryClient(endpoint, key or None,
                                                     timeout=config().timeout, max_retries=1))
        st.session_state.client = cached
    return cached[1]


# How often the sidebar asks the endpoint again what it serves, so a model loaded meanwhile
# (the demo's tuned model, a Train page's) is offered without a click.
MODELS_REFRESH_S = 20.0


def _fetch_models(client: StoryClient) -> None:
    before = {m.id for m in st.session_state.get("models") or []}
    st.session_state.models_at = time.monotonic()
    try:
        st.session_state.models = client.models()
        st.session_state.models_problem = None
        new = [m.id for m in st.session_state.models if m.id not in before]
        if before and new:
            st.toast(f"New model served: {plain(', '.join(new))} — pick it under Model.",
                     icon=":material/new_releases:")
    except ClientError as error:
        st.session_state.models = []
        st.session_state.models_problem = error


def _remember_model() -> None:
    st.session_state.model_choice = st.session_state.model_name


@st.cache_data(ttl=20, show_spinner=False)
def _catalog(runs: str, models: str) -> list:
    from storyteller.catalog import scan

    return scan(Path(runs), Path(models))


def model_origin(model: ServedModel) -> str:
    """Where the served model came from and how it scored, as `storyteller models` says it
    (the run or merged folder on this machine; empty where none matches)."""
    from storyteller.catalog import Served, served_name

    cfg = config()
    served = Served("", ((model.id, model.storyteller),))
    found = [e for e in _catalog(cfg.runs, cfg.models) if served_name(e, served)]
    if not found:
        return ""
    entry = next((e for e in found if e.kind == "model"), found[0])
    parts = [f"From {plain(entry.merged_from or entry.path)}"]
    if entry.steps is not None:
        parts.append(f"{entry.steps} steps")
    if entry.objective and entry.objective != "sft":
        parts.append(f"preference-tuned ({entry.objective})")
    if entry.style_followed is not None:
        styles = ", ".join(f"{style} {share:.0%}"
                           for style, share in (entry.styles_followed or {}).items())
        parts.append(f"house style followed {entry.style_followed:.0%}"
                     + (f" ({styles})" if styles else ""))
    if entry.perplexity is not None:
        parts.append(f"perplexity {entry.perplexity:.1f}")
    if entry.kind == "model":
        parts.append("verified" if entry.verified else "not verified")
    return "; ".join(parts) + "."


def connection_sidebar() -> Connection:
    """The sidebar's endpoint settings and model choice; fetches the served models once per
    endpoint and key, and again on Refresh."""
    cfg = config()
    with st.sidebar:
        st.header("Endpoint")
        st.text_input("URL", value=cfg.endpoint, key="endpoint",
                      help="The `storyteller serve` address, e.g. http://127.0.0.1:8000")
        st.text_input("API key", type="password", key="api_key_typed",
                      placeholder="set" if cfg.api_key else "none",
                      help="Leave empty to use the key the studio was started with "
                           "($STORYTELLER_API_KEY). It is never shown.")
        refresh = st.button("Refresh models", icon=":material/refresh:")
        client = _client()
        signature = (client.endpoint, hash(_key_in_use()))
        # A model the Train page just had the endpoint load: list it, and pick it.
        wanted = st.session_state.pop("use_model", None)
        stale = time.monotonic() - st.session_state.get("models_at", 0.0) > MODELS_REFRESH_S
        if refresh or wanted or stale or st.session_state.get("models_for") != signature:
            _fetch_models(client)
            st.session_state.models_for = signature
        models: list[ServedModel] = st.session_state.get("models", [])
        problem = st.session_state.get("models_problem")
        if problem is not None:
            show_problem(problem)
            return Connection(client, [], None, problem)
        if not models:
            st.info("The endpoint serves no models.")
            return Connection(client)
        names = [m.id for m in models]
        preferred = cfg.model if cfg.model in names else names[0]
        # The choice outlives page changes (each page's sidebar is a widget of its own, which
        # Streamlit would reset); a model the Train page loaded is picked on every page.
        choice = wanted if wanted in names else st.session_state.get("model_choice")
        st.session_state.model_choice = choice if choice in names else preferred
        st.session_state.model_name = st.session_state.model_choice
        chosen = st.selectbox("Model", names, key="model_name", on_change=_remember_model)
        model = models[names.index(chosen)]
        base = model.storyteller.get("base_model")
        if model.storyteller.get("kind") == "base":
            st.caption("Base model, not fine-tuned: the controls are the schema's examples.")
        elif base:
            st.caption(f"Fine-tuned from {plain(base)}; {len(model.genres)} genres, "
                       f"{len(model.styles)} styles.")
        where = model_origin(model)
        if where:
            st.caption(where)
        return Connection(client, models, model)


def library_caption() -> str:
    return f"Library: {plain(str(Path(config().library or default_library_path())))}"


def kept(key: str, default=None) -> str:
    """A widget key whose value outlives visits to other pages: Streamlit forgets the state of
    widgets a run does not draw, so the value is kept under a second name and put back."""
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(f"kept_{key}", default)
    return key


def keep(*keys: str) -> None:
    for key in keys:
        if key in st.session_state:
            st.session_state[f"kept_{key}"] = st.session_state[key]


def hold(key: str, value) -> None:
    """Set what a kept widget shows the next time its page is drawn (e.g. opening a story)."""
    st.session_state[f"kept_{key}"] = value
    st.session_state.pop(key, None)
