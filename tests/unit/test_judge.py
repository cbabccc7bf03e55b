"""The story judge: every starter story passes, each hollow trick is caught, and a hollow story
scores below one that fails its style honestly."""

from __future__ import annotations

import json

import pytest

from storyteller.judge import (HOLLOW_CEILING, MAX_WORDS, MIN_WORDS, NOT_HOLLOW_FLOOR,
                               hollow_reasons, judge_story)
from tests.conftest import STARTER


def starter() -> list[dict]:
    stories = []
    for path in sorted(STARTER.glob("*.jsonl")):
        stories += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return stories


def story(style: str) -> dict:
    return next(s for s in starter() if s["style"] == style)


def controls(s: dict) -> dict:
    return {"genre": s["genre"], "style": s["style"]}


def test_every_starter_story_passes_every_check():
    stories = starter()
    assert len(stories) > 100
    for s in stories:
        judgement = judge_story(s["text"], controls(s), "stop")
        assert judgement.hollow == [], (s["id"], judgement.hollow)
        assert all(judgement.checks.values()), (s["id"], judgement.reasons)
        assert judgement.score == 1.0 and judgement.reasons == []


def test_house_style_is_checked_only_when_asked():
    fable = story("moral")
    asked = judge_story(fable["text"], {"style": "moral"}, "stop")
    assert asked.style == "moral" and asked.style_passed is True and "style" in asked.checks
    plain = judge_story(fable["text"], {"style": "lyrical"}, "stop")
    assert plain.style is None and plain.style_passed is None and "style" not in plain.checks
    assert judge_story(fable["text"], {}, None).checks["stopped"]  # unknown: not held against it


def test_failed_checks_lower_the_score_and_say_why():
    fable = story("moral")["text"]
    without_moral = fable[:fable.index("Moral:")].strip()
    honest = judge_story(without_moral, {"style": "moral"}, "stop")
    assert honest.style_passed is False and not honest.hollow
    assert honest.reasons == ["moral: last line does not start with 'Moral: '"]
    cut = judge_story(fable, {"style": "moral"}, "length")
    assert cut.checks["stopped"] is False and "did not end by itself" in cut.reasons[0]
    assert 1.0 > cut.score > honest.score  # the style counts most
    short = judge_story("A fox met a crow. " * 3, {}, "stop")
    assert short.checks["length_ok"] is False
    assert f"outside {MIN_WORDS}–{MAX_WORDS}" in " ".join(short.reasons)


def test_a_looping_story_is_repetitive():
    loop = " ".join(["the fox ran and the fox ran and the fox ran"] * 20)
    judgement = judge_story(loop, {}, "length")
    assert judgement.checks["not_repetitive"] is False
    assert any(r.startswith("repetitive") for r in judgement.reasons)


def test_moral_after_twenty_words_is_hollow():
    text = ("A crow found cheese and a fox praised her voice until she sang and the cheese fell "
            "to the fox.\n\nMoral: Flattery costs the flattered.")
    assert judge_story(text, {"style": "moral"}, "stop").style_passed is True
    judgement = judge_story(text, {"style": "moral"}, "stop")
    assert judgement.hollow == ["moral after 20 words of story"]
    assert judgement.checks["not_hollow"] is False


def test_a_refrain_repeated_thirty_times_is_hollow():
    refrain = "Light one lamp, and the dark grows kind."
    text = "\n\n".join([story("refrain")["text"].split("\n\n")[0]] + [refrain] * 30)
    reasons = hollow_reasons(text, "refrain")
    assert any(r.startswith("refrain is 30 of 31 lines") for r in reasons)
    assert any(r.startswith("line repeated 30 times") for r in reasons)


def test_a_tale_that_is_mostly_its_refrain_is_hollow_though_it_passes():
    refrain = "Hush now, the moon is watching over the sleeping hills tonight."
    text = "\n".join(["Mira could not sleep.", refrain, "She counted sheep.", refrain,
                      "The sheep counted back.", refrain])
    judgement = judge_story(text, {"style": "refrain"}, "stop")
    assert judgement.style_passed is True
    assert judgement.hollow == ["mostly refrain (75% of the words)"]


def test_a_log_of_three_word_entries_is_hollow():
    text = "\n".join(f"Log, day {d}: Nothing happened today." for d in range(1, 8))
    judgement = judge_story(text, {"style": "log"}, "stop")
    assert judgement.style_passed is True
    assert judgement.hollow == ["log entries of 3 words on average"]


def test_noir_that_is_all_dialogue_is_hollow():
    narration = ("I walk in. I am tired. It is late. The rain is loud on the glass and I look at "
                 "the man who says he knows. I think he lies. I am sure of it now. He is a liar and "
                 "he knows I know. The room is cold and I am cold in it too.")
    talk = " ".join(f'"Line {i} of what the man is telling me, on and on, about the night the '
                    f'boat went down and who was on it."' for i in range(12))
    text = f"{narration}\n\n{talk}"
    judgement = judge_story(text, {"style": "noir"}, "stop")
    assert judgement.style_passed is True
    assert judgement.hollow and judgement.hollow[0].startswith("almost no narration")
    # The same text asked for as plain dialogue-heavy writing is not hollow.
    assert judge_story(text, {"style": "plain"}, "stop").hollow == []


def test_hollow_scores_below_an_honest_failure():
    fable = story("moral")["text"]
    honest_fail = judge_story(fable[:fable.index("Moral:")].strip() + " " * 0, {"style": "moral"},
                              "length")  # no moral and cut short: fails two checks honestly
    hollow = judge_story("A crow sang and lost her cheese to the fox below the tree.\n\n"
                         "Moral: Flattery costs the flattered.", {"style": "moral"}, "stop")
    assert hollow.style_passed is True and hollow.hollow
    assert hollow.score <= HOLLOW_CEILING < NOT_HOLLOW_FLOOR <= honest_fail.score
    assert hollow.score < honest_fail.score
    # Even a story failing every check honestly outranks a hollow one that passes its style.
    worst = judge_story("word " * 30, {"style": "moral"}, "length")
    assert not worst.hollow and worst.score == pytest.approx(NOT_HOLLOW_FLOOR)
    assert hollow.score < worst.score


def test_judgement_serialises():
    data = judge_story(story("log")["text"], {"style": "log"}, "stop").to_json()
    assert json.loads(json.dumps(data)) == data
    assert set(data) >= {"score", "style", "style_passed", "hollow", "checks", "reasons"}
    assert set(data["checks"]) == {"style", "stopped", "length_ok", "not_repetitive", "not_hollow"}


def test_evaluate_summary_reports_hollow_rates_per_model_and_style():
    from storyteller.evaluate.aggregate import summarise
    from storyteller.evaluate.report import hollow_rows, markdown

    fable = story("moral")["text"]
    hollow = "A crow sang and lost her cheese.\n\nMoral: Flattery costs the flattered."

    def record(model, prompt, text, style):
        return {"id": f"{model}-{prompt}", "model": model, "prompt_id": prompt, "sample": 0,
                "kind": "premise", "controls": {"genre": "fable", "style": style}, "text": text,
                "prompt": "Write a fable.", "reference": "ref", "finish_reason": "stop",
                "new_tokens": 10, "metrics": {"words": len(text.split())}}

    records = []
    for i in range(8):
        records.append(record("tuned", f"p{i}", hollow if i < 6 else fable, "moral"))
        records.append(record("base", f"p{i}", fable, "moral"))
    records.append(record("tuned", "q", fable, "plain"))
    records.append(record("base", "q", fable, "plain"))
    summary = summarise(records, {}, "tuned", "base", resamples=300)
    overall = summary["metrics"]["hollow"]
    assert overall["values"]["tuned"]["value"] == pytest.approx(6 / 9)
    assert overall["values"]["base"]["value"] == 0.0
    assert overall["better"] == "lower"
    moral = summary["hollow_styles"]["moral"]
    assert moral["tuned"]["value"] == pytest.approx(6 / 8) and moral["difference"]["n"] == 8
    assert any(f.startswith("hollow stories (a check passed emptily): tuned is higher than base "
                            "(worse)") for f in summary["findings"])
    rows = hollow_rows(summary, ["tuned", "base"])
    assert rows[0][0] == "all stories" and rows[1][0] == "moral" and rows[1][-1].endswith("✘")
    summary["models"] = {"tuned": {"ref": "t", "label": "t"}, "base": {"ref": "b", "label": "b"}}
    summary["settings"] = {"prompts": 9, "split": "test", "samples": 1, "max_tokens": 10,
                           "seed": 0, "engine": ["transformers"],
                           "preset": {"name": "story", "temperature": 0.8, "top_p": 0.95,
                                      "repetition_penalty": 1.0}}
    text = markdown(summary, records, [], 1)
    assert "## Hollow stories" in text and "| moral | 0.75" in text
    assert "hollow: moral after 7 words of story" in text  # the sample story's verdict
