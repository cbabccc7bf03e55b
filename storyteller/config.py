"""Typed configuration: one dataclass per stage, loaded from YAML with `--set a.b=value` overrides.

Unknown keys and values of the wrong type are errors that name the key and the file:line they
came from, with a suggestion where a known key is close. Every stage's dataclass lives in its own
package (for example `storyteller.curate.config`); this module holds the machinery they share.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path, PurePath
from typing import Any, Literal, Mapping, TypeVar, Union, get_args, get_origin

import yaml

from storyteller.errors import ConfigError, Problem

T = TypeVar("T")


class FieldInvalid(ValueError):
    """Raised from a config dataclass's `__post_init__` for a value with the right type but a
    wrong meaning; `field` is the key inside that dataclass."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise FieldInvalid(field, message)


def _key_lines(node: yaml.Node, prefix: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            _key_lines(value_node, key + ".", lines)


def read_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The mapping in a YAML file and the line of every (dotted) key in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError.at(str(path), "config file not found", "check the path") from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError.at(where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError.at(str(path), "the file must hold a mapping of keys to values")
    lines: dict[str, int] = {}
    if node is not None:
        _key_lines(node, "", lines)
    return data, lines


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` → (["a", "b"], value), the value read as YAML (so 3, true, [x, y] work)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError.at(f"--set {text}", "an override must look like key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


class _Loader:
    def __init__(self, source: str, lines: dict[str, int], overridden: Mapping[str, str] = {}):
        self.source = source
        self.lines = lines
        # key → where its value came from instead of the file: `--set key` or a flag's name.
        self.overridden = overridden
        self.problems: list[Problem] = []

    def where(self, key: str) -> str:
        parts = key.split(".")
        for n in range(len(parts), 0, -1):
            origin = self.overridden.get(".".join(parts[:n]))
            if origin:
                return f"--set {key}" if origin.startswith("--set") else origin
        # A list item has no line of its own in the map: use its list's.
        line = self.lines.get(key) or self.lines.get(re.sub(r"\[\d+\]", "", key))
        return f"{self.source}:{line}: {key}" if line else f"{self.source}: {key}"

    def fail(self, key: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.where(key), message, hint))

    def convert(self, tp: Any, value: Any, key: str) -> Any:
        origin = get_origin(tp)
        if tp is Any:
            return value
        if origin in (Union, types.UnionType):
            options = get_args(tp)
            if value is None and type(None) in options:
                return None
            for option in options:
                if option is type(None):
                    continue
                trial = _Loader(self.source, self.lines, self.overridden)
                result = trial.convert(option, value, key)
                if not trial.problems:
                    return result
            self.fail(key, f"expected {_describe(tp)}, got {value!r}")
            return None
        if origin is Literal:
            if value not in get_args(tp):
                close = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], 1)
                self.fail(key, f"must be one of {_describe(tp)}, got {value!r}",
                          f"did you mean {close[0]!r}?" if close else "")
            return value
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                self.fail(key, f"expected a mapping, got {value!r}")
                return tp()
            return self.build(tp, value, key + ".")
        if origin is list:
            (item_tp,) = get_args(tp)
            if not isinstance(value, list):
                self.fail(key, f"expected a list, got {value!r}")
                return []
            return [self.convert(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
        if origin is dict:
            key_tp, item_tp = get_args(tp)
            if not isinstance(value, dict):
                self.fail(key, f"expected a mapping, got {value!r}")
                return {}
            return {str(k): self.convert(item_tp, v, f"{key}.{k}") for k, v in value.items()}
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if tp is float and isinstance(value, str):
            # YAML reads 5e-3 (no dot) as a string; it is plainly a number.
            try:
                return float(value)
            except ValueError:
                pass
        if tp in (int, float) and isinstance(value, bool):
            self.fail(key, f"expected {tp.__name__}, got {value!r}")
            return value
        if tp in (str, int, float, bool) and not isinstance(value, tp):
            self.fail(key, f"expected {tp.__name__}, got {value!r}")
            return value
        return value

    def build(self, cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        kwargs = {}
        for name, value in data.items():
            key = f"{prefix}{name}"
            if name not in names:
                close = difflib.get_close_matches(str(name), names, 1)
                self.fail(key, "unknown key",
                          f"did you mean {prefix}{close[0]}?" if close
                          else f"known keys: {', '.join(names)}")
                continue
            kwargs[name] = self.convert(hints[name], value, key)
        if self.problems:
            return None  # type: ignore[return-value]
        try:
            return cls(**kwargs)
        except FieldInvalid as exc:
            self.fail(f"{prefix}{exc.field}", str(exc))
            return None  # type: ignore[return-value]


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        child = data.get(part)
        if not isinstance(child, dict):
            child = data[part] = {}
        data = child
    data[path[-1]] = value


def plain(value: Any) -> Any:
    """A flag's typed value as the data a YAML file would hold (a path as its text)."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def load_config(cls: type[T], path: str | Path | None = None,
                sets: list[str] | tuple[str, ...] = (),
                flags: Mapping[str, tuple[str, Any]] | None = None,
                defaults: dict[str, Any] | None = None) -> T:
    """Build `cls` from defaults, then the YAML file at `path`, then `--set` overrides, then
    command-line flags.

    `flags` maps a config key to (the flag that sets it, its typed value), e.g.
    `{"out": ("--out", out)}`; a None value is a flag not given. Flag values are never re-read as YAML text, so
    `--out "runs/a #2"` stays whole and `--model no` stays the string "no"; they go through the
    same checks as the file, and a problem names the flag (`--out: …`).

    Raises ConfigError listing every unknown key and wrong value, each with its file:line, its
    `--set` or its flag."""
    data: dict[str, Any] = dict(defaults or {})
    lines: dict[str, int] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        file_data, lines = read_yaml(Path(path))
        data.update(file_data)
    overridden: dict[str, str] = {}
    for text in sets:
        key_path, value = parse_override(text)
        key = ".".join(key_path)
        overridden[key] = f"--set {key}"
        _set_path(data, key_path, value)
    for key, (flag, value) in (flags or {}).items():
        if value is None:
            continue
        overridden[key] = flag
        _set_path(data, key.split("."), plain(value))
    loader = _Loader(source, lines, overridden)
    config = loader.build(cls, data)
    if loader.problems:
        raise ConfigError(*loader.problems)
    return config


def to_dict(config: Any) -> dict[str, Any]:
    """The resolved config as plain data, for manifests and run directories."""
    return dataclasses.asdict(config)
