"""Find AITER call sites in Python source, statically (``ast``; the scanned code is never imported).

A call site counts when the called name was imported from ``aiter`` or one
of its submodules, in any of the forms ATOM uses::

    import aiter                      ; aiter.rmsnorm2d_fwd(...)
    import aiter as rocm_aiter        ; rocm_aiter.ops.quant.per_token_quant_hip(...)
    import aiter.mla                  ; aiter.mla.mla_decode_fwd(...)
    from aiter import gemm_a8w8       ; gemm_a8w8(...)
    from aiter.ops.triton.quant import dynamic_mxfp4_quant as q ; q(...)
    from aiter.tuned_gemm import tgemm ; tgemm.mm(...)

Imports inside functions bind in that function (and functions nested in it)
only, as in Python; a plain alias (``impl = gemm_a8w8``) binds like an import.
Calls through ``torch.ops.aiter.*`` are torch dispatcher calls (often ATOM's
own custom ops) and are not AITER call sites here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CallSite", "scan_source", "scan_file"]

_ROOT_PACKAGE = "aiter"


@dataclass(frozen=True)
class CallSite:
    """One call of an AITER name: where it is, how it was written, what it names."""

    path: str  # file, as given to the scanner (relative to the scanned root)
    line: int
    written: str  # the callee as written, e.g. ``rocm_aiter.ops.quant.per_token_quant_hip``
    target: str  # the dotted AITER path it resolves to, e.g. ``aiter.ops.quant.per_token_quant_hip``


def _is_aiter(module: str) -> bool:
    return module == _ROOT_PACKAGE or module.startswith(_ROOT_PACKAGE + ".")


def _dotted(node: ast.AST) -> list[str] | None:
    """``a.b.c`` → ``["a", "b", "c"]``; anything but a name/attribute chain → None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class _Bindings(ast.NodeVisitor):
    """Names bound to AITER objects directly in one scope (nested scopes are not entered)."""

    def __init__(self, enclosing: dict[str, str]) -> None:
        self.names: dict[str, str] = {}
        self.enclosing = enclosing

    def resolve(self, parts: list[str]) -> str | None:
        base = self.names.get(parts[0]) or self.enclosing.get(parts[0])
        return None if base is None else ".".join([base, *parts[1:]])

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not _is_aiter(alias.name):
                continue
            if alias.asname:
                self.names[alias.asname] = alias.name
            else:  # ``import aiter.mla`` binds ``aiter``; attribute access then spells the full path
                self.names[alias.name.split(".", 1)[0]] = _ROOT_PACKAGE

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module or not _is_aiter(node.module):
            return
        for alias in node.names:
            if alias.name != "*":
                self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def visit_Assign(self, node: ast.Assign) -> None:
        parts = _dotted(node.value)
        resolved = self.resolve(parts) if parts else None
        if resolved is not None:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.names[target.id] = resolved
        self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _SCOPES):
                self.visit(child)


def _scope_body(scope: ast.AST) -> list[ast.AST]:
    if isinstance(scope, ast.Lambda):
        return [scope.body]
    return list(getattr(scope, "body", []))


def _direct_nodes(nodes: list[ast.AST]) -> Iterator[ast.AST]:
    """Every node of a scope, without descending into nested scopes (yielded themselves)."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        children = _outer_parts(node) if isinstance(node, _SCOPES) else list(ast.iter_child_nodes(node))
        stack.extend(reversed(children))


def _outer_parts(scope: ast.AST) -> list[ast.AST]:
    """The parts of a nested scope evaluated in the enclosing one: decorators, defaults, bases."""
    parts: list[ast.AST] = list(getattr(scope, "decorator_list", []))
    arguments = getattr(scope, "args", None)
    if isinstance(arguments, ast.arguments):
        parts += arguments.defaults + [d for d in arguments.kw_defaults if d is not None]
    parts += list(getattr(scope, "bases", [])) + list(getattr(scope, "keywords", []))
    return parts


def _scan_scope(
    scope: ast.AST, nodes: list[ast.AST], enclosing: dict[str, str], path: str, found: list[CallSite]
) -> None:
    bindings = _Bindings(enclosing)
    for node in nodes:
        if not isinstance(node, _SCOPES):
            bindings.visit(node)
    # class bodies do not enclose their methods (Python's scoping); functions do
    visible = enclosing if isinstance(scope, ast.ClassDef) else {**enclosing, **bindings.names}
    for node in _direct_nodes(nodes):
        if isinstance(node, ast.Call):
            parts = _dotted(node.func)
            target = bindings.resolve(parts) if parts else None
            if target is not None:
                found.append(CallSite(path, node.lineno, ".".join(parts), target))
        if isinstance(node, _SCOPES) and node is not scope:
            _scan_nested(node, visible, path, found)


def _scan_nested(scope: ast.AST, enclosing: dict[str, str], path: str, found: list[CallSite]) -> None:
    _scan_scope(scope, _scope_body(scope), enclosing, path, found)


def scan_source(source: str, path: str = "<source>") -> list[CallSite]:
    """The AITER call sites of one module's source, in line order."""
    tree = ast.parse(source, filename=path)
    found: list[CallSite] = []
    _scan_scope(tree, list(tree.body), {}, path, found)
    return sorted(found, key=lambda site: (site.line, site.written))


def scan_file(file: Path, relative_to: Path) -> list[CallSite]:
    """Scan one file; paths in the result are relative to ``relative_to``."""
    return scan_source(file.read_text(encoding="utf-8"), file.relative_to(relative_to).as_posix())
