"""Train: a writer builds a model of their own style. Stories (library, uploads or a curated
folder) → what was read → a recipe → training with a live curve → evaluation against the base
→ Use this model. The work runs in a detached runner (storyteller.studio.trainer), so a
reload or a studio restart finds it again; this page only reads and draws the job's folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st
import yaml

import studio_ui as ui
from storyteller.client import ClientError, ModelNotFound
from storyteller.errors import StorytellerError
from storyteller.models import gpu_available
from storyteller.studio import training as tr
from storyteller.studio import trainer as runner
from storyteller.studio.library import default_library_path


def draw(progress: tr.Progress, running: bool, key: str = "sample_box") -> None:
    """Step, loss, pace, time left, the loss curve and the latest sample of a run."""
    metrics = st.columns(4)
    metrics[0].metric("Step", f"{progress.step} / {progress.total}")
    metrics[1].metric("Loss", f"{progress.train[-1][1]:.3f}" if progress.train else "—")
    metrics[2].metric("Tokens/s", f"{progress.tokens_per_s:,.0f}" if progress.tokens_per_s
                      else "—")
    eta = progress.eta_s
    metrics[3].metric("Time left", "—" if eta is None or not running
                      else f"{int(eta // 60)} min {int(eta % 60)} s")
    if progress.train or progress.val:
        curve = pd.DataFrame({"training loss": pd.Series(dict(progress.train), dtype=float),
                              "held-out loss": pd.Series(dict(progress.val), dtype=float)})
        # The checks fall every few steps: join them into a line across the steps between.
        curve["held-out loss"] = curve["held-out loss"].interpolate(limit_area="inside")
        curve.index.name = "step"
        st.line_chart(curve, x_label="step", y_label="loss")
        st.caption(f"{len(progress.train)} steps logged, {len(progress.val)} checks.")
    st.markdown("**Latest sample**")
    if progress.sample:
        st.caption(ui.plain(f"Step {progress.sample.get('step')}: "
                            f"{progress.sample.get('prompt', '')}"))
        with st.container(border=True, key=key):
            st.text(progress.sample.get("story") or " ")
    else:
        st.caption("No sample yet: the model writes one at each check.")


cfg = ui.config()
lib = ui.library()
connection = ui.connection_sidebar()
root = tr.training_root(cfg.library or default_library_path())
max_mb = int(getattr(cfg, "max_upload_mb", tr.DEFAULT_MAX_UPLOAD_MB))

st.subheader("Train a model of your own style")

# Runs started outside the studio (the demo's quickstart, a terminal's `storyteller finetune`)
# are shown as they train; they are not jobs of this page, so only watched.
runs_folder = Path(cfg.runs)
if tr.runs_in_progress(runs_folder):
    @st.fragment(run_every=5)
    def watch_runs() -> None:
        for run in tr.runs_in_progress(runs_folder):
            with st.expander(f"Training now: {ui.plain(str(run))}", expanded=True):
                draw(tr.run_progress(run), running=True, key=f"watch_{tr.slug(run.name)}")
                st.caption("Started outside the studio. Once it is merged and served "
                           "(`storyteller models use`), it appears in the Model list.")

    watch_runs()

# ------------------------------------------------------------------------------ which job
jobs = tr.list_jobs(root)
if "train_job" not in st.session_state:
    # After a reload: the job that runs now, else the newest one.
    running = [j for j in jobs if runner.runner_alive(j)]
    st.session_state.train_job = (running or jobs)[0].id if jobs else None
NEW = "+ new training"
ids = [NEW, *[j.id for j in jobs]]
names = {j.id: f"{j.name or j.id} · {runner.state_of(j)['state']}" for j in jobs}
chosen = st.selectbox("Training", ids, index=ids.index(st.session_state.train_job)
                      if st.session_state.train_job in ids else 0,
                      format_func=lambda i: names.get(i, i))
if (None if chosen == NEW else chosen) != st.session_state.train_job:
    st.session_state.train_job = None if chosen == NEW else chosen
    st.rerun()

job = next((j for j in jobs if j.id == st.session_state.train_job), None)
if job is None:
    with st.form("new_job"):
        name = st.text_input("Name your model", max_chars=60, placeholder="My fables",
                             help="Also the name the endpoint serves it under.")
        if st.form_submit_button("Create", type="primary"):
            if not tr.slug(name):
                st.error("Give the model a name with a letter or a digit in it.")
            else:
                st.session_state.train_job = tr.new_job(root, name).id
                st.rerun()
    st.caption(f"Training folder: {ui.plain(str(root))}")
    st.stop()

state = runner.state_of(job)
alive = runner.runner_alive(job)
locked = job.started

# ------------------------------------------------------------------------------ 1. stories
st.markdown("#### 1 · Stories")
if locked:
    where = job.sources.get("curated") or ", ".join(p.name for p in tr.source_paths(job))
    st.caption(f"Training on: {ui.plain(where or 'nothing')}")
else:
    kind = st.radio("Learn from", ["Files and library stories", "A curated folder"],
                    horizontal=True, index=1 if job.sources.get("curated") else 0)
    if kind == "A curated folder":
        folder = st.text_input("Curated folder", job.sources.get("curated", ""),
                               placeholder="data/mine", help="A folder `storyteller curate "
                               "--out` wrote.")
        if folder.strip() and folder.strip() != job.sources.get("curated"):
            try:
                job.sources = {"curated": str(tr.check_curated(folder.strip()))}
                job.save()
                st.rerun()
            except StorytellerError as error:
                ui.show_problem(error)
    else:
        if job.sources.get("curated"):
            job.sources = {}
            job.save()
        use_library = st.checkbox("Stories from my library", value=bool(
            job.sources.get("library_stars")))
        stars = st.slider("rated at least (stars)", 1, 5, int(job.sources.get(
            "library_stars") or 4), disabled=not use_library)
        wanted = stars if use_library else 0
        if wanted != (job.sources.get("library_stars") or 0):
            job.sources["library_stars"] = wanted
            job.save()
        if wanted:
            count = tr.export_library(job, lib, wanted)
            st.caption(f"{count} version{'s' * (count != 1)} rated {wanted}★ or more in the "
                       "library.")
        files = st.file_uploader(f"Upload story files (up to {max_mb} MB each)",
                                 accept_multiple_files=True, key=f"upload_{job.id}",
                                 help="Text, Markdown, JSONL/JSON/CSV/Parquet records, Word, "
                                      "OpenDocument, RTF, EPUB or HTML.")
        # The uploader hands its files over on every run: store each once, so one removed
        # below stays removed.
        stored_ids = st.session_state.setdefault(f"stored_{job.id}", set())
        for file in files or []:
            if file.file_id in stored_ids:
                continue
            try:
                tr.save_upload(job, file.name, file.getvalue(), max_mb)
                stored_ids.add(file.file_id)
            except StorytellerError as error:
                ui.show_problem(error)
        stored = tr.uploads(job)
        if stored:
            st.caption("Uploaded: " + ", ".join(ui.plain(p.name) for p in stored))
            gone = st.selectbox("Remove an upload", ["—", *[p.name for p in stored]])
            if gone != "—" and st.button("Remove", key="remove_upload"):
                (job.uploads / gone).unlink(missing_ok=True)
                st.session_state.pop(f"preview_{job.id}", None)
                st.rerun()

# ------------------------------------------------------------------------------ 2. preview
st.markdown("#### 2 · What was read")
paths = tr.source_paths(job)
if job.sources.get("curated"):
    st.caption("A curated folder: its stories were read and filtered when it was curated.")
elif not paths:
    st.info("Upload story files or choose library stories first.")
else:
    if st.button("Read my stories", icon=":material/menu_book:"):
        with st.spinner("Reading…"):
            st.session_state[f"preview_{job.id}"] = tr.preview(paths)
    readings = st.session_state.get(f"preview_{job.id}")
    if readings:
        total = sum(r.stories for r in readings)
        st.markdown(f"**{total} stories found** in {len(readings)} file"
                    f"{'s' * (len(readings) != 1)}.")
        for reading in readings:
            with st.expander(f"{ui.plain(reading.name)}: {reading.stories} stories"
                             + (f" ({reading.format})" if reading.format else "")):
                if reading.why:
                    st.caption(ui.plain(f"Read as {reading.format}: {reading.why}"))
                for detail in reading.details:
                    st.warning(detail, icon="⚠️")
                for warning in reading.warnings:
                    st.warning(warning)
                if reading.set_aside:
                    st.text("Set aside: " + ", ".join(f"{n} {r.replace('_', ' ')}"
                                                      for r, n in reading.set_aside.items()))
                if reading.rows:
                    st.dataframe(pd.DataFrame(reading.rows), hide_index=True)
    if (job.data / "manifest.json").is_file():
        counts = tr.read_json(job.data / "manifest.json").get("counts", {})
        st.caption(f"Curated: {counts.get('stories_kept', 0)} of {counts.get('stories_read', 0)}"
                   " stories kept" + "".join(f"; {n} {r.replace('_', ' ')}" for r, n in
                                             counts.get("rejected", {}).items()))

# ------------------------------------------------------------------------------ 3. recipe
st.markdown("#### 3 · Recipe")
offered = tr.recipes(gpu_available())
names_by = {r.name: r for r in offered}
if job.recipe not in names_by:
    job.recipe = offered[0].name
picked = st.radio("Recipe", list(names_by), index=list(names_by).index(job.recipe),
                  format_func=lambda n: names_by[n].label, horizontal=True, disabled=locked)
chosen_recipe = names_by[picked]
st.caption(ui.plain(chosen_recipe.description))
if picked != job.recipe:
    job.recipe, job.options = picked, {}
    job.save()
defaults = tr.option_defaults(chosen_recipe)
values = {}
with st.expander("Options", expanded=False):
    grid = st.columns(3)
    for index, option in enumerate(tr.OPTIONS):
        current = job.options.get(option.key, defaults[option.key])
        key = f"opt_{job.id}_{option.key}"
        with grid[index % 3]:
            if option.kind is str:
                values[option.key] = st.text_input(option.label, str(current or ""), key=key,
                                                   help=option.meaning, disabled=locked)
            elif option.kind is float:
                values[option.key] = st.number_input(option.label, min_value=option.low,
                                                     value=float(current), format="%.1e",
                                                     key=key, help=option.meaning,
                                                     disabled=locked)
            else:
                values[option.key] = int(st.number_input(option.label, int(option.low),
                                                          value=int(current), step=1, key=key,
                                                          help=option.meaning,
                                                          disabled=locked))
    st.caption("Hover over ⓘ for what each option means.")
settings_problem = None
if not locked:
    job.options = values
    job.save()
    try:
        settings = tr.finetune_settings(chosen_recipe, values, job.data, job.run, job.name)
        tr.check_settings(settings)
    except StorytellerError as error:
        settings_problem = error
        ui.show_problem(error)


# ------------------------------------------------------------------------------ 4. train
def start(action: str) -> None:
    try:
        runner.launch(job, action)
    except StorytellerError as error:
        st.session_state.train_notice = error
    st.rerun()


st.markdown("#### 4 · Train")
notice = st.session_state.pop("train_notice", None)
if notice is not None:
    ui.show_problem(notice)
if state["state"] == "new":
    ready = bool(paths or job.sources.get("curated")) and settings_problem is None
    if st.button("Start training", type="primary", icon=":material/play_arrow:",
                 disabled=not ready):
        job.config.write_text(yaml.safe_dump(settings, sort_keys=False))
        start("train")


@st.fragment(run_every=2 if alive else None)
def live() -> None:
    """The run as it is now, redrawn every 2 s while the runner lives."""
    now = runner.state_of(job)
    if now.get("state") != state.get("state") or runner.runner_alive(job) != alive:
        st.rerun(scope="app")  # finished, paused or crashed: the whole page changes
    progress = tr.read_progress(job)
    what = now.get("state")
    action = now.get("action", "train")
    if what in ("running", "starting", "pausing") and action == "train":
        phase = now.get("phase") or "starting"
        if phase == "curate":
            st.info("Preparing your stories (curate)…", icon=":material/hourglass_top:")
        else:
            st.info(f"Training: step {progress.step} of {progress.total}"
                    + (" — pausing at a checkpoint…" if what == "pausing" else ""),
                    icon=":material/model_training:")
    elif what == "paused" and action == "train":
        st.info(f"Paused at step {progress.step} of {progress.total} (checkpoint at step "
                f"{max(progress.checkpoints or [0])}).", icon=":material/pause:")
    elif (job.run / "final" / "COMPLETE").is_file():
        st.success(f"Training finished: {progress.step} steps.", icon=":material/check:")
    if what in ("failed", "stopped"):
        st.error(ui.plain(f"{'Failed' if what == 'failed' else 'Stopped'} during "
                          f"{now.get('phase') or now.get('action')}: {now.get('message', '')}"))
        if now.get("log"):
            st.code(now["log"], language=None)
    draw(progress, running=what in ("running", "pausing"))


if state["state"] != "new":
    live()
    row = st.container(horizontal=True)
    if alive and state.get("action") == "train":
        if row.button("Pause", icon=":material/pause:"):
            runner.pause(job)
            st.rerun()
    elif not alive and state.get("action") == "train" and state["state"] in (
            "paused", "failed", "stopped"):
        if row.button("Resume", type="primary", icon=":material/play_arrow:"):
            start("train")

# ------------------------------------------------------------------------------ 5. evaluate
trained = (job.run / "final" / "COMPLETE").is_file()
st.markdown("#### 5 · Evaluate")
if not trained:
    st.caption("After training: your model and its base write stories for held-out prompts.")
else:
    grid = st.columns(3)
    prompts = grid[0].number_input("Prompts", 1, 50, int(job.evaluation.get("prompts", 6)),
                                   help="Held-out prompts both models answer.")
    max_tokens = grid[1].number_input("Max tokens", 8, 2048,
                                      int(job.evaluation.get("max_tokens", 400)),
                                      help="The longest story each writes.")
    if (prompts, max_tokens) != (job.evaluation.get("prompts"), job.evaluation.get("max_tokens")):
        job.evaluation = {"prompts": int(prompts), "max_tokens": int(max_tokens)}
        job.save()
    evaluating = alive and state.get("action") == "evaluate"
    if grid[2].button("Evaluate", icon=":material/analytics:", disabled=alive):
        start("evaluate")
    if evaluating:
        st.info("Evaluating: both models are writing…", icon=":material/hourglass_top:")
    result = tr.evaluation_result(job)
    if result:
        table = pd.DataFrame(result["headline"]).rename(
            columns={"figure": "", "base": "base model", "yours": "your model",
                     "better": "better when"})
        st.dataframe(table, hide_index=True)
        for finding in result["findings"]:
            st.text("• " + finding)
        st.caption(ui.plain(f"Prompt: {result['prompt'][:300]}"))
        left, right = st.columns(2)
        left.markdown("**Base model**")
        left.text(result["base_story"] or " ")
        right.markdown("**Your model**")
        right.text(result["tuned_story"] or " ")

# ------------------------------------------------------------------------------ 6. use it
st.markdown("#### 6 · Use this model")
model = tr.usable_model(job)
if not trained:
    st.caption("After training: merged, verified and served by the endpoint.")
else:
    if alive and state.get("action") == "use":
        st.info("Merging and verifying your model…", icon=":material/hourglass_top:")
    if st.button("Use this model", type="primary", icon=":material/rocket_launch:",
                 disabled=alive or not connection.client):
        st.session_state[f"load_{job.id}"] = True
        if model is None:
            start("use")  # merge and verify first; the page loads it once that is done
        st.rerun()
    if model is not None and st.session_state.pop(f"load_{job.id}", False):
        from storyteller.client import load_model

        try:
            with st.spinner("Loading it into the endpoint…"):
                load_model(connection.client.endpoint, job.model_name, str(model),
                           api_key=connection.client.api_key)
            st.session_state.use_model = job.model_name  # the sidebar picks it
            st.session_state.train_loaded = job.model_name
            st.rerun()
        except ModelNotFound:
            st.warning(ui.plain(f"This endpoint cannot load models while it runs (an older "
                                f"`storyteller serve`). Restart it with: storyteller serve "
                                f"--model {model}"))
        except ClientError as error:
            ui.show_problem(error)
    if st.session_state.get("train_loaded") == job.model_name:
        st.success(ui.plain(f"The endpoint serves your model as {job.model_name}; the Write "
                            "page writes with it."), icon=":material/check:")
        st.page_link("views/write.py", label="Write with it", icon=":material/edit_note:")
    elif model is not None:
        st.caption(ui.plain(f"Merged and verified: {model}"))
