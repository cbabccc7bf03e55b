"""Rate: a rater enters their id and scores their blinded items, in their own order, on the
study's scales. Answers are saved one item at a time, so a rater can stop and come back."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import studio_ui as ui
from storyteller.errors import StorytellerError
from storyteller.ratings.scales import (
    ANCHORS,
    PAIR_CHOICES,
    QUESTIONS,
    SCALE_MAX,
    SCALE_MIN,
    anchors_markdown,
)
from storyteller.studio.rater import PairItem, RateItem, RatingsFolder

cfg = ui.config()
st.subheader("Rate stories")


@st.cache_resource(show_spinner=False)
def _study(folder: str, stamp: float) -> RatingsFolder:
    # Opened once per study (and again when `ratings make --force` rewrites its key).
    return RatingsFolder(folder)


folder = st.session_state.get("r_folder") or cfg.ratings
if not folder:
    st.info("No rating study is open here. The study's organiser starts the studio with "
            "`storyteller app --ratings DIR`, DIR being the folder `storyteller ratings make` "
            "wrote.")
    typed = st.text_input("Or open a study folder", placeholder="out/eval/ratings")
    if st.button("Open study") and typed.strip():
        st.session_state.r_folder = typed.strip()
        st.rerun()
    st.stop()

try:
    key_file = Path(folder) / "key.json"
    study = _study(str(folder), key_file.stat().st_mtime if key_file.exists() else 0.0)
except (StorytellerError, OSError) as error:
    ui.show_problem(error)
    st.stop()

rater = st.session_state.get("rater")
if not rater:
    st.write("Enter the rater id you were given (for example `rater-01`).")
    typed = st.text_input("Rater id", key="r_typed", max_chars=64).strip()
    if st.button("Start", type="primary", disabled=not typed):
        if study.knows(typed):
            st.session_state.rater = typed
            st.session_state.pop(f"r_pos_{typed}", None)
            st.rerun()
        else:
            st.error("That is not a rater id of this study. Check your invitation or ask the "
                     "study's organiser.")
    st.stop()

items: list[RateItem | PairItem] = [*study.items(rater), *study.pairs(rater)]
store = study.store()
position_key = f"r_pos_{rater}"
if position_key not in st.session_state:
    st.session_state[position_key] = study.next_open(rater)
position = min(st.session_state[position_key], len(items))
done, total = study.progress(rater)

top = st.columns([3, 1])
top[0].progress(done / total if total else 1.0, text=f"{ui.plain(rater)}: {done} of {total} rated")
if top[1].button("Not me", help="Switch to another rater id"):
    st.session_state.rater = None
    st.rerun()
with st.expander("How to rate"):
    st.markdown(f"Rate each story on its own, with a whole number from {SCALE_MIN} to "
                f"{SCALE_MAX}; 2 and 4 are between the anchors. Only the scales the request "
                f"asked for are shown.\n\n" + anchors_markdown())


def go(to: int) -> None:
    st.session_state[position_key] = max(0, min(to, len(items)))
    st.rerun()


if position >= len(items):
    st.success(f"All {total} items are rated. Thank you! You can close this page, or go back to "
               f"change an answer.")
    if items and st.button("Back to the last item"):
        go(len(items) - 1)
    st.stop()

item = items[position]
answers = {a.item: a for a in store.answers(rater)}
previous = answers.get(item.id)
st.caption(f"Item {position + 1} of {len(items)} · id {item.id}"
           + (" · answered" if previous else ""))
st.markdown("**Request**")
st.text(item.prompt, width="stretch")

if isinstance(item, RateItem):
    with st.container(border=True):
        st.text(item.story, width="stretch")
    given = {s.dimension: s.score for s in store.scores(rater) if s.item == item.id}
    scores: dict[str, int | None] = {}
    for dimension in item.dimensions:
        options = list(range(SCALE_MIN, SCALE_MAX + 1))
        anchors = ANCHORS[dimension]
        scores[dimension] = st.radio(
            f"**{dimension.title()}** — {QUESTIONS[dimension]}", options, horizontal=True,
            index=options.index(given[dimension]) if dimension in given else None,
            key=f"r_{rater}_{item.id}_{dimension}",
            help=f"1 = {anchors[1]}; 3 = {anchors[3]}; 5 = {anchors[5]}")
    complete = all(v is not None for v in scores.values())
else:
    sides = st.columns(2)
    for side, label, text in ((sides[0], "A", item.story_a), (sides[1], "B", item.story_b)):
        with side:
            st.markdown(f"**Story {label}**")
            with st.container(border=True):
                st.text(text, width="stretch")
    was = next((p.choice for p in store.preferences(rater) if p.item == item.id), None)
    choice = st.radio("Which would you rather read as an answer to this request?",
                      list(PAIR_CHOICES), horizontal=True, key=f"r_{rater}_{item.id}_pair",
                      index=PAIR_CHOICES.index(was) if was else None)
    complete = choice is not None
comment = st.text_input("Comment (optional)", previous.comment if previous else "",
                        max_chars=2000, key=f"r_{rater}_{item.id}_comment")

nav = st.columns([1, 1, 4])
if nav[0].button("Previous", disabled=position == 0, icon=":material/arrow_back:"):
    go(position - 1)
if nav[1].button("Save and next", type="primary", disabled=not complete,
                 icon=":material/arrow_forward:"):
    if isinstance(item, RateItem):
        study.save_scores(rater, item.id, {d: int(s) for d, s in scores.items()}, comment)
    else:
        study.save_preference(rater, item.id, choice, comment)
    go(position + 1)
if not complete:
    nav[2].caption("Answer every scale to save.")
