"""The probe's pieces without a model: which validation prompts it asks, how it scores stories,
how an evaluation is ranked under each `eval.select`, and what survives a checkpoint."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from storyteller.config import load_config
from storyteller.errors import ConfigError
from storyteller.finetune import checkpoint as ckpt
from storyteller.finetune.config import FinetuneConfig
from storyteller.finetune.probe import (default_judge, probe_prompts, prompt_messages,
                                        score_stories, style_judge)
from storyteller.finetune.selection import improves, rank, selection_summary
from storyteller.prompts import StoryRequest, render_messages
from tests.conftest import ROOT, STARTER

QUICKSTART = ROOT / "configs" / "finetune" / "quickstart.yaml"


def starter_records() -> list[dict]:
    """Curated-shape premise and title records of every starter story (two per group)."""
    records = []
    for path in sorted(STARTER.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            story = json.loads(line)
            controls = {k: story[k] for k in ("genre", "style") if story.get(k)}
            for kind in ("premise", "title"):
                request = StoryRequest(kind=kind, controls=controls,
                                       premise=story["premise"] if kind == "premise" else None,
                                       title=story["title"] if kind == "title" else None)
                records.append({"id": f"{story['id']}-{kind}", "group": story["id"],
                                "kind": kind, "controls": controls, "request": {"kind": kind},
                                "messages": render_messages(request, story["text"])})
    return records


RECORDS = starter_records()
HOUSE = {"moral", "refrain", "noir", "log"}


def test_the_probe_set_is_fixed_by_its_seed_not_by_file_order():
    first = probe_prompts(RECORDS, 8, 2, seed=0)
    shuffled = list(RECORDS)
    random.Random(7).shuffle(shuffled)
    assert [p.id for p in probe_prompts(shuffled, 8, 2, seed=0)] == [p.id for p in first]
    assert [p.id for p in probe_prompts(RECORDS, 8, 2, seed=1)] != [p.id for p in first]
    # Each prompt's sampling seed is its own: the same whatever else is in the set.
    smaller = probe_prompts(RECORDS, 4, 0, seed=0)
    seeds = {p.id: p.seed for p in first}
    assert all(seeds[p.id] == p.seed for p in smaller)


def test_the_probe_set_is_spread_over_the_styles_and_the_stories():
    prompts = probe_prompts(RECORDS, 8, 2)
    styled, plain = prompts[:8], prompts[8:]
    assert Counter(p.style for p in styled) == {"moral": 2, "refrain": 2, "noir": 2, "log": 2}
    assert len({p.id.rsplit("-", 1)[0] for p in styled}) == 8  # eight different stories
    assert len(plain) == 2 and all(p.style is None for p in plain)
    # The messages are what a client sends: system prompt, user message with the header.
    assert [m["role"] for m in styled[0].messages] == ["system", "user"]
    assert f"Style: {styled[0].style}" in styled[0].messages[1]["content"]
    # Seven styled asked for: the styles still take turns (no style gets two before all get one).
    assert set(Counter(p.style for p in probe_prompts(RECORDS, 7, 0)).values()) == {1, 2}


def test_a_groups_second_prompt_comes_only_when_the_groups_run_out():
    moral = [r for r in RECORDS if r["controls"].get("style") == "moral"][:4]  # 2 stories × 2
    prompts = probe_prompts(moral, 4, 0)
    groups = [p.id.rsplit("-", 1)[0] for p in prompts]
    assert len(prompts) == 4 and len(set(groups[:2])) == 2 and sorted(groups[:2]) == sorted(groups[2:])
    assert len(probe_prompts(moral, 10, 0)) == 4  # no more prompts than there are


def test_partial_requests_and_repeated_prompts_are_left_out():
    story = RECORDS[0]
    opening = dict(story, id="o", group="g-o", kind="opening")
    window = dict(story, id="c", group="g-c", kind="continuation")
    asked = dict(story, id="a", group="g-a", request={"opening": "It was dark."})
    assert probe_prompts([opening, window, asked], 5, 5) == []
    # Preference records (contracts §1): the prompt messages; three pairs of one prompt count once.
    prompt = story["messages"][:-1]
    pairs = [{"id": f"p{i}", "group": "p-1", "kind": "pair", "prompt": prompt,
              "controls": story["controls"], "chosen": [], "rejected": []} for i in range(3)]
    prompts = probe_prompts(pairs, 5, 5)
    assert len(prompts) == 1 and list(prompts[0].messages) == prompt
    assert prompt_messages({"prompt": [{"role": "assistant", "content": "x"}]}) is None


FABLE = ("The fox found the grapes too high and walked away saying they were sour anyway, and "
         "the crow who watched him from the fence laughed at him for a long time afterwards, "
         "because the crow had eaten the grapes that morning and knew how sweet they were.\n"
         "Moral: It is easy to despise what you cannot get.")
HOLLOW_FABLE = "A fox left.\nMoral: It is easy to despise what you cannot get."
LOG = "Log, day 1: Landed.\nLog, day 2: Dug.\nLog, day 3: Found water under the ice."


def prompts_for(styles):
    """One probe prompt per entry of `styles` (None: a prompt without a house style)."""
    def asking(style):
        return [r for r in RECORDS if r["controls"].get("style") == style
                or (style is None and r["controls"].get("style") not in HOUSE)]
    return [p for s in styles for p in probe_prompts(asking(s), 1 if s else 0, 0 if s else 1)]


def test_scores_on_fixed_stories():
    prompts = prompts_for(["moral", "moral", "log", None])
    assert [p.style for p in prompts] == ["moral", "moral", "log", None]
    texts = [FABLE, "A fox walked away.", LOG, "Once there was a plain story."]
    reasons = ["stop", "length", "stop", "length"]
    metrics, verdicts = score_stories(prompts, texts, reasons, style_judge)
    assert metrics["style_adherence"] == pytest.approx(2 / 3)
    assert metrics["adherence_moral"] == 0.5 and metrics["adherence_log"] == 1.0
    assert metrics["stop_rate"] == 0.5
    assert metrics["hollow_rate"] is None  # the style checks alone do not judge hollowness
    assert [v.style_passed for v in verdicts] == [True, False, True, None]


def test_the_projects_judge_names_hollow_stories():
    prompts = prompts_for(["moral", "moral"])
    metrics, verdicts = score_stories(prompts, [FABLE, HOLLOW_FABLE], ["stop", "stop"],
                                      default_judge())
    # The hollow fable passes its style check (adherence counts it, as evaluate does) ...
    assert metrics["style_adherence"] == 1.0
    # ... and the judge says it is hollow; mixed selection takes that off.
    assert metrics["hollow_rate"] == 0.5 and verdicts[1].hollow and not verdicts[0].hollow
    assert 0 <= metrics["judge_score"] <= 1


def entry(step, loss, adherence=None, stops=None, hollow=None):
    e = {"step": step, "val_loss": loss}
    if adherence is not None:
        e.update(style_adherence=adherence, stop_rate=stops, hollow_rate=hollow)
    return e


# Loss falls to step 2 then rises (over-fitting); the styles keep coming until step 4.
HISTORY = [entry(0, 3.30, 0.0, 0.2, 0.0), entry(1, 3.10, 0.25, 0.4, 0.0),
           entry(2, 3.00, 0.50, 0.6, 0.0), entry(3, 3.05, 0.75, 0.6, 0.5),
           entry(4, 3.40, 1.00, 0.8, 0.0)]


def choose(select, history, margin=0.03, min_delta=0.0):
    best = None
    chosen = None
    for i, e in enumerate(history):
        new = rank(select, e, history[:i], margin)
        if improves(select, new, best, min_delta):
            best, chosen = new, e["step"]
    return chosen


def test_each_selection_chooses_its_own_checkpoint():
    assert choose("loss", HISTORY) == 2
    assert choose("style", HISTORY) == 4  # the most style, at a loss far above the best
    # mixed: step 4 is 13% above the lowest loss, out of the 3% margin; step 3 is within it but
    # its hollow stories cost it the lead; step 2 writes best among the close ones.
    assert choose("mixed", HISTORY) == 2
    assert choose("mixed", HISTORY, margin=0.2) == 4
    without_hollow = [dict(e, hollow_rate=0.0) for e in HISTORY]
    assert choose("mixed", without_hollow) == 3


def test_ties_go_to_stopping_then_to_the_lower_loss():
    tied = [entry(0, 3.0, 0.5, 0.5), entry(1, 2.9, 0.5, 0.5), entry(2, 2.8, 0.5, 0.25)]
    assert choose("style", tied) == 1
    assert choose("loss", tied) == 2


def test_loss_selection_keeps_min_delta_and_a_nan_is_never_best():
    history = [entry(0, 3.0), entry(1, 2.995), entry(2, 2.9)]
    assert choose("loss", history, min_delta=0.01) == 2
    assert choose("loss", history[:2], min_delta=0.01) == 0
    assert rank("mixed", entry(1, float("nan"), 1.0, 1.0), [entry(0, 3.0)], 0.03) is None
    assert not improves("loss", (-float("nan"),), (-3.0,))


def test_the_summary_says_how_final_was_chosen():
    s = selection_summary("style", True, 4, 4, HISTORY)
    assert s["selected_by"] == "style" and s["final_val_loss"] == 3.40
    assert s["final_probe"] == {"style_adherence": 1.0, "stop_rate": 0.8, "hollow_rate": 0.0}
    assert selection_summary("style", False, 4, 5, HISTORY) == \
        {"selected_by": "last step", "final_val_loss": None, "final_probe": None}
    assert selection_summary("loss", True, 0, 0, [entry(0, 3.0)])["final_probe"] is None


def test_the_selection_survives_a_checkpoint(tmp_path: Path):
    state = ckpt.TrainState(step=4, best_loss=3.4, best_step=4, best_rank=[1.0, 0.8, -3.4],
                            best_probe={"style_adherence": 1.0, "adherence_log": 1.0},
                            history=HISTORY)
    path = ckpt.save_checkpoint(tmp_path, state, {"w": torch.zeros(2)}, {}, {}, {})
    assert ckpt.load_checkpoint(path).state == state
    # A run that does not select by what it writes keeps the state.json it always wrote.
    plain = ckpt.state_dict(ckpt.TrainState(step=1))
    assert "best_rank" not in plain and "best_probe" not in plain and "stream" not in plain


@pytest.mark.parametrize("sets, where", [
    (["eval.select=style", "eval.probe_styled=0"], "eval.probe_styled"),
    (["eval.probe=true", "eval.probe_styled=0", "eval.probe_plain=0"], "eval.probe_styled"),
    (["eval.select=newest"], "eval.select"),
    (["eval.select_margin=-0.1"], "eval.select_margin"),
    (["eval.probe_temperature=-1"], "eval.probe_temperature"),
])
def test_bad_selection_settings_name_their_key(sets, where):
    with pytest.raises(ConfigError, match=where):
        load_config(FinetuneConfig, QUICKSTART, sets)


def test_probing_is_on_for_style_and_mixed_or_when_asked():
    probing = lambda *sets: load_config(FinetuneConfig, QUICKSTART, list(sets)).eval.probing
    assert not probing()
    assert probing("eval.select=style") and probing("eval.select=mixed")
    assert probing("eval.probe=true")


def test_the_probe_plot(tmp_path: Path):
    from storyteller.finetune.logs import plot_probe

    records = [{"kind": "eval", "step": e["step"], "val_loss": e["val_loss"],
                "style_adherence": e["style_adherence"], "stop_rate": e["stop_rate"],
                "hollow_rate": e["hollow_rate"], "adherence_moral": e["style_adherence"]}
               for e in HISTORY]
    path = plot_probe(records + [{"kind": "train", "step": 1, "loss": 3.0}], tmp_path, 2)
    assert path == tmp_path / "probe.png" and path.stat().st_size > 10_000
    assert plot_probe([{"kind": "eval", "step": 0, "val_loss": 3.0}], tmp_path / "none") is None
