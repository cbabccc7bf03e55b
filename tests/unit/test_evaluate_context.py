"""Evaluation of document continuations: direction followed, notes' names kept, invented names,
and the per-kind breakdown with paired intervals."""

from __future__ import annotations

from storyteller.evaluate.aggregate import summarise
from storyteller.evaluate.context_metrics import context_metrics, memory_of, variant_of
from storyteller.evaluate.report import kind_rows

MEMORY = {"notes": "Characters: Mira, Jonas.\nMira found the key under the step.",
          "direction": "Next: Mira and Jonas, with lantern and mill.",
          "summary": "", "context": "Mira crept to the old mill at night."}
REFERENCE = "Jonas waited at the mill. Mira showed him the lantern and the key."


def record(text, model="tuned", prompt="p1", memory=MEMORY, kind="document"):
    return {"model": model, "prompt_id": prompt, "sample": 0, "kind": kind, "text": text,
            "reference": REFERENCE, "memory": memory, "controls": {}, "finish_reason": "stop",
            "new_tokens": 10}


def test_a_passage_that_follows_the_direction_and_keeps_the_names_scores_full_marks():
    good = context_metrics(record("At the mill, Mira lit the lanterns while Jonas watched."))
    assert good == {"direction_followed": 1.0, "notes_names_kept": 1.0,
                    "notes_names_recalled": 1.0, "invented_names": 0.0}


def test_names_only_the_notes_remember_are_scored_apart_from_those_the_story_shows():
    """Mira is in the story so far; Jonas only in the notes (he fell out of the window): only
    he counts for notes_names_recalled, and a passage that forgets him scores 0 there."""
    kept = context_metrics(record("Jonas came back to the mill at dusk."))
    assert kept["notes_names_recalled"] == 1.0
    forgot = context_metrics(record("Mira stood alone at the mill."))
    assert forgot["notes_names_kept"] == 0.5 and forgot["notes_names_recalled"] == 0.0
    # Every needed name visible in the story so far: nothing only the notes remember.
    shown = {**MEMORY, "context": "Mira and Jonas crept to the old mill at night."}
    assert "notes_names_recalled" not in context_metrics(record("Jonas came.", memory=shown))


def test_a_passage_that_replaces_the_characters_is_caught():
    bad = context_metrics(record("The next day, Tobias walked to the sea with Clara and Tobias."))
    assert bad["direction_followed"] == 0.0 and bad["notes_names_kept"] == 0.0
    assert bad["invented_names"] == 1.0


def test_other_kinds_have_no_context_metrics():
    assert context_metrics(record("Anything.", memory=None, kind="premise")) == {}
    assert memory_of({"kind": "premise", "request": {}}) is None
    pair = {"kind": "document", "request": {"context": "C", "notes": None}}
    assert memory_of(pair) == {"notes": "", "direction": "", "summary": "", "context": "C"}
    assert variant_of(record("x")) == ["document", "document · notes", "document · direction"]


def test_per_kind_summary_pairs_tuned_and_base_by_prompt():
    records = []
    for i in range(12):
        records.append(record("Mira and Jonas carried the lantern to the mill.", "tuned", f"p{i}"))
        records.append(record("Tobias went to sea with Clara and Tobias.", "base", f"p{i}"))
        records.append(record("A story.", "tuned", f"q{i}", None, "premise"))
        records.append(record("A story.", "base", f"q{i}", None, "premise"))
    for r in records:
        r["metrics"] = {"words": len(r["text"].split()), **context_metrics(r)}
    summary = summarise(records, {}, "tuned", "base", resamples=200)
    row = summary["by_kind"]["document · direction"]["metrics"]["direction_followed"]
    assert row["values"]["tuned"]["value"] == 1.0 and row["values"]["base"]["value"] == 0.0
    assert row["difference"]["low"] > 0 and row["difference"]["n"] == 12
    assert "direction_followed" not in summary["by_kind"]["premise"]["metrics"]
    assert any("direction followed" in f and "(better)" in f for f in summary["findings"])
    rows = kind_rows(summary, ["tuned", "base"])
    assert any(r[0] == "document (12)" and r[1].startswith("invented names") and r[-1].endswith("✔")
               for r in rows)
