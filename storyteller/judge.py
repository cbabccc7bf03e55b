"""One verdict on one generated story: did it do what was asked, and did it do it honestly?

`judge_story` runs a few program checks — the requested house style (`storyteller.styles`), a
story that ended by itself, a sane length, no loops — and the HOLLOW checks: ways a story can
satisfy its style's check emptily (a `Moral:` line after a dozen words, a refrain that is most
of the story, log entries of three words, noir that is nearly all dialogue, one line said thirty
times). A model tuned on preferences learns whatever the judge rewards; a hollow story therefore
scores below every story that is not hollow, including one that fails its style honestly, so a
preference pair never teaches the model to game a check.

Pure: text in, `Judgement` out. Every threshold is a named constant with the reason for it; the
starter corpus passes every check (tests/unit/test_judge.py proves it on each story).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from storyteller.textstats import distinct_n, seq_rep_n, words
from storyteller.styles import HOUSE_STYLES, check_style, narration

# Length band in words. The starter corpus runs 167–691 words; below 60 a story has no room for
# a beginning, a middle and an end (a flash piece still runs past it); above 900 it is longer
# than any corpus story by a wide margin, and at the usual 1024-token limit it has been cut.
MIN_WORDS, MAX_WORDS = 60, 900
# Repetition: corpus stories have distinct-2 ≥ 0.83 and seq-rep-4 ≤ 0.09; a story past these
# bounds is looping, not writing.
MIN_DISTINCT_2, MAX_SEQ_REP_4 = 0.5, 0.3
# Share of a story's lines that repeat an earlier line; a refrain tale repeats 2 of ~20.
MAX_REPEATED_LINE_SHARE = 0.3

# Hollow checks. Corpus fables have ≥ 178 words before their moral.
MORAL_MIN_STORY_WORDS = 40
# A refrain is a line of 3–25 words standing on its own at least three times; in the corpus it
# is ~15% of the lines and ~5% of the words.
REFRAIN_MAX_LINE_SHARE = 0.5
REFRAIN_MAX_WORD_SHARE = 0.35
# Corpus logs average ≥ 40 words an entry (single entries go down to 5: a terse day is fine, a
# log of terse days is not).
LOG_MIN_MEAN_ENTRY_WORDS = 15
# Corpus noir keeps ≥ 77% of its words outside dialogue; check_noir only asks for 50 words.
NOIR_MIN_NARRATION_SHARE = 0.3
# Any line of two or more words said this many times is filler, whatever the style (a refrain
# comes back three times).
MAX_LINE_REPEATS = 6

# Score weights of the checks a non-hollow story passes; a house style counts most.
WEIGHTS_STYLED = {"style": 0.5, "stopped": 0.2, "length_ok": 0.15, "not_repetitive": 0.15}
WEIGHTS_PLAIN = {"stopped": 0.4, "length_ok": 0.3, "not_repetitive": 0.3}
# A story that is not hollow scores in [NOT_HOLLOW_FLOOR, 1]; a hollow one in
# [0, HOLLOW_CEILING], by its other checks (the style does not count: it was passed emptily).
NOT_HOLLOW_FLOOR, HOLLOW_CEILING = 0.2, 0.15

_LOG_HEADER = re.compile(r"^Log, day \d+:")


@dataclass(frozen=True)
class Judgement:
    score: float  # 0–1, higher is better
    style: str | None  # the requested house style, None for any other (or no) style
    style_passed: bool | None  # None where no house style was asked for
    hollow: list[str] = field(default_factory=list)  # why the story is hollow, [] if it is not
    checks: dict[str, bool] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # one per failed check, in words
    words: int = 0

    @property
    def is_hollow(self) -> bool:
        return bool(self.hollow)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines() if line.strip()]


def hollow_reasons(text: str, style: str | None = None) -> list[str]:
    """Why `text` satisfies a style emptily, [] when it does not. The checks on a `Moral:` line,
    a refrain, log entries and repeated lines apply to any story that has them (a hollow moral is
    hollow whatever was asked); the narration check only to noir, where dialogue-heavy writing
    is the way around the first-person-present check."""
    lines = _lines(text)
    reasons: list[str] = []
    all_words = words(text)
    total = len(all_words)

    moral_at = next((i for i, line in enumerate(lines) if line.startswith("Moral:")), None)
    if moral_at is not None:
        before = len(words("\n".join(lines[:moral_at])))
        if before < MORAL_MIN_STORY_WORDS:
            reasons.append(f"moral after {before} words of story")

    counts = Counter(lines)
    refrains = [(n, line) for line, n in counts.items() if n >= 3 and 3 <= len(line.split()) <= 25]
    if refrains:
        n, refrain = max(refrains)
        refrain_words = n * len(words(refrain))
        if n / len(lines) > REFRAIN_MAX_LINE_SHARE:
            reasons.append(f"refrain is {n} of {len(lines)} lines")
        elif total and refrain_words / total > REFRAIN_MAX_WORD_SHARE:
            reasons.append(f"mostly refrain ({refrain_words / total:.0%} of the words)")

    entries = _log_entries(lines)
    if len(entries) >= 3:
        mean = sum(entries) / len(entries)
        if mean < LOG_MIN_MEAN_ENTRY_WORDS:
            reasons.append(f"log entries of {mean:.0f} words on average")

    if style == "noir" and total:
        told = len(words(narration(text)))
        if told / total < NOIR_MIN_NARRATION_SHARE:
            reasons.append(f"almost no narration ({told} of {total} words outside dialogue)")

    line, n = max(((line, n) for line, n in counts.items() if len(line.split()) >= 2),
                  key=lambda item: item[1], default=("", 0))
    if n >= MAX_LINE_REPEATS:
        reasons.append(f"line repeated {n} times: {line[:40]!r}")
    return reasons


def _log_entries(lines: list[str]) -> list[int]:
    """Words in each `Log, day N:` entry (its header line after the header, and the lines up to
    the next header)."""
    entries: list[int] = []
    for line in lines:
        match = _LOG_HEADER.match(line)
        if match:
            entries.append(len(words(line[match.end():])))
        elif entries:
            entries[-1] += len(words(line))
    return entries


def repetition_problem(text: str) -> str | None:
    """Why the story loops, or None: low distinct-2, high seq-rep-4, or many repeated lines."""
    d2, rep = distinct_n([text], 2), seq_rep_n(text, 4)
    if d2 is not None and d2 < MIN_DISTINCT_2:
        return f"repetitive (distinct-2 {d2:.2f} < {MIN_DISTINCT_2})"
    if rep is not None and rep > MAX_SEQ_REP_4:
        return f"repetitive (seq-rep-4 {rep:.2f} > {MAX_SEQ_REP_4})"
    lines = _lines(text)
    repeated = len(lines) - len(set(lines))
    if lines and repeated / len(lines) > MAX_REPEATED_LINE_SHARE:
        return f"repetitive ({repeated} of {len(lines)} lines repeat an earlier one)"
    return None


def judge_story(text: str, controls: Mapping[str, Any] | None = None,
                finish_reason: str | None = None) -> Judgement:
    """The verdict on `text`, written for a request with `controls` (its `style` is checked when
    it is a house style), ended with `finish_reason` ("stop": by itself; "length": cut at the
    token limit; None: not known, as for a story a person wrote, and not held against it)."""
    requested = str((controls or {}).get("style") or "").strip().lower()
    style = requested if requested in HOUSE_STYLES else None
    count = len(words(text))
    checks: dict[str, bool] = {}
    reasons: list[str] = []

    verdict = check_style(style, text) if style else None
    if verdict is not None:
        checks["style"] = verdict.passed
        if not verdict.passed:
            reasons.append(f"{style}: {verdict.reason}")
    checks["stopped"] = finish_reason in (None, "stop")
    if not checks["stopped"]:
        reasons.append(f"did not end by itself (finish reason {finish_reason!r})")
    checks["length_ok"] = MIN_WORDS <= count <= MAX_WORDS
    if not checks["length_ok"]:
        reasons.append(f"{count} words, outside {MIN_WORDS}–{MAX_WORDS}")
    problem = repetition_problem(text)
    checks["not_repetitive"] = problem is None
    if problem:
        reasons.append(problem)
    hollow = hollow_reasons(text, style)
    checks["not_hollow"] = not hollow
    reasons += [f"hollow: {reason}" for reason in hollow]

    weights = WEIGHTS_STYLED if style else WEIGHTS_PLAIN
    if hollow:
        rest = {k: w for k, w in weights.items() if k != "style"}
        score = HOLLOW_CEILING * sum(w for k, w in rest.items() if checks[k]) / sum(rest.values())
    else:
        score = NOT_HOLLOW_FLOOR + (1 - NOT_HOLLOW_FLOOR) * sum(
            w for k, w in weights.items() if checks[k])
    passed = verdict.passed if verdict is not None else None
    return Judgement(round(score, 6), style, passed, hollow, checks, reasons, count)
