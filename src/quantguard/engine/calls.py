"""One guarded call, bound to parameter names, as checks see it."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable, Mapping

from quantguard.engine.callsite import find_callsite

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.contracts.base import Contract
    from quantguard.engine.guard import GuardState

__all__ = ["Binder", "CallRecord", "tensor_meta"]

_SCALARS = (bool, int, float, str, bytes, type(None))


def tensor_meta(value: Any) -> Any:
    """Hashable metadata of any argument: tensors → (shape, dtype, strides), scalars as-is."""
    if isinstance(value, _SCALARS):
        return value
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "stride"):
        try:
            return (tuple(shape), value.dtype, value.stride(), str(value.device))
        except Exception:
            return (type(value).__name__,)
    try:
        hash(value)
        return value
    except TypeError:
        return (type(value).__name__,)


class Binder:
    """Binds ``(args, kwargs)`` to parameter names, with defaults filled in.

    Built once per guarded function from its real signature (following
    ``__wrapped__``, as AITER's ``compile_ops`` wrappers need); builtins without
    a signature fall back to the contract's ``params``.
    """

    __slots__ = ("signature", "names", "positions", "defaults", "_simple", "_name_set")

    def __init__(self, function: Any, fallback_params: tuple[str, ...] | None = None,
                 signature_of: Any = None) -> None:
        self.signature: inspect.Signature | None = None
        for candidate in (function, signature_of):
            if candidate is None:
                continue
            try:
                self.signature = inspect.signature(candidate)
                break
            except (TypeError, ValueError):
                continue
        if self.signature is not None:
            params = [p for p in self.signature.parameters.values()
                      if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            self.names = tuple(p.name for p in params)
            self.positions = {p.name: i for i, p in enumerate(params)
                              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)}
            self.defaults = {p.name: p.default for p in params if p.default is not p.empty}
        else:
            self.names = tuple(fallback_params or ())
            self.positions = {name: i for i, name in enumerate(self.names)}
            self.defaults = {}
        self._name_set = frozenset(self.names)
        # plain positional-or-keyword parameters: bind with a zip instead of inspect (10x cheaper)
        self._simple = self.signature is not None and all(
            p.kind == p.POSITIONAL_OR_KEYWORD for p in self.signature.parameters.values())

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        if self._simple and len(args) <= len(self.names) and self._name_set.issuperset(kwargs):
            arguments = dict(zip(self.names, args))
            arguments.update(kwargs)
            for name, default in self.defaults.items():
                arguments.setdefault(name, default)
            return arguments
        if self.signature is not None:
            try:
                bound = self.signature.bind_partial(*args, **kwargs)
            except TypeError:
                bound = None
            if bound is not None:
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                extra = arguments.pop(next((p.name for p in self.signature.parameters.values()
                                            if p.kind == p.VAR_KEYWORD), "\0"), None)
                if extra:
                    arguments.update(extra)
                return arguments
        arguments = dict(zip(self.names, args))
        arguments.update(kwargs)
        for name in self.names:
            arguments.setdefault(name, self.defaults.get(name))
        return arguments

    def position(self, name: str) -> int:
        return self.positions.get(name, -1)

    def default(self, name: str) -> Any:
        return self.defaults.get(name)


class CallRecord:
    """A guarded call: its contract, bound arguments, result, and where it came from.

    ``view`` is the contract's normalized interpretation (``QuantView``,
    ``GemmView``, ...), built lazily and once.
    """

    __slots__ = ("state", "arguments", "args", "kwargs", "result", "index", "layer",
                 "entry_point", "_view", "_callsite", "scratch")

    def __init__(self, state: "GuardState", args: tuple[Any, ...], kwargs: Mapping[str, Any],
                 layer: str | None = None, entry_point: str | None = None) -> None:
        self.state = state
        self.args = args
        self.kwargs = kwargs
        self.arguments = state.binder.bind(args, kwargs)
        self.result: Any = None
        self.index = 0
        self.layer = layer
        self.entry_point = entry_point
        self._view: Any = None
        self._callsite: str | None = None
        #: Per-call storage shared between a check's phases (snapshots and the like).
        self.scratch: dict[str, Any] = {}

    @property
    def contract(self) -> "Contract":
        return self.state.contract

    @property
    def target(self) -> str:
        return self.state.contract.target

    @property
    def runtime(self) -> Any:
        return self.state.runtime

    @property
    def platform(self) -> Any:
        return self.state.runtime.platform

    @property
    def config(self) -> Any:
        return self.state.runtime.config

    def __getitem__(self, name: str) -> Any:
        return self.arguments[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.arguments.get(name, default)

    @property
    def view(self) -> Any:
        if self._view is None:
            interpret: Callable[[CallRecord], Any] | None = self.state.contract.interpret
            self._view = interpret(self) if interpret is not None else False
        return self._view or None

    def reset_view(self) -> None:
        self._view = None

    @property
    def callsite(self) -> str:
        if self._callsite is None:
            self._callsite = find_callsite(2)
        return self._callsite
