"""The rating scales: dimensions, their anchors and which apply to a request.

Anchored scales (what 1, 3 and 5 mean) are what make two readers' 4s comparable; the same words
go into instructions.md, the xlsx Instructions sheet and each cell's input message."""

from __future__ import annotations

from collections.abc import Mapping

SCALE_MIN, SCALE_MAX = 1, 5

DIMENSIONS: tuple[str, ...] = ("fluency", "coherence", "relevance", "genre", "style", "creativity",
                               "overall")

# Dimensions that only mean something when the request names the matching control: a story
# asked for with no style cannot adhere to one. Their cells say "n/a" and are not rated.
CONTROLLED: dict[str, str] = {"genre": "genre", "style": "style"}

NOT_RATED = "n/a"

QUESTIONS: dict[str, str] = {
    "fluency": "Is the language well formed and natural?",
    "coherence": "Do the events and ideas hang together as one story?",
    "relevance": "Does the story do what the request asks (title, premise or opening)?",
    "genre": "Is the story in the requested genre?",
    "style": "Is the story written in the requested style?",
    "creativity": "Is the story fresh rather than generic?",
    "overall": "How good is the story as a whole?",
}

ANCHORS: dict[str, dict[int, str]] = {
    "fluency": {
        1: "hard to read: broken grammar, garbled or looping words",
        3: "readable, with noticeable awkward phrasing or errors",
        5: "reads naturally and without errors, like edited prose",
    },
    "coherence": {
        1: "no followable story: events do not connect or contradict each other",
        3: "a followable story with some jumps, gaps or contradictions",
        5: "every event follows from the last; a clear beginning, middle and end",
    },
    "relevance": {
        1: "ignores the request",
        3: "touches the request but drifts from it or drops key parts",
        5: "does exactly what the request asks",
    },
    "genre": {
        1: "not the requested genre at all",
        3: "some features of the genre, but mixed or only on the surface",
        5: "unmistakably the requested genre, using its conventions well",
    },
    "style": {
        1: "ignores the requested style (e.g. no moral for 'moral')",
        3: "the style shows in places, or only loosely",
        5: "written in the requested style throughout",
    },
    "creativity": {
        1: "generic, clichéd or predictable; may just restate the request",
        3: "a few fresh ideas or details within a familiar pattern",
        5: "surprising, original ideas or images that serve the story",
    },
    "overall": {
        1: "poor: I would not want to read it",
        3: "acceptable: an average story",
        5: "excellent: I would gladly share it",
    },
}

PAIR_CHOICES: tuple[str, ...] = ("A", "B", "tie")


def applicable(controls: Mapping[str, object]) -> tuple[str, ...]:
    """The dimensions a story written for a request with these controls is rated on."""
    return tuple(d for d in DIMENSIONS
                 if d not in CONTROLLED or str(controls.get(CONTROLLED[d]) or "").strip())


def input_message(dimension: str) -> tuple[str, str]:
    """(title, text) of a cell's input message; Excel allows 32 and 255 characters."""
    anchors = ANCHORS[dimension]
    text = "\n".join(f"{score} = {anchors[score]}" for score in (1, 3, 5)) + "\n2, 4 = in between"
    return f"{dimension} ({SCALE_MIN}–{SCALE_MAX})"[:32], text[:255]


def anchors_markdown() -> str:
    lines = ["| dimension | question | 1 | 3 | 5 |", "|---|---|---|---|---|"]
    for d in DIMENSIONS:
        a = ANCHORS[d]
        lines.append(f"| {d} | {QUESTIONS[d]} | {a[1]} | {a[3]} | {a[5]} |")
    return "\n".join(lines)


def instructions_markdown(rater: str | None, pairs: bool) -> str:
    """What a rater reads before starting (instructions.md; the xlsx carries the same text)."""
    who = f"Your rater id is **{rater}**.\n\n" if rater else ""
    pair_text = ("\n## Pairs\n\nThe **Pairs** sheet (or the `-pairs.csv` file) shows one request "
                 "with two stories, A and B. In the `preferred` column write `A`, `B` or `tie` "
                 "for the story you would rather read as an answer to that request.\n"
                 if pairs else "")
    return f"""# Rating stories

{who}Each row of your sheet is one request and the story written for it. Read the request (the
line in square brackets names the genre, style and other wishes), then the story, and rate it
on each scale with a whole number from {SCALE_MIN} to {SCALE_MAX}; 2 and 4 are in between the
anchors below. Where a cell says `{NOT_RATED}`, the request did not ask for that and there is
nothing to rate. A comment is optional.

- Rate every story on its own: do not compare it with the rows around it.
- Work at your own pace, in the order of your sheet; your order differs from other raters'.
- Some rows may look odd or familiar; rate them like any other.
- Leave the `item` column and the texts as they are, and add no rows.
- Save the file under the same name (CSV stays CSV, xlsx stays xlsx) and send it back.

## Scales

{anchors_markdown()}
{pair_text}"""


def instructions_rows(rater: str | None, pairs: bool) -> list[list[str]]:
    """The Instructions sheet of the xlsx as rows of cells."""
    rows: list[list[str]] = [["Rating stories"], ["Rater", rater or ""], []]
    rows += [
        ["How", ("Read the request (the [ … ] line names genre, style and other wishes), then the "
                "story, and rate it on each scale from 1 to 5 on the Ratings sheet; 2 and 4 are in "
                f"between. Cells that say {NOT_RATED} were not asked for. Comments are optional.")],
        ["", ("Rate every story on its own; some rows may look odd or familiar, rate them like "
             "any other. Leave the item column and the texts unchanged; add no rows.")],
    ]
    if pairs:
        rows.append(["Pairs", ("On the Pairs sheet choose A, B or tie: the story you would rather "
                              "read as an answer to that request.")])
    rows += [[], ["dimension", "question", "1", "3", "5"]]
    rows += [[d, QUESTIONS[d], ANCHORS[d][1], ANCHORS[d][3], ANCHORS[d][5]] for d in DIMENSIONS]
    return rows
