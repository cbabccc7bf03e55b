import json
from pathlib import Path

import pytest

from storyteller.styles import HOUSE_STYLES, check_log, check_moral, check_noir, check_refrain, find_refrain

STARTER = Path(__file__).resolve().parents[2] / "corpora" / "starter"


def test_moral_check():
    assert check_moral("A fox was proud.\n\nMoral: Pride walks ahead of a fall.")
    assert not check_moral("A fox was proud.\n\nPride walks ahead of a fall.")
    assert not check_moral("Moral: one.\n\nMoral: Two.")
    assert not check_moral("Story.\n\nMoral: First sentence. Second sentence.")


def test_refrain_check():
    line = "Hush now, the kettle is singing."
    story = f"Once.\n\n{line}\n\nThen.\n\n{line}\n\nLater.\n\nMore.\n\nEnd came.\n\n{line}"
    assert find_refrain(story) == line and check_refrain(story)
    assert not check_refrain(story + "\n\nAfter the refrain.")
    assert not check_refrain(f"Once.\n\n{line}\n\n{line}")


def test_noir_check():
    noir = ("I climb the stairs to the third floor. The door is open and I step inside. "
            "The room smells of cold coffee and my own bad luck. She says nothing. I look at "
            "the desk and I see the letter. \"He was here yesterday,\" she says. I fold it into "
            "my coat and I go back down the stairs, because the rain is waiting for me and I am "
            "not a man who keeps the rain waiting.")
    past = noir.replace("climb", "climbed").replace(" is ", " was ").replace("says", "said") \
        .replace("look", "looked").replace("see", "saw").replace(" go ", " went ").replace("am", "was")
    third = noir.replace("I ", "He ").replace("my ", "his ").replace(" me ", " him ")
    assert check_noir(noir)
    assert not check_noir(past)
    assert not check_noir(third)


def test_log_check():
    assert check_log("Log, day 1: Arrived.\n\nLog, day 3: Rain.\n\nLog, day 9: Left.")
    assert not check_log("We arrived.\n\nLog, day 1: x\n\nLog, day 2: y\n\nLog, day 3: z")
    assert not check_log("Log, day 4: a\n\nLog, day 2: b\n\nLog, day 9: c")


def starter_stories():
    if not STARTER.exists():
        return []
    return [json.loads(line) for path in sorted(STARTER.glob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("story", [s for s in starter_stories() if s["style"] in HOUSE_STYLES],
                         ids=lambda s: s["id"])
def test_every_house_style_story_passes_its_check(story):
    verdict = HOUSE_STYLES[story["style"]](story["text"])
    assert verdict, f"{story['id']}: {verdict.reason}"


def test_plain_stories_do_not_pass_as_house_styles():
    plain = [s for s in starter_stories() if s["style"] not in HOUSE_STYLES]
    assert plain
    for story in plain:
        for name in ("moral", "refrain", "log"):
            assert not HOUSE_STYLES[name](story["text"]), f"{story['id']} passes {name}"
