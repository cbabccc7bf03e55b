"""Preference records: each input shape normalised to the curated record, each bad input
rejected with its place and reason, and the split by prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyteller.curate.config import CurateConfig, SplitConfig
from storyteller.curate.preference_run import chat_template_check, read_entries, split_records
from storyteller.curate.preferences import (
    Entry,
    Refused,
    curate_records,
    group_of,
    normalise,
)
from storyteller.models import load_tokenizer

SYSTEM = {"role": "system", "content": "You are a storyteller."}
USER = {"role": "user", "content": "[ Genre: fable ]\nWrite a story from this premise: A fox lies."}
PROMPT = [SYSTEM, USER]
WHERE = {"file": "prefs.jsonl", "line": 3}


def answer(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def entries(*records, source="prefs.jsonl") -> list[Entry]:
    return [Entry(source, n, None, record) for n, record in enumerate(records, 1)]


# ------------------------------------------------------------------------------ input shapes


def test_a_trl_pair_with_string_sides_becomes_the_curated_record():
    record = normalise({"prompt": PROMPT, "chosen": "The fox lied well.",
                        "rejected": "The fox."}, WHERE, "rating sheet")
    assert record == {
        "id": None, "group": group_of(PROMPT), "kind": "pair", "prompt": PROMPT,
        "chosen": answer("The fox lied well."), "rejected": answer("The fox."), "scores": None,
        "controls": {}, "source": WHERE, "judgement": "rating sheet"}
    # The group is the contract's: "p-" + 16 hex digits of the prompt's sorted-keys JSON.
    import hashlib
    assert record["group"] == "p-" + hashlib.sha256(
        json.dumps(PROMPT, sort_keys=True).encode()).hexdigest()[:16]


def test_a_string_prompt_is_one_user_message_and_message_sides_are_kept():
    record = normalise({"id": "x-1", "prompt": "Tell me of a crow.",
                        "chosen": answer("A crow sang."), "rejected": answer("Crow.")[0],
                        "judgement": "studio pick"}, WHERE, "rating sheet")
    assert record["prompt"] == [{"role": "user", "content": "Tell me of a crow."}]
    assert record["chosen"] == answer("A crow sang.") and record["rejected"] == answer("Crow.")
    assert record["id"] == "x-1" and record["judgement"] == "studio pick"


def test_an_implicit_prompt_is_the_shared_start_of_both_conversations():
    record = normalise({"chosen": PROMPT + answer("Good."), "rejected": PROMPT + answer("Bad.")},
                       WHERE, "rating sheet")
    assert record["prompt"] == PROMPT
    assert (record["chosen"], record["rejected"]) == (answer("Good."), answer("Bad."))


def test_an_unpaired_record_keeps_its_label():
    record = normalise({"prompt": PROMPT, "completion": "A fine tale.", "label": False},
                       WHERE, "rating sheet")
    assert record["kind"] == "unpaired" and record["label"] is False
    assert record["completion"] == answer("A fine tale.") and record["scores"] is None


def test_a_studio_export_gives_controls_stars_and_judgement():
    exported = {"id": "g-b>g-a", "prompt": PROMPT, "chosen": "B.", "rejected": "A.",
                "chosen_rating": 5, "rejected_rating": 2, "text": "B.", "premise": "A fox lies.",
                "genre": "fable", "style": "moral", "model": "quickstart",
                "source": "storyteller-studio"}
    record = normalise(exported, WHERE, "rating sheet")
    assert record["controls"] == {"genre": "fable", "style": "moral"}
    assert record["scores"] == {"chosen": 5.0, "rejected": 2.0}
    # An export from before records carried their judgement: star pairs say so by their stars.
    assert record["judgement"] == "studio stars"
    assert record["source"] == WHERE  # where curate read it, not the exporter's name
    again = normalise({**exported, "judgement": "writer edit", "controls": {"genre": "myth"}},
                      WHERE, "rating sheet")
    assert again["judgement"] == "writer edit" and again["controls"] == {"genre": "myth"}


def test_a_curated_record_normalises_to_itself():
    first = normalise({"prompt": PROMPT, "chosen": "Good.", "rejected": "Bad.",
                       "scores": {"chosen": 0.9, "rejected": 0.2}, "judgement": "style check"},
                      WHERE, "rating sheet")
    first["id"] = "pref-1"
    assert normalise(first, WHERE, "rating sheet") == first


# ------------------------------------------------------------------------------- bad records


@pytest.mark.parametrize("record, reason, words", [
    ({"prompt": PROMPT, "chosen": "Good."}, "missing_side", "no rejected"),
    ({"prompt": PROMPT, "chosen": "  \n", "rejected": "Bad."}, "missing_side", "chosen is empty"),
    ({"prompt": PROMPT, "completion": "", "label": True}, "missing_side", "completion is empty"),
    ({"prompt": PROMPT}, "missing_side", "neither"),
    ({"prompt": PROMPT, "chosen": "The  fox\nlied.", "rejected": "The fox lied. "},
     "same_sides", "same text"),
    ({"prompt": [], "chosen": "a", "rejected": "b"}, "unrenderable_prompt", "empty"),
    ({"prompt": [USER, {"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"},
     "unrenderable_prompt", "ends with an assistant"),
    ({"prompt": [{"role": "narrator", "content": "x"}], "chosen": "a", "rejected": "b"},
     "unrenderable_prompt", "role 'narrator'"),
    ({"prompt": [USER, SYSTEM], "chosen": "a", "rejected": "b"}, "unrenderable_prompt",
     "system message after"),
    ({"prompt": [SYSTEM], "chosen": "a", "rejected": "b"}, "unrenderable_prompt", "no user"),
    ({"chosen": "a", "rejected": "b"}, "unrenderable_prompt", "no prompt"),
    ({"prompt": PROMPT, "completion": "A tale.", "label": "yes"}, "malformed", "not true or false"),
    ({"prompt": PROMPT, "completion": "A tale.", "label": 1}, "malformed", "not true or false"),
    ({"prompt": PROMPT, "chosen": "a", "rejected": "b", "judgement": "vibes"}, "malformed",
     "judgement 'vibes'"),
    ({"prompt": PROMPT, "chosen": answer("a") + answer("b"), "rejected": "b"}, "malformed",
     "holds 2 messages"),
    (["not", "an", "object"], "malformed", "not a JSON object"),
])
def test_each_bad_record_is_refused_with_its_reason(record, reason, words):
    with pytest.raises(Refused) as refused:
        normalise(record, WHERE, "rating sheet")
    assert refused.value.reason == reason
    assert words in refused.value.detail


def test_curate_records_locates_every_reject_and_keeps_the_rest():
    good = {"prompt": PROMPT, "chosen": "Good.", "rejected": "Bad."}
    other = {"prompt": "Tell me of a crow.", "chosen": "A crow sang.", "rejected": "Crow."}
    found = entries(good, {"prompt": PROMPT, "chosen": "Same", "rejected": "same "[:-1].title()},
                    other, dict(good), {"prompt": PROMPT, "completion": "A tale.", "label": True})
    found.insert(2, Entry("prefs.jsonl", 9, None, None, "not valid JSON: Expecting value"))
    kept, rejects = curate_records(found, "rating sheet")
    assert [r["source"]["line"] for r in kept] == [1, 3]
    assert [(r.line, r.reason) for r in rejects] == [
        (2, "same_sides"), (9, "malformed"), (4, "duplicate_exact"), (5, "mixed_shapes")]
    assert "prefs.jsonl:1" in rejects[2].detail  # the duplicate names what it duplicates
    assert "4 pair and 1 unpaired" in rejects[3].detail
    assert len({r["id"] for r in kept}) == 2 and all(r["id"].startswith("pref-") for r in kept)


def test_mixed_shapes_are_judged_per_file_and_ids_are_made_unique():
    pair = {"id": "same", "prompt": PROMPT, "chosen": "Good.", "rejected": "Bad."}
    thumbs = [{"id": "same", "prompt": PROMPT, "completion": f"Tale {n}.", "label": n % 2 == 0}
              for n in range(3)]
    found = entries(pair, source="pairs.jsonl") + entries(*thumbs, source="thumbs.jsonl")
    kept, rejects = curate_records(found, "rating sheet")
    assert rejects == []  # each file holds one shape
    assert [r["id"] for r in kept] == ["same", "same#2", "same#3", "same#4"]
    # In one file the fewer set aside: here the pair.
    kept, rejects = curate_records(entries(pair, *thumbs), "rating sheet")
    assert [r.reason for r in rejects] == ["mixed_shapes"] and rejects[0].line == 1
    assert [r["kind"] for r in kept] == ["unpaired"] * 3


def test_a_prompt_the_chat_template_refuses_is_unrenderable(tmp_path):
    """A real tokenizer whose chat template insists that user and assistant take turns, as
    many models' templates do (raise_exception is the templates' own way to refuse)."""
    tokenizer = load_tokenizer("tiny-random")
    strict = tmp_path / "strict"
    tokenizer.save_pretrained(strict)
    config = json.loads((strict / "tokenizer_config.json").read_text())
    config["chat_template"] = (
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('roles must alternate user/assistant') }}{% endif %}"
        "{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}")
    (strict / "tokenizer_config.json").write_text(json.dumps(config))
    (strict / "chat_template.jinja").unlink(missing_ok=True)
    render = chat_template_check(str(strict))
    ok = {"prompt": [USER], "chosen": "a", "rejected": "b"}
    twice = {"prompt": [USER, USER], "chosen": "a", "rejected": "b"}
    kept, rejects = curate_records(entries(ok, twice), "rating sheet", render)
    assert len(kept) == 1
    assert [(r.line, r.reason) for r in rejects] == [(2, "unrenderable_prompt")]
    assert "roles must alternate" in rejects[0].detail
    # The default model's template renders both.
    kept, rejects = curate_records(entries(ok, twice), "rating sheet",
                                   chat_template_check("tiny-random"))
    assert len(kept) == 2 and rejects == []


# ------------------------------------------------------------------------------------ files


def test_json_and_jsonl_files_are_read_with_their_places(tmp_path):
    lines = tmp_path / "prefs.jsonl"
    lines.write_bytes(b'{"a": 1}\n\nnot json\n\xff\xfe\n{"b": 2}\n')
    found = read_entries(lines)
    assert [(e.line, e.record, bool(e.error)) for e in found] == [
        (1, {"a": 1}, False), (3, None, True), (4, None, True), (5, {"b": 2}, False)]
    assert "not UTF-8" in found[2].error
    array = tmp_path / "prefs.json"
    array.write_text(json.dumps({"data": [{"a": 1}, {"b": 2}]}))
    assert [(e.line, e.position, e.record) for e in read_entries(array)] == [
        (None, 0, {"a": 1}), (None, 1, {"b": 2})]
    array.write_text('[{"a": 1},\n oops]')
    [bad] = read_entries(array)
    assert bad.record is None and bad.line == 2 and "not valid JSON" in bad.error


# ------------------------------------------------------------------------------------ split


def _records(prompts: int, per_prompt: int = 3) -> list[dict]:
    found = []
    for p in range(prompts):
        prompt = [{"role": "user", "content": f"Prompt {p}"}]
        genre = ("fable", "mystery")[p % 2]
        found += [normalise({"prompt": prompt, "chosen": f"Good {p}.{n}",
                             "rejected": f"Bad {p}.{n}", "controls": {"genre": genre}},
                            WHERE, "rating sheet")
                  for n in range(per_prompt)]
    return found


def test_split_keeps_every_prompt_in_one_split_and_follows_the_fractions():
    records = _records(40)
    config = CurateConfig(seed=3, split=SplitConfig(train=0.7, val=0.2, test=0.1))
    splits = split_records(records, config)
    groups = {name: {r["group"] for r in rows} for name, rows in splits.items()}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"]
                or groups["val"] & groups["test"])
    assert [len(groups[n]) for n in ("train", "val", "test")] == [28, 8, 4]
    assert sum(map(len, splits.values())) == len(records)
    # Genres share the splits too (stratified by the controls' genre).
    assert {r["controls"]["genre"] for r in splits["val"]} == {"fable", "mystery"}


def test_split_is_deterministic_for_a_seed_and_changes_with_it():
    records = _records(30)
    one = split_records(records, CurateConfig(seed=1))
    assert split_records(list(records), CurateConfig(seed=1)) == one
    other = split_records(records, CurateConfig(seed=2))
    assert {r["group"] for r in other["val"]} != {r["group"] for r in one["val"]}
    # Input order is kept within a split.
    lines = [r["chosen"][0]["content"] for r in one["train"]]
    assert lines == [r["chosen"][0]["content"] for r in records if r in one["train"]]


def test_read_entries_of_a_missing_folder_file_is_an_error(tmp_path):
    from storyteller.curate.preference_run import input_files
    from storyteller.errors import InputError

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "b.jsonl").write_text("{}\n")
    (tmp_path / "in" / "a.json").write_text("[]")
    (tmp_path / "in" / "notes.txt").write_text("x")
    assert [p.name for p in input_files([str(tmp_path / "in")])] == ["a.json", "b.jsonl"]
    with pytest.raises(InputError, match="reads .jsonl and .json"):
        input_files([str(tmp_path / "in" / "notes.txt")])
    with pytest.raises(InputError, match="no such file"):
        input_files([str(Path(tmp_path / "nowhere.jsonl"))])
