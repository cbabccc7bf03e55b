"""The choices the Document page offers once the model has written: several candidates side
by side to keep one of, and the words the model weighed, to branch the story from one. The
keep is recorded at once; a branch is asked for in session state (`doc_branch`), which the
page acts on where it generates."""

from __future__ import annotations

import streamlit as st

import writing
from storyteller.studio import draft


def candidates(lib, story_id: str, versions, current, ids: list[str]) -> None:
    """The candidates `ids` side by side, when more than one is left, each with Keep this one:
    it becomes the story, recorded as preferred over the others."""
    by_id = draft.by_id(versions)
    members = [by_id[i] for i in ids if i in by_id]
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
                    st.session_state.doc_history = st.session_state.doc_history.moved(
                        current.id if current else None, member.id)
                    st.session_state.pop("doc_candidates_shown")
                    st.rerun()


def word_alternatives(current, tokens: list, ready: bool) -> None:
    """The words the model weighed for `current`'s latest text: a word, another choice for it,
    and Branch from here (enabled when the endpoint is `ready`)."""
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
            st.session_state.doc_branch = {"word": word.index,
                                           "alternative": options[choice][0]}
