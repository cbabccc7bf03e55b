"""Errors that say where the problem is (file:line, field, config key) and what to do about it.

The CLI prints each problem on one line and exits 1; nothing here carries a traceback to users.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One located problem: `where` is a file:line, a field or a config key; `hint` says what to do."""

    where: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text} ({self.hint})" if self.hint else text


class StorytellerError(Exception):
    """One or more problems that stop a command; printed one line each by the CLI."""

    def __init__(self, *problems: Problem):
        if not problems:
            raise ValueError("StorytellerError needs at least one problem")
        self.problems = tuple(problems)
        super().__init__("; ".join(map(str, problems)))

    @classmethod
    def at(cls, where: str, message: str, hint: str = "") -> "StorytellerError":
        return cls(Problem(where, message, hint))


class ConfigError(StorytellerError):
    """A configuration file or override is wrong: unknown key, wrong type, bad value."""


class InputError(StorytellerError):
    """An input path or its contents cannot be used."""
