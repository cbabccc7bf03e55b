"""storyteller studio: write stories with a fine-tuned model, keep them, rate them.

Run with `storyteller app` (or `streamlit run app/studio.py`). The pages are in views/; what
they share is in studio_ui.py; everything that is not UI lives in storyteller.studio."""

from __future__ import annotations

import sys
from pathlib import Path

# The pages import studio_ui from this folder, however the studio was started.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import streamlit as st  # noqa: E402

import studio_ui  # noqa: E402

st.set_page_config(page_title="storyteller studio", page_icon=":material/auto_stories:",
                   layout="wide")

studio_ui.require_login()
studio_ui.config()
if st.session_state.get("config_problem"):
    st.warning(f"The studio config was not read: {studio_ui.plain(st.session_state.config_problem)}"
               " — the defaults are in use.")

pages = st.navigation([
    st.Page("views/write.py", title="Write", icon=":material/edit_note:", default=True),
    st.Page("views/document.py", title="Document", icon=":material/article:"),
    st.Page("views/library.py", title="Library", icon=":material/library_books:"),
    st.Page("views/rate.py", title="Rate", icon=":material/star_rate:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
])
try:
    pages.run()
except Exception as error:  # a fault in a page: a message, not a traceback
    studio_ui.show_problem(error)
