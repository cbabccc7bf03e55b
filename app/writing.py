"""What the writing pages draw besides the story itself: who wrote what and the context
inspector (Document), the banned lists and the endpoint's report on them, and the labels of
word alternatives (Write and Document; candidates and alternatives are story_choices.py). UI
only: the rules are in storyteller.studio (draft, compose, context, export)."""

from __future__ import annotations

import html
from collections.abc import Callable

import streamlit as st

import studio_ui as ui
from storyteller.studio import draft
from storyteller.studio.compose import banned_for, parse_banned

# Above this many characters the "who wrote what" view shows the story's end only: the whole
# of a novel-length paste would be a page the browser redraws on every click.
SHOWN_CHARS = 60_000


def authorship_view(spans: list[draft.Span]) -> None:
    """The story with the model's passages tinted; every character escaped, line breaks kept."""
    total = sum(len(span.text) for span in spans)
    skip = max(0, total - SHOWN_CHARS)
    pieces, position = [], 0
    for span in spans:
        text = span.text
        if position + len(text) <= skip:
            position += len(text)
            continue
        text = text[max(0, skip - position):]
        position += len(span.text)
        body = html.escape(text).replace("\n", "<br>")
        pieces.append(f'<span class="st-ai">{body}</span>' if span.by == draft.AI else body)
    if skip:
        st.caption(f"The last {SHOWN_CHARS:,} characters of {total:,}.")
    st.html("<style>.st-ai{background:rgba(80,150,255,.22);border-radius:2px}</style>"
            '<div data-testid="authorship" style="font-family:Georgia,serif;line-height:1.6">'
            + "".join(pieces) + "</div>")
    st.caption("Tinted: written by the model; the rest by you. Kept in the HTML and JSON "
               "downloads.")


def inspector(parts, notices, budget: int, sent_before: list | None = None) -> None:
    """Every part of what the next Continue sends, its tokens, and what was cut."""
    used = sum(part.tokens for part in parts)
    st.caption(f"About {used:,} of {budget:,} tokens the model can read for this request "
               "(counted without the model's tokenizer, to within a few percent).")
    for notice in notices:
        st.warning(ui.plain(notice), icon="✂️")
    st.dataframe([{"part": p.name, "tokens": p.tokens, "what was cut": p.cut or "nothing"}
                  for p in parts], hide_index=True, width="stretch", key="inspector_table")
    for part in parts:
        st.markdown(f"**{ui.plain(part.name)}** · {part.tokens:,} tokens"
                    + (f" · {ui.plain(part.cut)}" if part.cut else ""))
        st.text(part.text, width="stretch")
    if sent_before:
        st.caption("Last sent: " + ", ".join(f"{p['name']} ({p['tokens']:,})"
                                             for p in sent_before))


def steering_report(details: dict) -> None:
    """The endpoint's report on the banned list for the current version."""
    report = (details.get("steering") or {}).get("banned")
    if not report:
        return
    st.caption(f"Banned list: {report.get('words_biased', 0)} words kept out by their first "
               f"tokens, {report.get('phrases_cut', 0)} phrases cut and rewritten "
               f"({report.get('retries', 0)} retries).")


def alternative_label(word: draft.Word) -> str:
    text = word.text.strip() or "⏎"
    return f"{word.index + 1}. {text}"


def probability(value: float) -> str:
    return f"{value:.0%}" if value >= 0.01 else f"{value:.1%}"


def started(key: str, value: str) -> str:
    """A widget key holding `value` until the writer changes it (set here, never passed as
    the widget's value too, so a callback may replace it)."""
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def _add_overused(key: str, saved: Callable[[], None]) -> None:
    from storyteller.overused import overused_phrases

    mine, _ = parse_banned(st.session_state.get(key, ""))
    st.session_state[key] = "\n".join(banned_for(mine, overused_phrases()))
    saved()


def banned_panel(lib, config, key: str, saved: Callable[[], None], prefix: str) -> None:
    """The banned lists, inside the page's expander: the story's own (a text area under `key`,
    which the page has started with the story's list; `saved` keeps a change), the built-in
    over-used phrases one click away, and the writer's list for every story (kept in the
    library, so both pages send the same one)."""
    st.text_area("This story's banned list", key=key, height=100, on_change=saved,
                 help="One word or phrase a line. A word is kept out by its first tokens; a "
                      "phrase is cut and rewritten when it appears.")
    st.button("Add the over-used phrases", key=f"{prefix}_overused", on_click=_add_overused,
              args=(key, saved),
              help="Phrases the default model writes far more often than people do "
                   "(measured on its own stories).")
    global_text = st.text_area("Banned in every story",
                               key=started(f"{prefix}_global_banned",
                                           "\n".join(lib.global_banned())), height=80)
    if st.button("Save the global list", key=f"{prefix}_save_global"):
        phrases, problems = parse_banned(global_text)
        for problem in problems:
            st.error(problem)
        if not problems:
            lib.set_global_banned(phrases)
            st.toast(f"{len(phrases)} phrases banned in every story")
    if config.banned:
        st.caption(f"The studio config bans {len(config.banned)} more.")
