"""WritingPrompts: line-aligned `.wp_source` / `.wp_target` files or a CSV of prompt and story.

The data comes tokenised Penn-Treebank style (`do n't`, `` ``quote'' ``, ` , `, `-LRB-`), with
`<newline>` for line breaks and a `[ WP ]`-style tag in front of each prompt. `detokenize` undoes
all of it; the tag becomes metadata."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterator, Mapping

from storyteller.curate.decode import read_text
from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources.structured import csv_rows
from storyteller.errors import InputError

TAG_NAMES = {
    "WP": "writing prompt", "EU": "established universe", "CW": "constrained writing",
    "IP": "image prompt", "TT": "theme thursday", "MP": "media prompt", "PI": "prompt inspired",
    "OT": "off topic", "RF": "reality fiction", "FF": "fast fiction", "SP": "simple prompt",
    "PM": "prompt me", "CC": "constructive criticism",
}
_TAG = re.compile(r"\s*[\[(]\s*([A-Za-z]{2,8}(?:\s*/\s*[A-Za-z]{2,8})*)\s*[\])]\s*")

_REPLACEMENTS = [
    (re.compile(r"\s*<newline>\s*"), "\n"),
    (re.compile(r"-LRB-|-LSB-"), "("), (re.compile(r"-RRB-|-RSB-"), ")"),
    (re.compile(r"-LCB-"), "{"), (re.compile(r"-RCB-"), "}"),
    (re.compile(r"``\s*"), '"'),
    (re.compile(r"\s*''"), '"'),
    (re.compile(r"(\w) (n't)\b", re.IGNORECASE), r"\1\2"),
    (re.compile(r"(\w) ('(?:s|re|ve|m|ll|d))\b", re.IGNORECASE), r"\1\2"),
    (re.compile(r" ([,.!?;:%)\]}])"), r"\1"),
    (re.compile(r"([(\[{$]) "), r"\1"),
    (re.compile(r"[ \t]*\n[ \t]*"), "\n"),
    (re.compile(r"[ \t]{2,}"), " "),
]


def detokenize(text: str) -> str:
    """Undo WritingPrompts' tokenisation: `do n't` → `don't`, `` ``hi , '' `` → `"hi,"`,
    `<newline>` → a line break, `-LRB-` → `(`."""
    text = text.replace("\\n", "\n")
    for pattern, replacement in _REPLACEMENTS:
        text = pattern.sub(replacement, text)
    # `" Hello` after an opening quote that was spaced away from its word.
    text = re.sub(r'(^|[\s(])" (?=\w)', r'\1"', text)
    return text.strip()


def split_tags(prompt: str) -> tuple[list[str], str]:
    """`[ WP ] You wake up…` → (["WP"], "You wake up…"); every bracketed tag at the front,
    combined ones (`[WP/IP]`) split. A bracketed phrase of several words is not a tag."""
    tags = []
    while True:
        match = _TAG.match(prompt)
        if not match:
            return tags, prompt.strip()
        tags.extend(part.strip().upper() for part in match.group(1).split("/"))
        prompt = prompt[match.end():]


def tag_name(tag: str) -> str:
    return TAG_NAMES.get(tag, tag.lower())


def make_story(prompt: str, story: str, source: str, line: int | None,
               position: int | None) -> RawStory:
    tags, premise = split_tags(detokenize(prompt))
    meta: dict = {"premise": premise} if premise else {}
    if tags:
        meta["tags"] = [tag_name(t) for t in tags]
    return RawStory(text=detokenize(story), source=source, line=line, position=position, meta=meta)


def read_pair_files(source_path: Path, encoding: str = "auto") -> Iterator[RawStory | Rejected]:
    target_path = source_path.with_suffix(".wp_target")
    if not target_path.exists():
        raise InputError.at(str(source_path), f"no matching {target_path.name}",
                            "WritingPrompts needs the .wp_source and .wp_target files side by side")
    prompts = read_text(source_path, encoding)[0].split("\n")
    stories = read_text(target_path, encoding)[0].split("\n")
    if prompts and not prompts[-1]:
        prompts.pop()
    if stories and not stories[-1]:
        stories.pop()
    if len(prompts) != len(stories):
        raise InputError.at(str(target_path),
                            f"{len(stories)} stories for {len(prompts)} prompts in {source_path.name}",
                            "the two files must have one line per pair")
    for number, (prompt, story) in enumerate(zip(prompts, stories), start=1):
        if not story.strip():
            yield Rejected(str(target_path), number, "empty", "no story on this line")
            continue
        yield make_story(prompt, story, str(target_path), number, None)


def read_writingprompts_csv(path: Path, fields: Mapping[str, str],
                            encoding: str = "auto") -> Iterator[RawStory | Rejected]:
    text, _ = read_text(path, encoding)
    rows = csv_rows(path, text)
    first = next(rows, None)
    header = [h.strip() for h in first[1]] if first and isinstance(first[1], list) else []
    prompt_key, story_key = fields.get("premise", "prompt"), fields.get("text", "story")
    if prompt_key not in header or story_key not in header:
        raise InputError.at(f"{path}:1", f"a WritingPrompts CSV needs {prompt_key!r} and "
                                         f"{story_key!r} columns", "map them with source.fields")
    for line, row in rows:
        if isinstance(row, csv.Error) or len(row) != len(header):
            yield Rejected(str(path), line, "malformed",
                           f"unreadable CSV row: {row}" if isinstance(row, csv.Error)
                           else f"{len(row)} columns where the header has {len(header)}")
            continue
        record = dict(zip(header, row))
        if not record[story_key].strip():
            yield Rejected(str(path), line, "empty", "no story in this row")
            continue
        yield make_story(record[prompt_key], record[story_key], str(path), line, None)


def read_writingprompts(path: Path, fields: Mapping[str, str],
                        encoding: str = "auto") -> Iterator[RawStory | Rejected]:
    if path.suffix == ".wp_target":
        path = path.with_suffix(".wp_source")
    if path.suffix == ".wp_source":
        yield from read_pair_files(path, encoding)
    else:
        yield from read_writingprompts_csv(path, fields, encoding)
