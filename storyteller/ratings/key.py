"""key.json read back: what each item id stands for (type, model, expectations, sides)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storyteller.errors import InputError, Problem
from storyteller.ratings.items import KEY_FORMAT


@dataclass(frozen=True)
class Key:
    raters: tuple[str, ...]
    dimensions: tuple[str, ...]
    scale: tuple[int, int]
    items: dict[str, dict[str, Any]]
    pairs: dict[str, dict[str, Any]]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: Any, where: str = "key.json") -> Key:
        if not isinstance(data, dict) or data.get("format") != KEY_FORMAT:
            raise InputError(Problem(where, "is not a key written by storyteller ratings make",
                                     f'expected "format": "{KEY_FORMAT}"'))
        try:
            return cls(tuple(data["raters"]), tuple(data["dimensions"]),
                       (int(data["scale"][0]), int(data["scale"][1])), dict(data["items"]),
                       dict(data.get("pairs") or {}), data)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise InputError(Problem(where, f"is incomplete ({type(error).__name__}: {error})",
                                     "write it again with storyteller ratings make")) from None

    def ids_of(self, kind: str) -> list[str]:
        """Item ids of one type (story, attention, repeat), in key order."""
        return [i for i, info in self.items.items() if info["type"] == kind]

    def models(self) -> list[str]:
        found = {info["model"] for info in self.items.values() if info.get("model")}
        found |= {side["model"] for info in self.pairs.values() for side in (info["a"], info["b"])}
        return sorted(found)

    def applicable(self, item: str) -> tuple[str, ...]:
        return tuple(self.items[item].get("dimensions") or self.dimensions)
