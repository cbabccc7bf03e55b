"""Document: the whole story in one text area, continued by the model at its end or where the
writer types [continue here]; notes and a direction the model reads with every request; a
banned list; several candidates side by side; the words the model weighed, to branch from.
Every change is a version in the library, saved before any request. The candidates and the
word choices are drawn by story_choices.py and the banned lists by writing.py (the Write page
uses both too); what a request asks and keeps is story_requests.py."""

from __future__ import annotations

import streamlit as st

import story_choices
import studio_ui as ui
import writing
from story_requests import (
    answer_details,
    banned_to_send,
    branch_version,
    requested_extras,
    stream_into,
)
from storyteller.client import ClientError, story_messages
from storyteller.prompts import SYSTEM_PROMPT
from storyteller.sampling import STUDIO_PRESETS
from storyteller.studio import draft
from storyteller.studio.compose import (
    Advanced,
    candidate_count,
    check_document,
    check_memory,
    context_budget,
    model_controls,
    notes_problem,
    parse_banned,
    sampling_for,
    settings_json,
)
from storyteller.studio.context import approximate_tokens, build_context
from storyteller.studio.export import file_stem, story_html, story_json, story_markdown

ANY = "(any)"

cfg = ui.config()
lib = ui.library()
connection = ui.connection_sidebar()
st.session_state.setdefault("doc_history", draft.History())

story, versions, current = ui.open_story(lib, "doc_story")


def _memory_key(name: str) -> str:
    return f"doc_{name}_{story.id if story else 'new'}"


# A widget key holding a value until the writer changes it (writing.py; the Write page's too).
_start = writing.started


def save_text(text: str) -> None:
    """The writer's text as a new version (the first one makes the story): called before any
    request, and whenever the text area changes, so nothing typed is lost."""
    global story, current, versions
    if story is None:
        story = lib.create_story(st.session_state.get("doc_title", "").strip(), mode="document",
                                 notes=st.session_state.get(_memory_key("notes"), ""),
                                 direction=st.session_state.get(_memory_key("direction"), ""),
                                 banned=parse_banned(st.session_state.get(
                                     _memory_key("banned"), ""))[0])
        st.session_state.doc_story = story.id
    elif current is not None and current.text == text:
        return
    made = lib.add_generation(story.id, kind="edit", text=text,
                              parent_id=current.id if current else None)
    st.session_state.doc_history = st.session_state.doc_history.moved(
        current.id if current else None, made.id)
    story, current = lib.story(story.id), made
    versions = lib.generations(story.id)


def _typed(key: str) -> None:
    save_text(st.session_state[key])


def _memory_changed() -> None:
    if story is None:
        return
    lib.set_memory(story.id, notes=st.session_state.get(_memory_key("notes"), ""),
                   direction=st.session_state.get(_memory_key("direction"), ""),
                   banned=parse_banned(st.session_state.get(_memory_key("banned"), ""))[0])


left, right = st.columns([2, 3], gap="large")

# ------------------------------------------------------------------------------ memory, settings
with left:
    st.subheader("Story memory")
    if story is not None:
        title = st.text_input("Title", key=_start(f"doc_title_{story.id}", story.title))
        if title.strip() != story.title:
            lib.rename(story.id, title.strip())
    else:
        st.text_input("Title", key="doc_title", placeholder="optional")
    notes = st.text_area("Notes", key=_start(_memory_key("notes"), story.notes if story else ""),
                         height=150, on_change=_memory_changed,
                         placeholder="Characters, places, facts the model must keep: "
                                     "Mira, 34, lighthouse keeper; her brother left in 1962.",
                         help="Sent with every request, above the story.")
    direction = st.text_area("Direction",
                             key=_start(_memory_key("direction"),
                                        story.direction if story else ""), height=70,
                             on_change=_memory_changed,
                             placeholder="What happens next, in a sentence or two.",
                             help="Sent beside the end of the story; leave it empty to let "
                                  "the model choose.")
    controls = {}
    grid = st.columns(2)
    for index, control in enumerate(model_controls(connection.model)[:2]):
        with grid[index % 2]:
            value = st.selectbox(control.label, [ANY, *control.options],
                                 key=ui.kept(f"doc_{control.name}", ANY),
                                 accept_new_options=True)
            controls[control.name] = "" if value in (None, ANY) else value
    with st.expander("Banned words and phrases", expanded=bool(story and story.banned)):
        writing.banned_panel(lib, cfg, _start(
            _memory_key("banned"), "\n".join(story.banned) if story else ""),
            _memory_changed, "doc")
    preset_name = st.segmented_control("Sampling", STUDIO_PRESETS,
                                       key=ui.kept("doc_preset", "balanced")) or "balanced"
    row = st.columns(3)
    max_tokens = row[0].number_input("Max tokens", 16, cfg.max_tokens,
                                     key=ui.kept("doc_max_tokens", min(200, cfg.max_tokens)),
                                     step=50)
    seed = row[1].number_input("Seed", 0, 2**31 - 1, key=ui.kept("doc_seed", None),
                               placeholder="random")
    asked = row[2].number_input("Candidates", 1, cfg.max_candidates,
                                key=ui.kept("doc_candidates", 1),
                                help=f"Write up to {cfg.max_candidates} side by side and keep "
                                     "the best; the one you keep is recorded as preferred.")
    ui.keep("doc_preset", "doc_max_tokens", "doc_seed", "doc_candidates",
            *[f"doc_{name}" for name in controls])
    advanced = Advanced(max_tokens=int(max_tokens), seed=int(seed) if seed is not None else None)

# ------------------------------------------------------------------------------ the document
with right:
    notice = st.container()
    head = st.container(horizontal=True, vertical_alignment="center")
    head.subheader(ui.plain(ui.story_name(story)) if story else "New document")
    if head.button("New document", icon=":material/add:", key="doc_new"):
        st.session_state.doc_story = None
        st.session_state.doc_history = draft.History()
        st.session_state.pop("doc_candidates_shown", None)
        for name in ("title", "notes_new", "direction_new", "banned_new"):
            st.session_state.pop(f"doc_{name}", None)
        st.rerun()
    if story is not None and current is not None:
        ui.version_picker(lib, story.id, versions, current.id, "doc_history",
                          f"doc_branch_{current.id}")
    area_key = f"doc_text_{current.id}" if current else "doc_text_new"
    text = st.text_area("Story", current.text if current else "", key=area_key, height=360,
                        on_change=_typed, args=(area_key,),
                        placeholder="Paste your draft or start writing. Type [continue here] "
                                    "where the model should write; without it, it goes on "
                                    "at the end.")
    st.caption(f"{draft.word_count(text):,} words · type **\\[continue here\\]** where the "
               "model should write; without it, it continues at the end. Every change is a "
               "version: Undo goes back.")
    buttons = st.container(horizontal=True)
    go = buttons.button("Continue", type="primary", icon=":material/arrow_forward:",
                        key="doc_continue", disabled=not connection.ready)
    if buttons.button("Undo", icon=":material/undo:", key="doc_undo", disabled=current is None):
        target, history = st.session_state.doc_history.undo(versions, current.id)
        st.session_state.doc_history = history
        if target:
            lib.set_current(story.id, target)
        st.rerun()
    live = st.empty()

    if current is not None:
        spans = draft.authorship(versions, current.id)
        with st.expander("Who wrote what"):
            writing.authorship_view(spans)
        writing.steering_report(current.details)
        stem = file_stem(ui.story_name(story))
        down = st.container(horizontal=True)
        down.download_button("Markdown", story_markdown(story, current.text).encode("utf-8"),
                             f"{stem}.md", "text/markdown", on_click="ignore",
                             icon=":material/download:")
        down.download_button("HTML (marked)", story_html(story, spans).encode("utf-8"),
                             f"{stem}.html", "text/html", on_click="ignore",
                             icon=":material/download:", key="doc_html")
        down.download_button("JSON (marked)", story_json(story, spans, current).encode("utf-8"),
                             f"{stem}.json", "application/json", on_click="ignore",
                             icon=":material/download:", key="doc_json")

    # What the next Continue sends, built exactly as it will be.
    budget = context_budget(connection.model, int(max_tokens))
    context = context_problem = None
    split = None
    try:
        split = draft.split_at_marker(text)
        if split.before.strip():
            context = build_context(split.before, notes=notes, direction=direction,
                                    controls=controls, title=story.title if story else "",
                                    budget_tokens=budget, count_tokens=approximate_tokens)
    except ValueError as error:
        context_problem = str(error)
    with st.expander("What is sent (context inspector)"):
        if context is not None:
            writing.inspector(context.parts, context.notices, budget,
                              (current.details.get("context") if current else None))
        else:
            st.caption(ui.plain(context_problem or "Write or paste some story first."))

# ------------------------------------------------------------------------------ candidates
shown = st.session_state.get("doc_candidates_shown")
if story_choices.pending(shown, story, versions):
    story_choices.candidates(lib, story.id, versions, shown, "doc_history",
                             "doc_candidates_shown")

# ------------------------------------------------------------------------------ word alternatives
tokens = (current.details.get("logprobs") if current is not None else None) or []
if not shown:
    story_choices.alternatives_section(right, current, connection.model, connection.ready,
                                       "doc_branch")


# ------------------------------------------------------------------------------ generating
def banned_list() -> list[str]:
    return banned_to_send(cfg, lib, st.session_state.get(_memory_key("banned"), ""))


def continue_story() -> None:
    save_text(text)  # the writer's words are in the library before anything is sent
    problems = check_document(text, cfg) + check_memory(notes, direction, cfg)
    banned_problems = parse_banned(st.session_state.get(_memory_key("banned"), ""))[1]
    if context_problem:
        problems.append(context_problem[:1].upper() + context_problem[1:] + ".")
    elif context is None:
        problems.append("Write some story before the [continue here] mark.")
    for problem in problems + banned_problems:
        notice.error(problem)
    if problems or banned_problems:
        return
    crowded = notes_problem(context.parts, budget)
    if crowded:
        notice.warning(crowded)
    model = connection.model
    system = model.storyteller.get("system_prompt") or SYSTEM_PROMPT
    messages = story_messages(context.request, system)
    sampling = sampling_for(preset_name, advanced, cfg, model)
    count, note = candidate_count(asked, cfg)
    if note:
        notice.info(note)
    extras = requested_extras(model, banned_list())
    sent = [{"name": p.name, "tokens": p.tokens, "cut": p.cut} for p in context.parts]
    common = dict(messages=messages, request=draft.request_to_json(context.request),
                  settings=settings_json(preset_name, sampling), model=model.id,
                  endpoint=connection.client.endpoint)
    if count > 1:
        with st.spinner(f"Writing {count} candidates…"):
            try:
                answers = connection.client.candidates(model.id, messages, sampling, count,
                                                       **extras)
            except ClientError as error:
                with notice:
                    ui.show_problem(error)
                return
        ids = []
        for answer in answers:
            whole, start = draft.insert_continuation(split, answer.text)
            made = lib.add_generation(
                story.id, kind="continue", text=whole, parent_id=current.id,
                finish_reason=answer.finish_reason, make_current=False,
                details=answer_details(answer.text, start, answer, context=sent,
                                       candidates=count), **common)
            ids.append(made.id)
        st.session_state.doc_candidates_shown = {"story": story.id, "ids": ids,
                                                 "before": current.id}
        st.rerun()
    answer, final, error = stream_into(connection.client, model.id, live, messages, sampling,
                                       extras, "")
    if answer:
        whole, start = draft.insert_continuation(split, answer)
        made = lib.add_generation(
            story.id, kind="continue", text=whole, parent_id=current.id,
            finish_reason=(final.finish_reason or "stop") if final else "error",
            details=answer_details(answer, start, final, context=sent), **common)
        st.session_state.doc_history = st.session_state.doc_history.moved(current.id, made.id)
    if error is not None:
        with notice:
            ui.show_problem(error)
            if answer:
                st.caption("What was written before the connection dropped is kept as a "
                           "version; your own text was saved before the request.")
        return
    st.rerun()


def branch_story(word_index: int, alternative: str) -> None:
    """A new version beside the current one: its text up to the word, the chosen alternative,
    and the model's continuation of that (continue_final_message)."""
    words = draft.words_of(tokens)
    word = next(w for w in words if w.index == word_index)
    prefix = draft.branch_prefix(tokens, word, alternative)
    model = connection.model
    sampling = sampling_for(preset_name, advanced, cfg, model)
    messages = [m for m in current.messages if m.get("role") != "assistant"]
    extras = {**requested_extras(model, banned_list()), "continue_final_message": True}
    more, final, error = stream_into(connection.client, model.id, live,
                                     [*messages, {"role": "assistant", "content": prefix}],
                                     sampling, extras, prefix)
    whole, details = branch_version(current, tokens, word, alternative, prefix + more, final)
    made = lib.add_generation(
        story.id, kind="continue", text=whole, parent_id=current.parent_id,
        messages=messages, request=current.request, settings=settings_json(preset_name, sampling),
        model=model.id, endpoint=connection.client.endpoint,
        finish_reason=(final.finish_reason or "stop") if final else "error", details=details)
    st.session_state.doc_history = st.session_state.doc_history.moved(current.id, made.id)
    if error is not None:
        with notice:
            ui.show_problem(error)
        return
    st.rerun()


pending = st.session_state.pop("doc_branch", None)
if pending and connection.ready and current is not None:
    branch_story(pending["word"], pending["alternative"])
elif go and connection.ready:
    continue_story()

st.caption(ui.library_caption())
