"""The package's architecture: an acyclic import graph, and generic layers that know no library.

Module-level cycles make import order matter and hide which layer depends on
which; ``lint-imports`` (pyproject ``[tool.importlinter]``, run by CI) holds the
layer contracts, and this test holds the graph acyclic. ``TYPE_CHECKING``
imports are left out: they never run.

Checks, the engine and shadow references are generic: what they must know
about AITER or ATOM (ASM and CK kernels, factories, selectors, hints) comes
from ``quantguard.contracts``.  Import-linter forbids them the library
contract modules; the test here forbids them library module paths in their
string constants (docstrings may name them), so the knowledge cannot creep
back in as text.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "quantguard"
_GENERIC_PACKAGES = ("checks", "engine", "shadow")
_LIBRARY_PATH = re.compile(r"\b(aiter|atom)\.")


def import_cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_quantguard_has_no_import_cycles():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("quantguard", exclude_type_checking_imports=True)
    assert import_cycles(graph) == []


def test_a_cycle_is_found():
    grimp = pytest.importorskip("grimp")
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    assert import_cycles(graph) == [["p.a", "p.b", "p.c"]]


def library_paths(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every string constant, docstrings aside, that names a library module path."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and _LIBRARY_PATH.search(node.value)
    ]


@pytest.mark.parametrize("package", _GENERIC_PACKAGES)
def test_generic_layers_name_no_library_path(package):
    files = sorted((SRC / package).rglob("*.py"))
    assert files
    found = {
        f"{path.relative_to(SRC)}:{line}": text
        for path in files
        for line, text in library_paths(path.read_text(encoding="utf-8"))
    }
    assert found == {}, "library knowledge belongs in quantguard.contracts (see its libraries module)"


def test_a_library_path_in_a_string_is_found():
    source = (
        '"""Module docs may name aiter.ops.quant."""\n'
        'PATH = "aiter.ops.quant.get_hip_quant"\n'
        "def selector(method):\n"
        '    """Docs may name atom.model_ops."""\n'
        '    return f"atom.model_ops.moe.{method}.use_triton"\n'
        'HINT = "ATOM: use_triton_gemm()"  # prose, not a path\n'
    )
    assert library_paths(source) == [(2, "aiter.ops.quant.get_hip_quant"), (5, "atom.model_ops.moe.")]
