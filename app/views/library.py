"""Library: every story written in the studio. Search, reopen, rename, delete, export; and the
rated versions as a JSONL dataset that `storyteller curate` reads back."""

from __future__ import annotations

import streamlit as st

import studio_ui as ui
from storyteller.studio import draft
from storyteller.studio.export import (
    file_stem,
    jsonl_bytes,
    pick_records,
    preference_records,
    sft_records,
    story_markdown,
    story_text,
)

lib = ui.library()
ui.connection_sidebar()

st.subheader("Library")
st.caption(ui.library_caption())
query = st.text_input("Search", key=ui.kept("l_query", ""),
                      placeholder="words in a title, premise or story")
ui.keep("l_query")
stories = lib.search(query)
counts = lib.stats()
st.caption(f"{len(stories):,} of {counts['stories']:,} stories · {counts['generations']:,} "
           f"versions · {counts['rated']:,} rated")

if not stories:
    st.info("No stories yet: write one on the Write page." if not query.strip() else
            "No story matches that search.")

for story in stories:
    versions = lib.generations(story.id)
    text = lib.current_text(story.id)
    stars = [v.stars for v in versions if v.stars]
    with st.container(border=True):
        head, actions = st.columns([4, 2])
        with head:
            st.markdown(f"**{ui.plain(ui.story_name(story))}**")
            st.caption(f"{len(versions)} version{'s' if len(versions) != 1 else ''} · "
                       f"{draft.word_count(text):,} words · "
                       f"updated {story.updated_at[:16].replace('T', ' ')}"
                       + (f" · best {max(stars)}★" if stars else ""))
            preview = " ".join(text.split()[:60])
            st.text(preview + (" …" if len(text.split()) > 60 else ""), width="stretch")
        with actions:
            if st.button("Open", key=f"open_{story.id}", icon=":material/open_in_new:"):
                if story.mode == "document":
                    st.session_state.doc_story = story.id
                    st.session_state.doc_history = draft.History()
                    st.switch_page("views/document.py")
                st.session_state.story_id = story.id
                st.session_state.history = draft.History()
                ui.hold("w_title", story.title)
                ui.hold("w_premise", story.premise)
                for name, value in story.controls.items():
                    ui.hold(f"w_{name}", value or "(any)")
                st.switch_page("views/write.py")
            stem = file_stem(ui.story_name(story))
            st.download_button("Markdown", story_markdown(story, text).encode("utf-8"),
                               f"{stem}.md", "text/markdown", key=f"md_{story.id}",
                               on_click="ignore", icon=":material/download:")
            st.download_button("Plain text", story_text(story, text).encode("utf-8"),
                               f"{stem}.txt", "text/plain", key=f"txt_{story.id}",
                               on_click="ignore", icon=":material/download:")
        with st.expander("Rename or delete"):
            new_title = st.text_input("Title", story.title, key=f"title_{story.id}")
            if st.button("Rename", key=f"rename_{story.id}") and new_title.strip() != story.title:
                lib.rename(story.id, new_title.strip())
                st.rerun()
            sure = st.checkbox("Yes, delete this story and all its versions",
                               key=f"sure_{story.id}")
            if st.button("Delete", key=f"delete_{story.id}", type="primary", disabled=not sure):
                lib.delete(story.id)
                if st.session_state.get("story_id") == story.id:
                    st.session_state.story_id = None
                st.rerun()

st.divider()
st.subheader("Feedback dataset")
st.caption("Rated versions as JSONL for `storyteller curate`: stories you liked for fine-tuning "
           "(SFT), or pairs for preference tuning: versions of one request rated differently, "
           "and each candidate you kept over the others.")
min_stars = st.slider("Keep stories rated at least", 1, 5, 4, key="l_min_stars")
rated = lib.rated()
picks = lib.picks()
# An edited version is trained on with the prompt of the version it edited.
picked = {story.id for story, _ in rated} | {pick.story_id for pick in picks}
versions = [v for story_id in picked for v in lib.generations(story_id)]
sft = sft_records(rated, min_stars, versions)
# Pairs from stars, and the candidate the writer kept over each other one.
prefs = preference_records(rated, versions) + pick_records(
    picks, {story_id: lib.story(story_id) for story_id in picked}, versions)
cols = st.columns(2)
stories = "story" if len(sft) == 1 else "stories"
cols[0].download_button(f"SFT dataset ({len(sft)} {stories})", jsonl_bytes(sft),
                        "storyteller-feedback-sft.jsonl", "application/jsonl",
                        disabled=not sft, on_click="ignore", icon=":material/dataset:")
cols[1].download_button(f"Preference pairs ({len(prefs)})", jsonl_bytes(prefs),
                        "storyteller-feedback-preference.jsonl", "application/jsonl",
                        disabled=not prefs, on_click="ignore", icon=":material/compare:")
st.caption("The same from a terminal: `storyteller library export --out feedback.jsonl`, then "
           "`storyteller curate feedback.jsonl --out data/feedback`.")
