"""The package's import graph: every import (module level and inside functions) follows the
layering, there is no cycle, and no module imports another module's private name."""

from __future__ import annotations

import ast
from pathlib import Path

import glmm_nb

PKG = Path(glmm_nb.__file__).parent

# lower number = lower layer; a module may import its own layer (acyclically) or below
LAYERS = {
    "errors": 0, "numdiff": 0, "datasets": 0, "progress": 0, "timing": 0,
    "formula": 1,
    "design": 2,
    "families": 3,
    "request": 4,
    "likelihood": 5,
    "optimize": 6,
    "results": 7,
    "pipeline": 8,
    "inference": 9, "distributed": 9,
    "marginal": 10,
    "report": 11, "templates": 11,
    "api": 12, "cells": 12, "papertable": 12,
    "magics": 13, "widgets": 13, "cli": 13, "demo": 13,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        parts = ["glmm_nb", *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]):
    """(target module, imported names) for every import in the file, resolved."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = base[: len(base) - node.level + 1]
                target = ".".join(pkg + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("glmm_nb"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:  # from . import display → the submodule
                    yield sub, []
                else:
                    yield target, [alias.name]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("glmm_nb"):
                    yield alias.name, []


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]]


def _graph():
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private = []
    for name, path in modules.items():
        if name == "glmm_nb":
            continue  # the curated public API imports from everywhere
        for target, names in _imports(name, path, modules):
            assert target in modules, f"{name} imports unknown module {target}"
            if target != name:
                edges[name].add(target)
            same_package = target.rsplit(".", 1)[0] == name.rsplit(".", 1)[0] or target == name.rsplit(".", 1)[0]
            for n in names:
                if n.startswith("_") and not n.startswith("__") and not same_package:
                    private.append(f"{name} imports {target}.{n}")
    return modules, edges, private


def test_every_module_has_a_layer():
    modules, _edges, _ = _graph()
    unknown = sorted({m.split(".")[1] for m in modules if m != "glmm_nb" and m.split(".")[1] not in LAYERS})
    assert not unknown, f"add these to LAYERS: {unknown}"


def find_upward(edges) -> list[str]:
    """Edges into a higher layer, or into the package root."""
    return sorted(f"{a} -> {b}" for a, targets in edges.items() if a != "glmm_nb" for b in targets
                  if b == "glmm_nb" or _layer(b) > _layer(a))


def find_cycles(edges) -> list[str]:
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {m: WHITE for m in edges}
    cycles = []

    def visit(m, stack):
        colour[m] = GREY
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if colour.get(t) == GREY:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif colour.get(t) == WHITE:
                visit(t, stack)
        stack.pop()
        colour[m] = BLACK

    for m in sorted(edges):
        if colour[m] == WHITE:
            visit(m, [])
    return cycles


def test_imports_flow_downwards():
    _modules_, edges, _ = _graph()
    upward = find_upward(edges)
    assert not upward, "upward imports: " + "; ".join(upward)


def test_no_import_cycles():
    _modules_, edges, _ = _graph()
    cycles = find_cycles(edges)
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_no_private_names_across_modules():
    _modules_, _edges, private = _graph()
    assert not private, "; ".join(private)


def test_the_graph_checker_catches_a_violation(tmp_path):
    """The checks can fail: a function-level upward import and a cycle are both found."""
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from ..inference import simulate\n    from ..api import glmm\n")
    modules = _modules()
    got = list(_imports("glmm_nb.results.fake", fake, modules))
    assert got == [("glmm_nb.inference.simulate", []), ("glmm_nb.api", ["glmm"])]
    edges = {"glmm_nb.results.fake": {t for t, _ in got}, "glmm_nb.inference.simulate": set(), "glmm_nb.api": set()}
    assert find_upward(edges) == ["glmm_nb.results.fake -> glmm_nb.api", "glmm_nb.results.fake -> glmm_nb.inference.simulate"]
    cyc = {"glmm_nb.inference.a": {"glmm_nb.inference.b"}, "glmm_nb.inference.b": {"glmm_nb.inference.a"}}
    assert find_cycles(cyc) == ["glmm_nb.inference.a -> glmm_nb.inference.b -> glmm_nb.inference.a"]
    assert find_cycles({"glmm_nb.inference.a": {"glmm_nb.inference.b"}, "glmm_nb.inference.b": set()}) == []
