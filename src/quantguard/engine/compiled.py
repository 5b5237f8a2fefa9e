"""Guarded Python functions inside ``torch.compile``d code: traced through, and still observed.

TorchDynamo traces a guard's generated ``__call__`` (the guard reports its own
class, see ``Guard.__class__``).  Under tracing its first branch calls the
original function, traced as if unguarded (its Triton kernels and ops land in
the graph unchanged), then :func:`observe_traced` adds one node after it,
``torch.ops.quantguard.observe``, carrying the
call's arguments and result in typed lists (tensors, ints, floats, strings)
and a layout string that says how to rebuild them.  Nothing of quantguard's
own state is touched while tracing, so tracing adds no graph break and no
guard on quantguard's objects.

At run time the observer op rebuilds ``(args, kwargs, result)`` and hands them
to the guard's state (``GuardState.observe``): the same counters, sampling,
plan verdicts, data checks and events as an eager call, after the fact (a
compiled graph cannot be stopped before the kernel runs; a blocked kernel is
reported, and raises under ``on_block="raise"``).  The op is registered as
side-effecting, so no backend removes it.  A guard that was disabled (or a
state that is gone) makes the op a no-op.

Custom-op entry points (AITER's ``torch_compile_guard``) need none of this:
their guard sits at the op's dispatch (``engine.custom_ops``), which compiled
code reaches like eager code.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import torch

__all__ = ["register_state", "observe_traced", "observer_op"]

_STATES: list[Any] = []  # weak references to GuardStates, by compiled_id
_LAYOUTS: dict[str, Any] = {}  # parsed layout strings
_LOCK = threading.Lock()
_OP: Any = None
_LIBRARY: Any = None


def register_state(state: Any) -> int:
    """Give a guard state the index its compiled observers will name it by."""
    with _LOCK:
        _STATES.append(weakref.ref(state))
        return len(_STATES) - 1


# -- trace time: what Dynamo inlines ---------------------------------------------------------------
#
# Dynamo only lets a graph carry constants it can prove, and many arguments reach a guard
# as lazily guarded constants that cannot be read as Python values at trace time.  So no
# value is read here: each argument is routed by its type into one of the observer op's
# typed lists (tensors, ints, floats, strings), and the layout string, built from literals
# and keyword names only, says how to put the call back together at run time.


def _carry(value: Any, tensors: list, ints: list, floats: list, strings: list) -> str:
    if isinstance(value, torch.Tensor):
        tensors.append(value)
        return "t"
    if value is None:
        return "n"
    if isinstance(value, bool):
        ints.append(1 if value else 0)
        return "b"
    if isinstance(value, torch.SymInt) or type(value) is int:
        ints.append(value)
        return "i"
    if type(value) is float:
        floats.append(value)
        return "f"
    if type(value) is str:
        strings.append(value)
        return "s"
    if isinstance(value, torch.dtype):
        strings.append(str(value))
        return "d"
    if isinstance(value, (tuple, list)):
        inner = "".join([_carry(item, tensors, ints, floats, strings) for item in value])
        return ("(" + inner + ")") if isinstance(value, tuple) else ("[" + inner + "]")
    return "o"  # an object that cannot be carried; the rebuilt call has None there


def observe_traced(compiled_id: int, args: tuple, kwargs: dict, result: Any) -> None:
    """Put the observer node for one traced call of a guard into the graph (after the original).

    The guard's ``__call__`` calls the original itself, so a graph break inside
    the original nests one frame deeper than without quantguard, not two.
    """
    tensors: list = []
    ints: list = [compiled_id]
    floats: list = []
    strings: list = []
    layout = "".join([_carry(value, tensors, ints, floats, strings) for value in args])
    for name, value in kwargs.items():
        layout = layout + "," + name + "=" + _carry(value, tensors, ints, floats, strings)
    layout = layout + ";" + _carry(result, tensors, ints, floats, strings)
    observer_op()(layout, tensors, ints, floats, strings)


# -- run time: the observer op's kernel -------------------------------------------------------------


def _parse(layout: str) -> Any:
    """``"tti,dtype=d;t"`` -> (argument codes, ((name, codes), ...), result codes), cached."""
    parsed = _LAYOUTS.get(layout)
    if parsed is None:
        call, _, result = layout.rpartition(";")
        positional, *named = call.split(",")
        parsed = (positional, tuple(tuple(item.split("=", 1)) for item in named), result)
        _LAYOUTS[layout] = parsed
    return parsed


class _Reader:
    """Takes values off the op's typed lists in the order the layout codes name them."""

    __slots__ = ("lists", "next")

    def __init__(self, tensors: list, ints: list, floats: list, strings: list) -> None:
        self.lists = {"t": tensors, "i": ints, "b": ints, "f": floats, "s": strings, "d": strings}
        self.next = {"t": 0, "i": 1, "f": 0, "s": 0}  # ints[0] is the guard's compiled_id

    def _take(self, pool: str) -> Any:
        index = self.next[pool]
        self.next[pool] = index + 1
        return self.lists[pool][index]

    def values(self, codes: str) -> list:
        out: list = []
        stack: list[list] = [out]
        for code in codes:
            if code in "([":
                stack.append([])
                continue
            if code in ")]":
                items = stack.pop()
                stack[-1].append(tuple(items) if code == ")" else items)
                continue
            stack[-1].append(self._value(code))
        return out

    def _value(self, code: str) -> Any:
        if code == "t":
            return self._take("t")
        if code in "ib":
            value = self._take("i")
            return bool(value) if code == "b" else value
        if code == "f":
            return self._take("f")
        if code == "s":
            return self._take("s")
        if code == "d":
            return getattr(torch, self._take("s").replace("torch.", ""), None)
        return None  # "n" None, "o" an object that was not carried


def _observe(layout: str, tensors: list, ints: list, floats: list, strings: list) -> None:
    """The observer op's kernel: one compiled call of a guarded function, judged after the fact."""
    try:
        state = _STATES[ints[0]]()
    except (IndexError, TypeError):
        return
    if state is None or state.retired:
        return
    try:
        positional, named, result_codes = _parse(layout)
        reader = _Reader(tensors, ints, floats, strings)
        args = tuple(reader.values(positional))
        kwargs = {name: reader.values(codes)[0] for name, codes in named}
        result = reader.values(result_codes)[0]
    except Exception as exc:
        state.internal_error("compiled", exc)
        return
    state.observe(args, kwargs, result)


def _observe_fake(layout: str, tensors: list, ints: list, floats: list, strings: list) -> None:
    return None


def observer_op() -> Any:
    """``torch.ops.quantguard.observe``, defined on first use and marked side-effecting."""
    global _OP, _LIBRARY
    if _OP is None:
        with _LOCK:
            if _OP is None:
                if not hasattr(torch.ops.quantguard, "observe"):
                    _LIBRARY = torch.library.Library("quantguard", "DEF")
                    _LIBRARY.define(
                        "observe(str layout, Tensor[] tensors, SymInt[] ints, float[] floats, str[] strings) -> ()"
                    )
                    _LIBRARY.impl("observe", _observe, "CompositeExplicitAutograd")
                    _LIBRARY._register_fake("observe", _observe_fake)
                op = torch.ops.quantguard.observe.default
                mark = getattr(torch.fx.node, "has_side_effect", None)
                if mark is not None:
                    mark(op)
                else:  # older torch
                    torch.fx.node._side_effectful_functions.add(op)
                _OP = op
    return _OP
