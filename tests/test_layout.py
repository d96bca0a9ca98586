"""The package shows the data flow: imports point only down the flow, and modules, classes and
functions stay small.

Stages, in the order a hook call flows through them (docs/architecture.md):
hooks < security < gather < read < decide < render < web < governance < top level (app, cli,
pipeline, queries, service): governance sits beside the flow and its HTTP endpoints use the web edge's helpers. A module may import its own stage and lower ones only; `config`, `logs`, `metrics`, `vocabulary` (the
shared words), `rules` (the rule data, its schemas and loader) and the package root are shared
utilities that every stage may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cds_service"
RANK = {
    "hooks": 0, "security": 1, "gather": 2, "read": 3, "decide": 4, "render": 5,
    "web": 6, "governance": 7, "app": 8, "cli": 8, "pipeline": 8, "queries": 8, "service": 8, "warmup": 8,
}
SHARED = {"", "config", "logs", "metrics", "vocabulary", "rules"}
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 200
MAX_FUNCTION_LINES = 60  # a function or method, its signature and docstring included (issue 18)


def stage_of(module: str) -> str:
    """'cds_service.read.parser' -> 'read'; 'cds_service' -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path, root: Path = PACKAGE) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """Every cds_service module the file imports (absolute and relative), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    this = module_name(path, root)
    package = this if path.name == "__init__.py" else this.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from cds_service import read` imports the stage itself
            if target == "cds_service":
                found += [(node.lineno, f"cds_service.{alias.name}") for alias in node.names
                          if (root / alias.name).is_dir() or (root / f"{alias.name}.py").is_file()]
    return [(line, name) for line, name in found if name == "cds_service" or name.startswith("cds_service.")]


def violations(path: Path, root: Path = PACKAGE) -> list[str]:
    here = stage_of(module_name(path, root))
    if here in SHARED:
        rank_here = -1  # shared utilities may import only other shared utilities
    else:
        rank_here = RANK[here]
    problems = []
    for line, target in imported_modules(path, root):
        there = stage_of(target)
        if there in SHARED:
            continue
        if there not in RANK:
            problems.append(f"{path.name}:{line} imports {target}, which is in no stage")
        elif RANK[there] > rank_here:
            problems.append(f"{module_name(path, root)}:{line} ({here or 'shared'}) imports {target} ({there}), a later stage")
    return problems


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_flow(path):
    assert violations(path) == []


def test_the_rule_catches_an_upward_import(tmp_path):
    """The checker itself: `read` importing `render` (absolute) or `decide` (relative) is reported."""
    root = tmp_path / "cds_service"
    (root / "read").mkdir(parents=True)
    bad = root / "read" / "bad.py"
    bad.write_text("from cds_service.render.cards import CardRenderer\nfrom ..decide import rules\n"
                   "from cds_service.gather.prefetch import GatheredData\nfrom cds_service.logs import log_event\n")
    found = violations(bad, root)
    assert len(found) == 2
    assert "render" in found[0] and "decide" in found[1]


def test_every_stage_is_a_package():
    for stage in ("hooks", "web", "security", "gather", "read", "decide", "render", "governance"):
        assert (PACKAGE / stage / "__init__.py").is_file(), stage


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_classes_stay_small(path):
    source = path.read_text(encoding="utf-8")
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path.name} has more than {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_CLASS_LINES, f"class {node.name} has {length} lines"


def long_functions(path: Path) -> list[tuple[str, int]]:
    """Every function or method of the file longer than MAX_FUNCTION_LINES: (name, lines)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append((node.name, length))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_functions_stay_short(path):
    too_long = [f"{name} has {length} lines" for name, length in long_functions(path)]
    assert too_long == [], f"{path.name}: over {MAX_FUNCTION_LINES} lines"


def test_the_rule_catches_a_long_function(tmp_path):
    """The checker itself: a 61-line function and a 61-line method are reported, 60 lines are not."""
    body = "".join(f"    x{i} = {i}\n" for i in range(59))
    source = tmp_path / "long.py"
    source.write_text(
        f"def short():\n{body}\n"  # 60 lines: the def, 59 assignments
        f"def long():\n{body}    return x0\n\n"  # 61 lines
        f"class Holder:\n    def method(self):\n{body.replace('    ', '        ')}        return x0\n"
    )
    assert long_functions(source) == [("long", 61), ("method", 61)]


def test_every_module_says_its_role():
    missing = [str(p.relative_to(PACKAGE)) for p in SOURCES
               if p.name != "__init__.py" and "migrations" not in p.parts and not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []
