"""What the Document page draws besides the document itself: who wrote what, the context
inspector, the banned lists, candidates side by side and word alternatives. UI only: the rules
are in storyteller.studio (draft, compose, context, export)."""

from __future__ import annotations

import html

import streamlit as st

import studio_ui as ui
from storyteller.studio import draft

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
