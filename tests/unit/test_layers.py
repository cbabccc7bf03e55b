"""The layering of storyteller/ (docs/ARCHITECTURE.md) holds: every import, at the top of a
module or inside a function, points down a floor or stays in its own package; only the CLI
uses typer; and no two modules import each other at load time."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "storyteller"

# Lowest floor first. A module may import its own package and any floor below its own; never a
# floor above, never a sibling on its floor. The foundation is storyteller/*.py outside these.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("curate",),
    ("finetune",),
    ("evaluate", "merge"),
    ("ratings", "selfjudge"),
    ("serve",),
    ("studio",),
    ("improve",),
    ("cli",),
)
FLOOR_OF = {unit: floor + 1 for floor, units in enumerate(FLOORS) for unit in units}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """The package (or stage module) a module belongs to: storyteller.finetune.data →
    finetune, storyteller.merge → merge, storyteller.prompts → '' (the foundation)."""
    parts = module.split(".")
    if len(parts) < 2:
        return ""
    return parts[1] if parts[1] in FLOOR_OF else ""


def is_module(name: str, root: Path) -> bool:
    return root.parent.joinpath(*name.split(".")).with_suffix(".py").exists()


def imports(path: Path, root: Path = PACKAGE,
            top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every storyteller import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            # `from storyteller import x` may name a submodule.
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                      if is_module(f"{node.module}.{alias.name}", root)]
    return [(line, name) for line, name in found
            if name == "storyteller" or name.startswith("storyteller.")]


def floor(unit: str) -> int:
    return FLOOR_OF.get(unit, 0)


def layer_violations(root: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        here = unit_of(module_name(path, root))
        for line, target in imports(path, root):
            there = unit_of(target)
            if there == here:
                continue
            if floor(there) > floor(here):
                problems.append(f"{path.relative_to(root.parent)}:{line}: {here or 'foundation'}"
                                f" imports {target}, a floor above it")
            elif floor(there) == floor(here):
                problems.append(f"{path.relative_to(root.parent)}:{line}: {here or 'foundation'}"
                                f" imports {target}, beside it on its floor")
    return problems


def test_nothing_points_up_or_sideways():
    assert layer_violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    # The same rules on a small copy: a stage that reaches for the CLI, and one that reaches
    # sideways, are both reported with their file and line.
    fake = tmp_path / "storyteller"
    for folder in ("curate", "cli", "evaluate"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text("")
    (fake / "merge.py").write_text("")
    (fake / "curate" / "run.py").write_text("from storyteller.cli import guard\n")
    (fake / "evaluate" / "run.py").write_text("def f():\n    import storyteller.merge\n")
    assert layer_violations(fake) == [
        "storyteller/curate/run.py:1: curate imports storyteller.cli, a floor above it",
        "storyteller/evaluate/run.py:2: evaluate imports storyteller.merge, beside it on its floor",
    ]


def test_only_the_cli_uses_typer():
    users = [str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*.py")
             if "import typer" in path.read_text(encoding="utf-8")
             and unit_of(module_name(path)) != "cli"]
    assert users == []


def test_no_import_cycle_at_load_time():
    graph: dict[str, set[str]] = defaultdict(set)
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    for name, path in modules.items():
        for _, target in imports(path, top_level_only=True):
            if target in modules and target != name:
                graph[name].add(target)
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, trail: list[str]) -> None:
        seen[node] = 1
        for target in sorted(graph[node]):
            if seen.get(target) == 1:
                pytest.fail("import cycle: " + " → ".join(trail[trail.index(target):] + [target]))
            if target not in seen:
                visit(target, trail + [target])
        seen[node] = 2

    for name in sorted(modules):
        if name not in seen:
            visit(name, [name])
