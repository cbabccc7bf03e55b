"""House styles of the starter corpus, and the checks that recognise them.

A house style is a visible, checkable habit of writing that a fine-tuned model can learn. Every
story in the corpus that claims a house style passes its check; evaluation runs the same checks on
generated stories to measure whether a model follows the style it was asked for.

Each check takes the story text and returns a `StyleVerdict`: whether it passed and why not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class StyleVerdict:
    passed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.passed


_SENTENCE_END = re.compile(r"[.!?][\"'”’)]*(?=\s|$)")
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”")
_WORD = re.compile(r"[A-Za-z’']+")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines() if line.strip()]


def check_moral(text: str) -> StyleVerdict:
    """A fable that ends on one line `Moral: <one sentence>` and states no other moral."""
    lines = _lines(text)
    if not lines:
        return StyleVerdict(False, "empty story")
    last = lines[-1]
    if not last.startswith("Moral: "):
        return StyleVerdict(False, "last line does not start with 'Moral: '")
    if sum(line.startswith("Moral:") for line in lines) != 1:
        return StyleVerdict(False, "more than one 'Moral:' line")
    moral = last[len("Moral: "):].strip()
    if len(_SENTENCE_END.findall(moral)) != 1 or not _SENTENCE_END.search(moral[-3:] + " "):
        return StyleVerdict(False, "the moral is not exactly one sentence")
    if len(moral.split()) > 25:
        return StyleVerdict(False, "the moral is longer than 25 words")
    if len(lines) < 2:
        return StyleVerdict(False, "no story before the moral")
    return StyleVerdict(True)


def find_refrain(text: str) -> str | None:
    """The line of 3–25 words that stands on its own exactly three times, if there is one."""
    counts: dict[str, int] = {}
    for line in _lines(text):
        counts[line] = counts.get(line, 0) + 1
    refrains = [line for line, n in counts.items() if n == 3 and 3 <= len(line.split()) <= 25]
    return refrains[0] if len(refrains) == 1 else None


def check_refrain(text: str) -> StyleVerdict:
    """A bedtime tale whose refrain, a line of its own, comes back exactly three times,
    the last time as the story's final line."""
    refrain = find_refrain(text)
    if refrain is None:
        return StyleVerdict(False, "no single line of 3–25 words repeated exactly three times")
    lines = _lines(text)
    if lines[-1] != refrain:
        return StyleVerdict(False, "the story does not end on its refrain")
    if lines.index(refrain) > len(lines) // 2:
        return StyleVerdict(False, "the refrain first appears after the middle of the story")
    return StyleVerdict(True)


_FIRST_PERSON = re.compile(r"\b(I|me|my|mine|myself|I'm|I’m|I've|I’ve|I'd|I’d|I'll|I’ll)\b")
_PRESENT = re.compile(
    r"\b(am|is|are|has|does|says|asks|looks|walks|takes|comes|goes|knows|thinks|tells|"
    r"I'm|I’m|it's|it’s|he's|he’s|she's|she’s|there's|there’s|that's|that’s)\b",
    re.IGNORECASE,
)
_PAST = re.compile(
    r"\b(was|were|had|did|said|asked|looked|walked|took|came|went|knew|thought|told)\b",
    re.IGNORECASE,
)


def narration(text: str) -> str:
    """The text with quoted dialogue removed."""
    return _QUOTED.sub(" ", text)


def check_noir(text: str) -> StyleVerdict:
    """A mystery narrated in the first person and the present tense (dialogue excepted)."""
    told = narration(text)
    words = _WORD.findall(told)
    if len(words) < 50:
        return StyleVerdict(False, "too little narration outside dialogue")
    first = len(_FIRST_PERSON.findall(told))
    if first / len(words) < 0.02:
        return StyleVerdict(False, f"narration is not first person ({first} first-person words)")
    present, past = len(_PRESENT.findall(told)), len(_PAST.findall(told))
    if present == 0 or past / (present + past) > 0.25:
        return StyleVerdict(
            False, f"narration is not present tense ({present} present vs {past} past markers)"
        )
    return StyleVerdict(True)


_LOG_HEADER = re.compile(r"^Log, day (\d+):")


def check_log(text: str) -> StyleVerdict:
    """Science fiction told as log entries: it opens on a `Log, day N:` line and has at least
    three, with day numbers that only go forward."""
    lines = _lines(text)
    days = [int(m.group(1)) for m in map(_LOG_HEADER.match, lines) if m]
    if not lines or not _LOG_HEADER.match(lines[0]):
        return StyleVerdict(False, "the story does not open with a 'Log, day N:' line")
    if len(days) < 3:
        return StyleVerdict(False, f"{len(days)} log entries; at least 3 are needed")
    if any(b <= a for a, b in zip(days, days[1:])):
        return StyleVerdict(False, "log days do not strictly increase")
    return StyleVerdict(True)


# What each house style asks, in words a writer (and a model) can follow. The prompt renderer
# states the rule under the control header, so the request names the habit it will be checked
# for: a small model learns to keep a rule it is shown far sooner than one it must infer from
# a few dozen examples (docs/BENCHMARKS.md, quickstart evaluation).
STYLE_RULES: dict[str, str] = {
    "moral": 'End with a line of its own that starts "Moral: " and gives the lesson in one '
             "sentence.",
    "refrain": "Give the story a short refrain on a line of its own; it comes back exactly three "
               "times, the last time as the final line.",
    "noir": "Narrate in the first person and the present tense.",
    "log": 'Tell it as log entries, each on a new line starting "Log, day N:", the days '
           "counting up.",
}

HOUSE_STYLES: dict[str, Callable[[str], StyleVerdict]] = {
    "moral": check_moral,
    "refrain": check_refrain,
    "noir": check_noir,
    "log": check_log,
}


def check_style(style: str, text: str) -> StyleVerdict | None:
    """The verdict of `style`'s check on `text`, or None where `style` is not a house style."""
    check = HOUSE_STYLES.get(style)
    return check(text) if check else None
