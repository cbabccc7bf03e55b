"""Long commands say what they do and how far they are when their output is a log, not a
terminal: `storyteller merge` and `storyteller ratings` print progress lines (counts, rate, time
left; a line while one long call runs), at $STORYTELLER_PROGRESS_EVERY seconds — set to 0 here
so every step prints, rather than waiting 30 s."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from storyteller import console
from storyteller.errors import InputError
from tests.conftest import run_cli
from tests.integration.finetune_data import train_tiny, write_data
from tests.unit.test_ratings_fixture import write_generations

LOUD = {"STORYTELLER_QUIET": "", "STORYTELLER_PROGRESS_EVERY": "0"}
COUNTED = re.compile(r"^(?P<what>.+?): (?P<done>\d+)/(?P<total>\d+) \(\d+%\), "
                     r"[\d.,]+/s, \d+:\d\d left$")


def counted_lines(stderr: str) -> dict[str, list[tuple[int, int]]]:
    """{description: [(done, total), …]} of the progress lines with counts."""
    found: dict[str, list[tuple[int, int]]] = {}
    for line in stderr.splitlines():
        match = COUNTED.match(line.strip())
        if match:
            found.setdefault(match["what"], []).append((int(match["done"]), int(match["total"])))
    return found


def test_a_long_call_prints_a_line_while_it_runs_and_when_it_ends():
    lines: list[str] = []
    steps = console.LineSteps(every=0.05, write=lines.append)
    with steps.phase("loading"):
        time.sleep(0.3)
    assert any(re.fullmatch(r"loading: running for 0:00", line) for line in lines)
    assert lines[-1] == "loading: done in 0:00"
    quiet: list[str] = []
    with console.LineSteps(every=30, write=quiet.append).phase("short"):
        pass
    assert quiet == []  # a short call says nothing


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("STORYTELLER_PROGRESS_EVERY", "2.5")
    assert console.line_interval() == 2.5
    monkeypatch.delenv("STORYTELLER_PROGRESS_EVERY")
    assert console.line_interval() == 30.0
    monkeypatch.setenv("STORYTELLER_PROGRESS_EVERY", "soon")
    with pytest.raises(InputError, match=r"\$STORYTELLER_PROGRESS_EVERY: 'soon' is not a number"):
        console.line_interval()


@pytest.mark.slow
def test_merge_prints_progress_lines_in_a_log(tmp_path):
    data = write_data(tmp_path / "curated", train=8, val=2, test=6)
    run_dir = train_tiny(data, tmp_path / "runs" / "tiny", "train.max_steps=1")
    done = run_cli("merge", "--run", str(run_dir), "--out", str(tmp_path / "models" / "tiny"),
                   env=LOUD)
    assert done.returncode == 0, done.stderr
    counted = counted_lines(done.stderr)
    # Both models: 4 prompts (logits and a greedy story) and the held-out stories, counted up.
    for model in ("base + adapter", "merged model"):
        prompts = counted[f"merge: {model}: logits and greedy stories"]
        assert prompts == [(n, 4) for n in range(1, 5)]
        stories = counted[f"merge: {model}: held-out perplexity"]
        assert [d for d, _ in stories] == list(range(1, 7)) and {t for _, t in stories} == {6}
    for phase in ("loading base + adapter (fp32)", "merging the adapter", "writing the model",
                  "reloading the written model"):
        assert re.search(rf"^merge: {re.escape(phase)}: done in \d+:\d\d$", done.stderr, re.M)
    # Quiet, the same command prints none of it.
    again = run_cli("merge", "--run", str(run_dir), "--out", str(tmp_path / "models" / "quiet"))
    assert again.returncode == 0 and not counted_lines(again.stderr)


def test_ratings_make_and_report_print_progress_lines_in_a_log(tmp_path):
    source = write_generations(tmp_path / "eval")
    done = run_cli("ratings", "make", "--from", str(source.parent), "--raters", "3", env=LOUD)
    assert done.returncode == 0, done.stderr
    counted = counted_lines(done.stderr)
    assert counted["ratings: reading generations"][-1] == (24, 24)
    assert counted["ratings: writing sheets"] == [(1, 3), (2, 3), (3, 3)]
    assert re.search(r"^ratings: choosing and ordering items: done in 0:\d\d$", done.stderr, re.M)
    sheets = sorted((source.parent / "ratings" / "sheets").glob("rater-0?.csv"))
    imported = run_cli("ratings", "import", *map(str, sheets), env=LOUD)
    # Unfilled sheets are refused row by row, but each sheet is still counted through.
    assert counted_lines(imported.stderr)["ratings: importing sheets"] == [(1, 3), (2, 3), (3, 3)]


def test_items_finished_by_worker_threads_are_counted_while_the_call_runs():
    """Stories written by an endpoint's workers, 64 to a call: the count still shows up every
    interval during the call, with the total and the time left, then one closing line."""
    from concurrent.futures import ThreadPoolExecutor

    lines: list[str] = []
    steps = console.LineSteps(every=0.05, write=lines.append)
    with steps.counting("stories (tuned)", 12) as advance:
        def one(_):
            time.sleep(0.04)
            advance(1)

        with ThreadPoolExecutor(3) as pool:
            list(pool.map(one, range(12)))
    counted = counted_lines("\n".join(lines))["stories (tuned)"]
    assert counted and all(total == 12 for _, total in counted)
    assert [done for done, _ in counted] == sorted(done for done, _ in counted)
    assert any(0 < done < 12 for done, _ in counted)  # heard before the call returned
    assert lines[-1] == "stories (tuned): 12 done in 0:00"
    quiet: list[str] = []
    with console.LineSteps(every=30, write=quiet.append).counting("short", 2) as advance:
        advance(2)
    assert quiet == []
