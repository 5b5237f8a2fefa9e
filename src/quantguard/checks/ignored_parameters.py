"""Parameters a function accepts but never reads (``ignored_parameter``), found statically.

Silently ignored parameters are the worst class of quantization bug: the
Triton fallback of ``dynamic_per_token_scaled_quant`` accepted
``shuffle_scale`` and never looked at it.  At patch time, the code object of
each guarded function — and of the implementations it dispatches to (module
functions it calls by name, and same-module functions named after it such as
``_fallback_<name>`` or ``<name>_triton``) — is scanned for the parameters
its contract says must be honored: a parameter whose name is never loaded in
the body (and is not forwarded through ``*args``/``**kwargs``, captured by a
closure, or exposed through ``locals()``/``vars()``) is reported once.

A wrapper forwarding ``*args, **kwargs`` reads everything; what it wraps
(``__wrapped__``, functions in its closure) is scanned as an implementation of
its own, except declaration-only stubs (``...``): AITER's ``compile_ops``
stubs bind C++ kernels and read nothing in Python.
"""

from __future__ import annotations

import dis
import inspect
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from quantguard.checks.base import Finding, ScanCheck, register_check

__all__ = ["IgnoredParameters", "unread_parameters", "implementations_of"]

_LOADS = {
    "LOAD_FAST",
    "LOAD_FAST_CHECK",
    "LOAD_FAST_AND_CLEAR",
    "LOAD_FAST_LOAD_FAST",
    "LOAD_CLOSURE",
    "LOAD_DEREF",
    "LOAD_FAST_BORROW",
    "LOAD_FAST_BORROW_LOAD_FAST_BORROW",
}
_INTROSPECTION = {"locals", "vars", "eval", "exec"}


def _function(obj: Any) -> types.FunctionType | None:
    """The plain Python function behind ``obj`` (Triton JIT functions keep theirs in ``.fn``)."""
    if isinstance(obj, types.FunctionType):
        return obj
    inner = getattr(obj, "fn", None)
    if isinstance(inner, types.FunctionType):
        return inner
    if isinstance(obj, types.MethodType) and isinstance(obj.__func__, types.FunctionType):
        return obj.__func__
    return None


def unread_parameters(function: Any) -> list[str]:
    """Named parameters of ``function`` that its body never loads."""
    fn = _function(function)
    if fn is None:
        return []
    code = fn.__code__
    count = code.co_argcount + code.co_kwonlyargcount
    params = code.co_varnames[:count]
    loaded: set[str] = set(code.co_cellvars)
    for instruction in dis.get_instructions(code):
        if instruction.opname in _LOADS:
            value = instruction.argval
            loaded.update(value if isinstance(value, tuple) else (value,))
        elif instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME") and instruction.argval in _INTROSPECTION:
            return []
    return [name for name in params if name not in loaded and name != "self"]


_STUB_OPS = {"RESUME", "NOP", "LOAD_CONST", "RETURN_VALUE", "RETURN_CONST", "POP_TOP", "CACHE", "COPY_FREE_VARS"}


def is_stub(fn: types.FunctionType) -> bool:
    """A declaration-only body (``...``, a docstring): AITER's ``compile_ops`` stubs bind C++ kernels."""
    return all(instruction.opname in _STUB_OPS for instruction in dis.get_instructions(fn.__code__))


def _callees(fn: types.FunctionType) -> Iterator[Any]:
    """Module functions ``fn`` calls by name, and what it wraps (``__wrapped__``, closure cells)."""
    names = set(fn.__code__.co_names)
    for const in fn.__code__.co_consts:
        if isinstance(const, types.CodeType):
            names.update(const.co_names)
    for name in names:
        value = fn.__globals__.get(name)
        if value is not None:
            yield value
    wrapped = getattr(fn, "__wrapped__", None)
    if wrapped is not None:
        yield wrapped
    for cell in fn.__closure__ or ():
        try:
            yield cell.cell_contents
        except ValueError:  # an empty cell
            continue


def implementations_of(
    function: Any, max_depth: int = 2, module_name: str | None = None, name: str | None = None
) -> list[Any]:
    """The function, the module functions it calls by name (two levels), and same-module namesakes.

    ``module_name``/``name`` say where to look for namesakes when the function is
    not defined where it is published (an AITER custom-op entry point is a
    ``wrapper_custom`` from ``torch_guard``, its fallbacks live beside the entry point).
    """
    root = _function(function)
    if root is None:
        return []
    package = (root.__module__ or "").split(".")[0]
    found: dict[int, Any] = {id(root): root}
    frontier = [root]
    for _ in range(max_depth):
        next_frontier = []
        for fn in frontier:
            for callee in _callees(fn):
                inner = _function(_behind_custom_op(callee))
                if (
                    inner is None
                    or id(inner) in found
                    or (inner.__module__ or "").split(".")[0] != package
                    or is_stub(inner)
                ):
                    continue
                found[id(inner)] = inner
                next_frontier.append(inner)
        frontier = next_frontier
    module = sys.modules.get(module_name or root.__module__ or "")
    leaf = name or root.__name__
    if module is not None:
        for attribute, value in list(vars(module).items()):
            inner = _function(value)
            if inner is not None and inner is not root and _namesake(leaf, attribute) and id(inner) not in found:
                found[id(inner)] = inner
    return list(found.values())


#: ``callee -> the Python function behind it`` for entry points that are torch custom-op wrappers;
#: installed by the engine (:mod:`quantguard.engine.custom_ops`), which knows how ops are found.
CUSTOM_OP_IMPLEMENTATION: Callable[[Any], Any] | None = None


def _behind_custom_op(callee: Any) -> Any:
    """For an AITER ``wrapper_custom`` around a torch op, the Python function the op was made from."""
    resolve = CUSTOM_OP_IMPLEMENTATION
    found = resolve(callee) if resolve is not None and callable(callee) else None
    return callee if found is None else found


def _namesake(leaf: str, name: str) -> bool:
    """``name`` is an implementation named after ``leaf`` (``_fallback_<leaf>``, ``<leaf>_triton``).

    Whole ``_``-separated words, so ``mm`` is not found in ``gen_gemm_a16w16_fake_tensor``;
    fake (shape-only) implementations for ``torch.compile`` read no parameter on purpose.
    """
    wanted = [word for word in leaf.split("_") if word]
    words = [word for word in name.split("_") if word]
    if not wanted or "fake" in words or words == wanted:
        return False
    return any(words[i : i + len(wanted)] == wanted for i in range(len(words) - len(wanted) + 1))


def _where(fn: types.FunctionType) -> str:
    return f"{fn.__code__.co_filename}:{fn.__code__.co_firstlineno}"


@register_check
class IgnoredParameters(ScanCheck):
    name = "ignored_parameter"
    reports = ("ignored_parameter",)
    summary = "statically flag honored parameters a function (or its fallback) never reads"

    def scan(self, function: Any, contract: Any) -> Iterable[tuple[Any, Finding, str]]:
        honored = set(contract.honored)
        if not honored:
            return []
        results = []
        for fn in implementations_of(function, module_name=contract.module, name=contract.name):
            try:
                accepted = set(inspect.signature(fn).parameters)
            except (TypeError, ValueError):
                continue
            relevant = honored & accepted
            unread = [name for name in unread_parameters(fn) if name in relevant]
            if not unread:
                continue
            qualified = f"{fn.__module__}.{fn.__qualname__}"
            via = "" if _function(function) is fn else f" (an implementation of {contract.target})"
            results.append(
                (
                    fn,
                    Finding(
                        "ignored_parameter",
                        f"{qualified} accepts {', '.join(unread)} but never reads {'it' if len(unread) == 1 else 'them'}{via}",
                        severity="warning",
                        details={"function": qualified, "parameters": unread, "definition": _where(fn)},
                    ),
                    _where(fn),
                )
            )
        return results
