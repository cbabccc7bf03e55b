"""A record's fields → the pipeline's names (text, title, premise, genre, ...).

`source.fields` maps a pipeline name to one column (`body`), to several joined in order with a
space (`[sentence1, sentence2, ending]`, ROCStories' layout), or to a template with `{column}`
placeholders (`"{sentence1} {sentence2}\\n\\n{ending}"`); where a name is not mapped, the first
common alias present in the record is used. Before any record is mapped, the columns a file has
are checked against the mapping once, so a file whose stories cannot be found stops with one
error that lists its columns and the `--set` that would map them, not with a reject per row.
"""

from __future__ import annotations

import re
import shlex
import string
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from storyteller.curate.records import META_KEYS, Rejected, RawStory
from storyteller.errors import ConfigError

# Where a field is not mapped in the config, the first alias present in the record is used.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "text": ("text", "story", "body", "content", "fable", "target", "completion_text"),
    "title": ("title", "name"),
    "premise": ("premise", "prompt", "summary", "source_prompt"),
    "genre": ("genre", "kind", "category"),
    "style": ("style",),
    "tone": ("tone",),
    "pov": ("pov", "point_of_view"),
    "audience": ("audience",),
    "moral": ("moral", "lesson"),
    "id": ("id", "story_id", "row_id"),
}

FieldSpec = str | Sequence[str]
Fields = Mapping[str, FieldSpec]


@dataclass(frozen=True)
class Spec:
    """One mapped field: the columns it reads and, for a template, how they are laid out."""

    columns: tuple[str, ...]
    template: str | None = None

    @property
    def label(self) -> str:
        if self.template is not None:
            return repr(self.template)
        return self.columns[0] if len(self.columns) == 1 else "[" + ", ".join(self.columns) + "]"


def template_columns(template: str) -> tuple[str, ...]:
    """The `{column}` names of a template, in order; ValueError for unbalanced braces."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is not None:
            # A column name may hold ':' or '!', which str.format would read as a format spec.
            full = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            if not full.strip():
                raise ValueError("a template placeholder must name a column, not '{}'")
            names.append(full)
    return tuple(names)


def parse_spec(value: FieldSpec) -> Spec:
    """`body` → one column, `[a, b]` → columns joined with a space, `"{a}: {b}"` → a
    template."""
    if isinstance(value, str):
        columns = template_columns(value)
        return Spec(columns, value) if columns else Spec((value,))
    return Spec(tuple(value))


def render_template(template: str, values: Mapping[str, str]) -> str:
    parts = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal)
        if name is not None:
            full = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            parts.append(values[full])
    return "".join(parts)


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _pick(record: Mapping[str, Any], name: str, fields: Fields
          ) -> tuple[Spec | None, Any, str | None]:
    """(the spec used for pipeline field `name`, its value in `record` or None, the column it
    names that this record lacks or None)."""
    if name in fields:
        spec = parse_spec(fields[name])
        if spec.template is None and len(spec.columns) == 1:
            return spec, record.get(spec.columns[0]), None
        return (spec, *_joined(record, spec))
    for alias in FIELD_ALIASES.get(name, (name,)):
        if alias in record:
            return Spec((alias,)), record[alias], None
    return None, None, None


def _joined(record: Mapping[str, Any], spec: Spec) -> tuple[str | None, str | None]:
    """A list's columns joined with a space, or the template filled in; (None, the column)
    where the record lacks one of them."""
    values = {}
    for column in spec.columns:
        value = record.get(column)
        if _absent(value):
            return None, column
        values[column] = value if isinstance(value, str) else str(value)
    if spec.template is not None:
        return render_template(spec.template, values), None
    return " ".join(values[c].strip() for c in spec.columns if values[c].strip()), None


def map_record(record: Any, fields: Fields, source: str, line: int | None,
               position: int | None) -> RawStory | Rejected:
    """A parsed record → a RawStory, or a Rejected saying which field is wrong."""
    if not isinstance(record, Mapping):
        return Rejected(source, line, "malformed",
                        f"expected an object with a text field, got {type(record).__name__}",
                        position)
    spec, text, lacking = _pick(record, "text", fields)
    if lacking is not None:
        return Rejected(source, line, "missing_text",
                        f"no {lacking!r} field (source.fields.text is {spec.label})", position)
    if spec is None or text is None:
        wanted = spec.label if spec else "/".join(FIELD_ALIASES["text"])
        return Rejected(source, line, "missing_text", f"no {wanted} field", position)
    if not isinstance(text, str):
        return Rejected(source, line, "not_text",
                        f"field {spec.label!r} holds {type(text).__name__}, not text", position)
    meta: dict[str, Any] = {}
    for name in META_KEYS:
        _, value, _ = _pick(record, name, fields)
        if not _absent(value) and value != "":
            meta[name] = value if isinstance(value, (list, dict)) else str(value)
    return RawStory(text=text, source=source, line=line, position=position, meta=meta)


# ----------------------------------------------------------------- checking a file's columns


def _words(value: Any) -> int:
    return len(value.split()) if isinstance(value, str) else 0


def text_like(columns: Sequence[str], samples: Iterable[Mapping[str, Any]]) -> list[str]:
    """The columns whose sample values read like prose (several words each), in file order;
    else the wordiest one. Ids, titles, numbers and labels are left out."""
    rows = list(samples)
    words: dict[str, list[int]] = {c: [] for c in columns}
    for row in rows:
        for column in columns:
            words[column].append(_words(row.get(column)))
    median = {c: sorted(n)[len(n) // 2] if n else 0 for c, n in words.items()}
    prose = [c for c in columns if median[c] >= 5]
    if prose:
        return prose
    wordiest = max(columns, key=lambda c: median[c], default=None)
    return [wordiest] if wordiest is not None and median[wordiest] >= 2 else []


def _yaml_item(column: str) -> str:
    return column if re.fullmatch(r"[A-Za-z0-9_][\w .-]*", column) and column == column.strip() \
        else '"' + column.replace("\\", "\\\\").replace('"', '\\"') + '"'


def suggestion(columns: Sequence[str]) -> str:
    """The `--set` that maps `columns` as the story text, quoted for a shell."""
    if len(columns) == 1:
        value = _yaml_item(columns[0])
    else:
        value = "[" + ",".join(_yaml_item(c) for c in columns) + "]"
    return "--set " + shlex.quote(f"source.fields.text={value}")


def _listing(columns: Sequence[str], limit: int = 16) -> str:
    shown = list(columns)
    if len(shown) > limit:
        shown = shown[:limit - 2] + ["…"] + shown[-1:]
    return ", ".join(shown) or "none"


def check_columns(columns: Sequence[str], fields: Fields, where: str,
                  samples: Sequence[Mapping[str, Any]] = (), *, fixed: bool = True) -> None:
    """Stop (ConfigError) where the mapping cannot find the story text among `columns`, or
    names a column the file does not have. `fixed` is False where `columns` are only those seen
    in the first records (JSON), so a metadata column that appears later is not an error."""
    present = set(columns)
    if "text" in fields:
        spec = parse_spec(fields["text"])
        missing = [c for c in spec.columns if c not in present]
        if missing:
            what = ("no column " + ", ".join(map(repr, missing)) +
                    f" for source.fields.text = {spec.label}")
            raise _no_text(where, what, columns, samples)
    elif not any(alias in present for alias in FIELD_ALIASES["text"]):
        raise _no_text(where, "no story text column", columns, samples)
    if not fixed:
        return
    for name, value in fields.items():
        if name == "text":
            continue
        spec = parse_spec(value)
        missing = [c for c in spec.columns if c not in present]
        if missing:
            raise ConfigError.at(
                where, f"no column {', '.join(map(repr, missing))} for source.fields.{name} "
                       f"= {spec.label} (columns: {_listing(columns)})",
                f"fix or drop --set source.fields.{name}")


def _no_text(where: str, what: str, columns: Sequence[str],
             samples: Sequence[Mapping[str, Any]]) -> ConfigError:
    chosen = text_like(columns, samples)
    hint = (f"map them: {suggestion(chosen)}" if len(chosen) > 1
            else f"map it: {suggestion(chosen)}" if chosen
            else "map the story column: --set source.fields.text=COLUMN")
    return ConfigError.at(where, f"{what} (columns: {_listing(columns)})", hint)
