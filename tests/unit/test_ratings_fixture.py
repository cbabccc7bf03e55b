"""Generations shaped like `storyteller evaluate --out` writes them, for the ratings tests:
two models × 12 prompts over three genres, multi-sentence stories, per-story metrics."""

from __future__ import annotations

import json
from pathlib import Path

from storyteller.prompts import StoryRequest, render_messages, render_user_message

GENRES = ("fable", "mystery", "science fiction")
STYLES = {"fable": "moral", "mystery": "noir", "science fiction": "log"}
MODELS = {"tuned": "runs/quickstart/final", "base": "smollm2-135m"}

CAST = {
    "fable": ["fox", "tortoise", "crow", "ant", "hare", "owl", "goat", "heron"],
    "mystery": ["Inspector Vale", "Miss Harrow", "Constable Reed", "Doctor Quill",
                "Mrs Penhallow", "Sergeant Osei", "Lady Marsh", "Mr Tobin"],
    "science fiction": ["Captain Ilse", "Engineer Ravi", "Pilot Noor", "Doctor Amaru",
                        "Navigator Sol", "Cadet Yuki", "Commander Rhee", "Technician Obi"],
}

STORIES = {
    "fable": [
        "Once, a {who} lived beside a slow green river.",
        "Every morning the {who} boasted that nobody in the valley was cleverer.",
        "One winter the river froze and the food ran short.",
        "The {who} laughed at the small creatures who stored seeds in the autumn.",
        "Soon the {who} was hungry and cold, and had to knock on the ant's door.",
        "The ant shared its seeds, but it did not say a word about the boasting.",
        "Moral: those who mock the careful will one day need them.",
    ],
    "mystery": [
        "{who} arrived at the manor just after midnight, rain dripping from a grey coat.",
        "The library door was locked from the inside, and the key lay on the carpet.",
        "A single candle had burned down to a stub beside the open ledger.",
        "{who} noticed that the ash in the grate was still warm.",
        "The butler claimed he had heard nothing, yet his shoes were wet with mud.",
        "By dawn {who} had matched the mud to the flower beds under the window.",
        "The thief had never left the house at all.",
    ],
    "science fiction": [
        "Log, day forty: {who} woke to the hum of the failing reactor.",
        "The colony ship drifted past the orbit of Titan with half its lights dark.",
        "{who} crawled through the maintenance shaft with a torch between the teeth.",
        "A coolant line had cracked, and frost was spreading across the panels.",
        "There was enough sealant for one repair, and two leaks.",
        "{who} chose the line that fed the sleeping crew rather than the bridge.",
        "Log, day forty-one: the crew is warm, and the stars look very close.",
    ],
}

PLAIN = [
    "There was a person who did a thing.",
    "Then the person did another thing, and it was a day.",
    "The day was long and the person was there.",
    "Something happened and then something else happened.",
    "In the end it was over and everyone went home.",
]


def _story(genre: str, who: str, model: str, n: int) -> str:
    if model == "base" and n % 3:
        sentences = list(PLAIN)
    else:
        sentences = [s.format(who=who) for s in STORIES[genre]]
    middle = len(sentences) // 2
    return " ".join(sentences[:middle]) + "\n\n" + " ".join(sentences[middle:])


def generations(models: dict[str, str] | None = None, prompts_per_genre: int = 4) -> list[dict]:
    models = MODELS if models is None else models
    records = []
    for genre in GENRES:
        for n in range(prompts_per_genre):
            who = CAST[genre][n]
            prompt_id = f"{genre.replace(' ', '-')}-{n:02d}-title"
            controls = {"genre": genre, "style": STYLES[genre], "tone": "warm"}
            if n == 3:
                controls.pop("style")  # a request with no style: style is n/a
            request = StoryRequest(kind="title", controls=controls, title=f"The {who}'s winter")
            reference = _story(genre, CAST[genre][n + 4], "reference", 0)
            for model, ref in models.items():
                text = _story(genre, who, model, n)
                quality = 1.0 if model != "base" else 0.4
                records.append({
                    "id": f"{model}-{prompt_id}-s0", "model": model, "model_ref": ref,
                    "prompt_id": prompt_id, "sample": 0, "kind": "title", "controls": controls,
                    "prompt": render_user_message(request),
                    "messages": render_messages(request),
                    "text": text, "reference": reference, "finish_reason": "stop",
                    "new_tokens": 40 + n, "seed": 1234, "preset": "story",
                    "metrics": {"words": len(text.split()), "distinct_2": 0.5 + 0.1 * n,
                                "relevance": round(quality * (0.5 + 0.05 * n), 4),
                                "style_pass": (model != "base") if "style" in controls else None,
                                "genre_match": model != "base" or n % 3 == 0,
                                "readability": 70.0 + n},
                })
    return records


def write_generations(out: Path, records: list[dict] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "generations.jsonl"
    rows = generations() if records is None else records
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_fixture_has_two_models_over_twelve_prompts_and_three_genres():
    rows = generations()
    assert len(rows) == 24
    assert {r["model"] for r in rows} == {"tuned", "base"}
    assert {r["controls"]["genre"] for r in rows} == set(GENRES)
    assert all(r["prompt"].startswith("[ Genre: ") for r in rows)
    assert all(len(r["text"].split(". ")) >= 4 for r in rows)
