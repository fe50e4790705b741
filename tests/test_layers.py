"""The layering the README and docs/ARCHITECTURE.md claim, checked on the source itself (read as text, nothing run):
no file imports a layer above its own, no import forms a cycle, no Python file is over 500 lines, and the
architecture's tree names every Python file there is (and no file that is not)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "pipeline", "analysis", "app", "benchmarks")
# each layer and what it may import (besides itself); the README and docs/ARCHITECTURE.md say the same in words:
# model/ imports nothing from pipeline/, analysis/ or app/; analysis/ nothing from app/ or pipeline/
MAY_IMPORT = {
    "model.sketchworld": set(),
    "model.core": {"model.sketchworld"},
    "model.data": {"model.sketchworld", "model.core"},
    "model.generation": {"model.sketchworld", "model.core"},
    "model.training": {"model.sketchworld", "model.core", "model.data", "model.generation", "model.evaluation"},
    "model.evaluation": {"model.sketchworld", "model.core", "model.data", "model.generation"},
    "model": {
        "model.sketchworld",
        "model.core",
        "model.data",
        "model.generation",
        "model.training",
        "model.evaluation",
    },
    "analysis": {"model.sketchworld", "model.core", "model.data", "model.generation", "model.evaluation"},
    "pipeline": {"model.sketchworld", "model.core", "model.data", "model.generation", "model.evaluation", "analysis"},
    "app": {"model.sketchworld", "model.core", "model.data", "model.generation", "model.evaluation", "analysis"},
}
MAX_LINES = 500


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "model" and len(parts) > 1 and f"model.{parts[1]}" in MAY_IMPORT:
        return f"model.{parts[1]}"
    return parts[0]


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports, anywhere in the file (a function's own imports too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in modules:  # `from a.b import c`: the module a.b.c, else a.b
                name = name.rpartition(".")[0]
            if name and name.split(".")[0] in PACKAGES:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    files = python_files(*PACKAGES)
    modules = {module_of(p) for p in files}
    return {module_of(p): imports_of(p, modules) - {module_of(p)} for p in files}


def test_no_layer_imports_one_above_it():
    wrong = []
    for module, imported in graph().items():
        layer = layer_of(module)
        if layer == "benchmarks":
            continue  # the benchmarks measure every layer
        allowed = MAY_IMPORT[layer] | {layer}
        wrong += [f"{module} imports {other}" for other in sorted(imported) if layer_of(other) not in allowed]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    edges = {module: {m for m in imported if not module.startswith(m + ".")} for module, imported in graph().items()}
    state, cycles = {}, []  # a package's own __init__ reached from inside it is not a cycle

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for other in sorted(edges.get(module, ())):
            if state.get(other) == "open":
                cycles.append(" → ".join(path[path.index(other) :] + [other]))
            elif other not in state:
                visit(other, path + [other])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_no_python_file_is_over_500_lines():
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in python_files(*PACKAGES, "tests")
            if (n := len(p.read_text().splitlines())) > MAX_LINES]  # fmt: skip
    assert not long, "\n".join(long)


def architecture_files() -> set[str]:
    """The files docs/ARCHITECTURE.md's tree names: a folder line ("name/") opens a folder at its indent, a file line
    ("name.py  what it does", or "a.py, b.py, …") names files in the folder above it."""
    text = (ROOT / "docs/ARCHITECTURE.md").read_text()
    tree = text.split("```")[1]
    folders: list[tuple[int, str]] = []
    named = set()
    for line in tree.splitlines():
        match = re.match(r"( *)(\S+/)(\s|$)", line)
        if match:
            indent = len(match.group(1))
            folders = [f for f in folders if f[0] < indent] + [(indent, match.group(2))]
            continue
        match = re.match(r"( *)((?:[\w.]+\.py, )*[\w.]+\.py)(\s|$)", line)
        if match:
            indent = len(match.group(1))
            parent = "".join(name for level, name in folders if level < indent)
            named.update(parent + name for name in match.group(2).split(", "))
    return named


def test_the_architecture_tree_names_every_python_file():
    named = architecture_files()
    present = {str(p.relative_to(ROOT)) for p in python_files(*PACKAGES) if p.name != "__init__.py"}
    assert sorted(present - named) == [], "files the tree leaves out"
    assert sorted(named - present) == [], "files the tree names that do not exist"
