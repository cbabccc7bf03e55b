"""Write: premise, title and controls in; a story streams out. Continue it, regenerate it into
branches, edit it, undo, rate it, export it. Every version is saved in the library as it grows.
The Document page's writing aids work here the same way (story_choices.py, story_requests.py,
writing.py): several candidates side by side to keep one of, the banned lists sent with every
request, and the words the model weighed, to branch the story from one."""

from __future__ import annotations

import time
from functools import partial

import streamlit as st

import story_choices
import studio_ui as ui
import writing
from story_requests import (
    answer_details,
    banned_to_send,
    branch_details,
    requested_extras,
    stream_into,
)
from storyteller.client import ClientError, Completion, story_messages
from storyteller.prompts import SYSTEM_PROMPT, render_style_rule, story_request
from storyteller.ratings.scales import SCALE_MAX
from storyteller.sampling import STUDIO_PRESETS
from storyteller.sampling import preset as named_preset
from storyteller.studio import draft
from storyteller.studio.compose import (
    Advanced,
    candidate_count,
    check_inputs,
    model_controls,
    parse_banned,
    sampling_for,
    settings_json,
)
from storyteller.studio.export import file_stem, story_markdown, story_text

ANY = "(any)"
FINISH_NOTES = {"length": "stopped at the token limit: Continue to go on",
                "stopped": "stopped by you", "error": "interrupted by an error"}

cfg = ui.config()
lib = ui.library()
connection = ui.connection_sidebar()
st.session_state.setdefault("history", draft.History())

story_id = st.session_state.get("story_id")
if story_id and st.session_state.get("stop"):
    # The run after a Stop click: the interrupted run is still saving what it had; wait for it
    # (briefly) so the page shows the stopped version, not its last autosave.
    for _ in range(40):
        latest = lib.story(story_id).current_id if story_id else None
        if latest is None or lib.generation(latest).finish_reason is not None:
            break
        time.sleep(0.05)
story, versions, current = ui.open_story(lib, "story_id")
story_id = story.id if story else None
# Candidates written side by side, until the writer keeps one: {story, ids, before}.
offered = st.session_state.get("w_candidates_shown")
waiting = story_choices.pending(offered, story, versions)
# The banned list on show: the open story's (kept in the library), or the next story's.
banned_key = f"w_banned_{story_id or 'new'}"


def banned_or_refused() -> str | None:
    """The banned list as typed, or None (its problems shown) when it cannot be sent."""
    text = st.session_state.get(banned_key, "")
    problems = parse_banned(text)[1]
    for problem in problems:
        notice.error(problem)
    return None if problems else text


def _banned_saved(story_id: str | None, key: str) -> None:
    if story_id:
        lib.set_memory(story_id, banned=parse_banned(st.session_state.get(key, ""))[0])


left, right = st.columns([2, 3], gap="large")

# ------------------------------------------------------------------------------ the request
with left:
    st.subheader("What to write")
    title = st.text_input("Title", key=ui.kept("w_title", ""), placeholder="optional")
    premise = st.text_area("Premise", key=ui.kept("w_premise", ""), height=130,
                           placeholder="A lighthouse keeper finds a letter addressed to the sea.")
    st.caption(f"{len(premise):,} / {cfg.max_premise_chars:,} characters")
    controls = {}
    grid = st.columns(2)
    for index, control in enumerate(model_controls(connection.model)):
        with grid[index % 2]:
            value = st.selectbox(
                control.label, [ANY, *control.options], key=ui.kept(f"w_{control.name}", ANY),
                accept_new_options=True,
                help="Values this model was trained on; type another to try it." if control.trained
                else "Examples; this model lists no trained values for it.")
            controls[control.name] = "" if value in (None, ANY) else value
    rule = render_style_rule(controls)
    # Always one element here, so the expander below keeps its place (and stays open) when the
    # style changes between runs.
    st.caption(f"{rule} (sent with the request)" if rule else " ")
    preset_name = st.segmented_control("Sampling", STUDIO_PRESETS,
                                       key=ui.kept("w_preset", "balanced"),
                                       help="focused: steadier, more predictable; balanced: the "
                                            "default; creative: looser and more surprising.")
    preset_name = preset_name or "balanced"
    chosen = named_preset(preset_name)
    with st.expander("Advanced"):
        own = st.toggle("Set these myself", key=ui.kept("w_own", False))
        suffix = "own" if own else preset_name  # the preset's values while not set by hand
        temperature = st.slider("Temperature", 0.0, 2.0, chosen.temperature, 0.05,
                                key=f"w_temperature_{suffix}", disabled=not own)
        top_p = st.slider("Top-p", 0.05, 1.0, chosen.top_p, 0.01, key=f"w_top_p_{suffix}",
                          disabled=not own)
        min_p = st.slider("Min-p", 0.0, 0.5, 0.0, 0.01, key=f"w_min_p_{suffix}", disabled=not own)
        penalty = st.slider("Repetition penalty", 1.0, 2.0, chosen.repetition_penalty, 0.01,
                            key=f"w_penalty_{suffix}", disabled=not own)
        max_tokens = st.number_input("Max tokens", 16, cfg.max_tokens,
                                     key=ui.kept("w_max_tokens", min(600, cfg.max_tokens)),
                                     step=50)
        seed = st.number_input("Seed", 0, 2**31 - 1, key=ui.kept("w_seed", None),
                               placeholder="random", help="The same seed and settings give the "
                                                          "same story.")
    advanced = Advanced(temperature, top_p, min_p, penalty, int(max_tokens),
                        int(seed) if seed is not None else None) if own else \
        Advanced(max_tokens=int(max_tokens), seed=int(seed) if seed is not None else None)
    with st.expander("Banned words and phrases", expanded=bool(story and story.banned)):
        writing.banned_panel(lib, cfg, writing.started(
            banned_key, "\n".join(story.banned) if story else ""),
            partial(_banned_saved, story_id, banned_key), "w")
    ui.keep("w_title", "w_premise", "w_preset", "w_own", "w_max_tokens", "w_seed",
            "w_candidates", *[f"w_{name}" for name in controls])
    row = st.columns([1, 2], vertical_alignment="bottom")
    asked = row[0].number_input("Candidates", 1, cfg.max_candidates,
                                key=ui.kept("w_candidates", 1),
                                help=f"Write, Continue and Regenerate write up to "
                                     f"{cfg.max_candidates} side by side; keep the best, and "
                                     "your pick is recorded as preferred.")
    write = row[1].button("Write", type="primary", icon=":material/edit:", key="write",
                          disabled=not connection.ready, width="stretch")
    if not connection.ready:
        st.caption("Connect to an endpoint in the sidebar to write.")

# ------------------------------------------------------------------------------ the story
action = None
tokens: list = []
with right:
    notice = st.container()
    if story is None:
        st.info("Fill in a premise or a title, pick a genre and style, and press **Write**.")
    else:
        st.subheader(ui.plain(ui.story_name(story)))
        set_controls = [f"{k}: {v}" for k, v in story.controls.items() if v]
        if set_controls:
            st.caption(ui.plain(" · ".join(set_controls)))
        if not waiting:
            ui.version_picker(lib, story.id, versions, story.current_id, "history",
                              f"branch_{story.id}_{story.current_id}")
    # While candidates wait, the story so far is shown above them (none for a first draft).
    before = current if current is not None and not (waiting and current.id in offered["ids"]) \
        else None
    box = st.container(border=story is not None and (before is not None or not waiting),
                       key="story_box")
    with box:
        story_slot = st.empty()
    stop_slot = st.empty()
    if waiting:
        if before is not None:
            story_slot.text(before.text or " ", width="stretch")
        st.info(f"{len(offered['ids'])} candidates below: keep one to go on. The others stay as "
                "versions.")
    elif current is not None:
        story_slot.text(current.text or " ", width="stretch")
        note = FINISH_NOTES.get(current.finish_reason or "", "")
        st.caption(f"{draft.word_count(current.text):,} words" + (f" · {note}" if note else "")
                   + (f" · {ui.plain(current.model)}" if current.model else ""))
        writing.steering_report(current.details)
        tokens = story_choices.alternatives_section(st.container(), current, connection.model,
                                                    connection.ready, "w_branch")
        row = st.container(horizontal=True, vertical_alignment="center")
        if row.button("Continue", icon=":material/arrow_forward:", key="continue",
                      disabled=not connection.ready):
            action = "continue"
        if row.button("Regenerate", icon=":material/refresh:", key="regenerate",
                      disabled=not connection.ready or
                      draft.generating_request(versions, current.id) is None):
            action = "regenerate"
        if row.button("Undo", icon=":material/undo:", key="undo"):
            target, history = st.session_state.history.undo(versions, current.id)
            st.session_state.history = history
            if target:
                lib.set_current(story.id, target)
            st.rerun()
        if row.button("New story", icon=":material/add:", key="new_story"):
            st.session_state.story_id = None
            st.session_state.history = draft.History()
            st.session_state.pop("w_candidates_shown", None)
            st.session_state.pop("w_banned_new", None)
            st.rerun()
        editing = row.toggle("Edit", key=f"editing_{current.id}")
        final = st.checkbox("Let the next part end the story", key="w_final")
        if editing:
            edited = st.text_area("Edit the story", current.text, height=320,
                                  key=f"edit_{current.id}")
            saved = st.button("Save edit", icon=":material/save:", key="save_edit")
            if saved and edited != current.text:
                made = lib.add_generation(story.id, kind="edit", text=edited, parent_id=current.id)
                st.session_state.history = st.session_state.history.moved(current.id, made.id)
                st.rerun()
        with st.expander("Rate this version", expanded=current.stars is None):
            stars = st.feedback("stars", key=f"stars_{current.id}",
                                default=current.stars - 1 if current.stars else None)
            comment = st.text_input("Comment", current.comment, key=f"comment_{current.id}",
                                    max_chars=2000, placeholder="what worked, what did not")
            if st.button("Save rating", key=f"rate_{current.id}", disabled=stars is None):
                lib.rate(current.id, int(stars) + 1, comment)
                st.toast(f"Saved: {int(stars) + 1} of {SCALE_MAX} stars")
        stem = file_stem(ui.story_name(story))
        down = st.columns(2)
        down[0].download_button("Markdown", story_markdown(story, current.text).encode("utf-8"),
                                f"{stem}.md", "text/markdown", on_click="ignore",
                                icon=":material/download:")
        down[1].download_button("Plain text", story_text(story, current.text).encode("utf-8"),
                                f"{stem}.txt", "text/plain", on_click="ignore",
                                icon=":material/download:")
    st.caption(ui.library_caption())

if waiting:
    story_choices.candidates(lib, story.id, versions, offered, "history", "w_candidates_shown")

if write:
    action = "write"


# ------------------------------------------------------------------------------ generating
def generate(action: str) -> bool:
    """Stream one new version into the story box, saving it as it grows. True when done."""
    model, client = connection.model, connection.client
    system = model.storyteller.get("system_prompt") or SYSTEM_PROMPT
    sampling = sampling_for(preset_name, advanced, cfg, model)
    base_text, parent, request, kind = "", None, None, action
    if action == "write":
        problems = check_inputs(premise, title, cfg)
        if problems:
            for problem in problems:
                notice.error(problem)
            return False
        request = story_request(premise, title, controls)
        messages = story_messages(request, system)
    elif action == "regenerate":
        source = draft.generating_request(versions, current.id)
        request, messages, parent = draft.request_from_json(source.request), source.messages, \
            source.parent_id
        if source.kind == "continue":
            base_text = next(v.text for v in versions if v.id == source.parent_id)
    else:
        root = draft.lineage(versions, current.id)[0]
        request = draft.continuation_request(draft.request_from_json(root.request), current.text,
                                             versions, current.id, final)
        messages, parent, base_text = story_messages(request, system), current.id, current.text
        kind = "continue"
    banned_text = banned_or_refused()
    if banned_text is None:
        return False
    extras = requested_extras(model, banned_to_send(cfg, lib, banned_text))
    count, note = candidate_count(asked, cfg)
    if note:
        notice.info(note)
    # Write starts a new story; the other actions add a version to the open one.
    target = {"story": None if action == "write" else story, "generation": None}

    def new_story() -> None:
        target["story"] = lib.create_story(title.strip(), premise.strip(),
                                           dict(request.controls),
                                           banned=parse_banned(banned_text)[0])
        st.session_state.story_id = target["story"].id

    made_as = dict(kind=kind, parent_id=parent, messages=messages,
                   request=draft.request_to_json(request),
                   settings=settings_json(preset_name, sampling), model=model.id,
                   endpoint=client.endpoint)
    if count > 1:
        with st.spinner(f"Writing {count} candidates…"):
            try:
                answers = client.candidates(model.id, messages, sampling, count, **extras)
            except ClientError as error:
                with notice:
                    ui.show_problem(error)
                return False
        if target["story"] is None:
            new_story()
        ids = []
        for index, answer in enumerate(answers):
            whole, start = draft.continued(base_text, answer.text)
            # A first draft's first candidate is the story's version until one is kept, so a
            # story is never left without one; a later action's candidates wait beside it.
            made = lib.add_generation(
                target["story"].id, text=whole, finish_reason=answer.finish_reason or "stop",
                details=answer_details(whole[start:], start, answer, candidates=count),
                make_current=action == "write" and index == 0, **made_as)
            ids.append(made.id)
        if action == "write":
            st.session_state.history = draft.History()
        st.session_state.w_candidates_shown = {
            "story": target["story"].id, "ids": ids,
            "before": None if action == "write" else current.id}
        return True
    shown, finish, completion = base_text, None, None

    def save(text: str, reason: str | None) -> None:
        # Rows are made on the first piece: a request that fails at once leaves nothing behind.
        if target["story"] is None:
            new_story()
        if target["generation"] is None:
            target["generation"] = lib.add_generation(target["story"].id, text=text,
                                                      finish_reason=reason, **made_as)
            if action == "write":
                st.session_state.history = draft.History()
            else:
                st.session_state.history = st.session_state.history.moved(
                    current.id, target["generation"].id)
        else:
            lib.update_text(target["generation"].id, text, reason)

    stream = client.stream(model.id, messages, sampling, **extras)
    stop_slot.button("Stop", icon=":material/stop:", key="stop")
    last_save = last_draw = 0.0
    piece_text, start = "", 0
    try:
        for piece in stream:
            if isinstance(piece, Completion):
                finish, completion = piece.finish_reason or "stop", piece
                break
            piece_text += piece
            shown, start = draft.continued(base_text, piece_text)
            # Each draw sends the whole text so far to the browser: at most 10 a second.
            if time.monotonic() - last_draw > 0.1:
                story_slot.text(shown, width="stretch")
                last_draw = time.monotonic()
            if time.monotonic() - last_save > 0.5:
                save(shown, None)
                last_save = time.monotonic()
    except ClientError as error:
        finish = "error"
        story_slot.text(shown or " ", width="stretch")
        with notice:
            ui.show_problem(error)
    finally:
        # Reached also when the writer presses Stop: Streamlit interrupts this run to start
        # the next one, and the text so far is kept as a stopped version.
        stream.close()
        if piece_text:
            save(shown, finish or "stopped")
            # What the answer was, its words' alternatives and the banned-list report.
            lib.set_details(target["generation"].id,
                            answer_details(shown[start:], start, completion))
    return finish not in (None, "error")


def branch(word_index: int, alternative: str) -> bool:
    """A new version beside the current one: its latest part up to the word, the chosen
    alternative, and the model's continuation of that (continue_final_message: the assistant
    message is the part so far, the whole story for a first draft). True when done."""
    word = next((w for w in draft.words_of(tokens) if w.index == word_index), None)
    if word is None:
        return False
    prefix = draft.branch_prefix(tokens, word, alternative)
    model, client = connection.model, connection.client
    sampling = sampling_for(preset_name, advanced, cfg, model)
    banned_text = banned_or_refused()
    if banned_text is None:
        return False
    # A continuation's part follows the version it grew from; a first draft is all its own.
    base = draft.by_id(versions)[current.parent_id].text \
        if current.kind == "continue" and current.parent_id else ""
    messages = [m for m in current.messages if m.get("role") != "assistant"]
    extras = {**requested_extras(model, banned_to_send(cfg, lib, banned_text)),
              "continue_final_message": True}
    more, completion, error = stream_into(client, model.id, story_slot,
                                     [*messages, {"role": "assistant", "content": prefix}],
                                     sampling, extras, draft.continued(base, prefix)[0])
    whole, start = draft.continued(base, prefix + more)
    made = lib.add_generation(
        story.id, kind="continue" if current.kind == "continue" else "regenerate", text=whole,
        parent_id=current.parent_id, messages=messages, request=current.request,
        settings=settings_json(preset_name, sampling), model=model.id,
        endpoint=client.endpoint, finish_reason=(completion.finish_reason or "stop") if completion
        else "error",
        details=branch_details(current, tokens, word, alternative, whole[start:], start,
                               completion))
    st.session_state.history = st.session_state.history.moved(current.id, made.id)
    if error is not None:
        with notice:
            ui.show_problem(error)
        return False
    return True


asked_branch = st.session_state.pop("w_branch", None)
if asked_branch and connection.ready and current is not None and not waiting:
    if branch(asked_branch["word"], asked_branch["alternative"]):
        st.rerun()
elif action and connection.ready:
    if generate(action):
        st.rerun()
