"""The choices the Write and Document pages offer once the model has written: several
candidates side by side to keep one of, and the words the model weighed, to branch the story
from one. The keep is recorded at once; a branch is asked for in session state (under the
page's `branch_key`), which the page acts on where it generates. Each page keeps its own undo
history and its own candidates on show under the session keys it passes."""

from __future__ import annotations

import streamlit as st

import writing
from storyteller.studio import draft
from storyteller.studio.compose import offers_alternatives

NO_ALTERNATIVES = ("Word alternatives: this endpoint's engine (transformers serve) does not give "
                   "the words the model weighed; serve with llama.cpp or vLLM to see them.")


def candidates(lib, story_id: str, versions, shown: dict, history_key: str,
               shown_key: str) -> None:
    """The candidates `shown["ids"]` side by side, when more than one is left, each with Keep
    this one: it becomes the story, recorded as preferred over the others; the undo history
    (`history_key`) goes back to the version before them (`shown["before"]`, None for a first
    draft)."""
    by_id = draft.by_id(versions)
    members = [by_id[i] for i in shown["ids"] if i in by_id]
    if len(members) > 1:
        st.subheader("Candidates")
        st.caption("Keep one: it becomes the story, the others stay as versions, and your pick "
                   "is recorded as preferred over them (Library → Preference pairs).")
        for column, member in zip(st.columns(len(members)), members, strict=True):
            with column.container(border=True, key=f"candidate_{member.id}"):
                st.text(member.details.get("answer", member.text) or " ", width="stretch")
                writing.steering_report(member.details)
                if st.button("Keep this one", key=f"keep_{member.id}",
                             icon=":material/check:"):
                    lib.record_pick(story_id, member.id,
                                    [m.id for m in members if m.id != member.id])
                    st.session_state[history_key] = st.session_state[history_key].moved(
                        shown.get("before"), member.id)
                    st.session_state.pop(shown_key, None)
                    st.rerun()


def pending(shown: dict | None, story, versions) -> bool:
    """Whether candidates of `story` wait to have one kept (`shown`: the page's record of the
    candidates it shows; more than one of them still among the story's `versions`)."""
    if story is None or not shown or shown.get("story") != story.id:
        return False
    known = draft.by_id(versions or [])
    return sum(1 for i in shown["ids"] if i in known) > 1


def word_alternatives(current, tokens: list, ready: bool, branch_key: str) -> None:
    """The words the model weighed for `current`'s latest text: a word, another choice for it,
    and Branch from here (enabled when the endpoint is `ready`), which asks the page for the
    branch under `branch_key`."""
    words = [w for w in draft.words_of(tokens) if w.text.strip() and w.alternatives]
    st.caption("The words the model weighed for its latest text. Pick a word, then "
               "another choice: the story is rewritten from there as a new version.")
    word = st.selectbox("Word", words, format_func=writing.alternative_label,
                        key=f"alt_word_{current.id}")
    if word is not None:
        options = [alt for alt in word.alternatives]
        choice = st.radio("Alternatives", range(len(options)),
                          format_func=lambda i: f"{options[i][0].strip() or '⏎'} · "
                                                f"{writing.probability(options[i][1])}",
                          key=f"alt_choice_{current.id}_{word.index}")
        branch = st.button("Branch from here", key="alt_branch", icon=":material/call_split:",
                           disabled=not ready)
        if branch:
            st.session_state[branch_key] = {"word": word.index,
                                            "alternative": options[choice][0]}


def alternatives_section(where, current, model, ready: bool, branch_key: str) -> list:
    """Word alternatives for the current version in `where` (a container), where the model
    wrote it and its engine gave the words it weighed; where the engine cannot, a line saying
    so. Returns the version's tokens (empty: nothing to branch from)."""
    tokens = (current.details.get("logprobs") if current is not None else None) or []
    if current is None or current.kind not in draft.GENERATED:
        return []
    if not tokens:
        if not offers_alternatives(model):
            where.caption(NO_ALTERNATIVES)
        return []
    with where.expander("Word alternatives", expanded=False):
        word_alternatives(current, tokens, ready, branch_key)
    return tokens
