"""One guarded call, bound to parameter names, as checks see it."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from quantguard.engine.callsite import find_callsite

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.contracts.base import Contract
    from quantguard.engine.guard import GuardState

__all__ = ["Binder", "CallRecord", "decorated_function", "scalar_type", "tensor_meta"]

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

    Built once per guarded function.  Where the parameter names come from is
    kept in ``source``: the function's own signature (``inspect`` follows
    ``__wrapped__``); for an opaque ``(*args, **kwargs)`` wrapper, the torch op
    schema it dispatches to (``op``, positions counting AITER's leading dummy
    tensor), else the decorated function found in its closure, else the
    contract's declared ``params``.
    """

    __slots__ = ("signature", "names", "positions", "defaults", "source", "dtype_params", "_simple", "_name_set")

    def __init__(
        self,
        function: Any,
        fallback_params: tuple[str, ...] | None = None,
        signature_of: Any = None,
        op_parameters: Any = None,
    ) -> None:
        self.signature: inspect.Signature | None = None
        self.source = "contract params"
        self.dtype_params: frozenset[str] = frozenset()
        if op_parameters is not None:
            self.dtype_params = op_parameters.dtype_params
            self.names = op_parameters.names
            self.positions = dict(op_parameters.positions)
            self.defaults = dict(op_parameters.defaults)
            self.source = "op schema"
            self._finish(simple=False)
            return
        candidates = (
            ("signature", function),
            ("signature", signature_of),
            ("decorated function", decorated_function(function)),
        )
        for source, candidate in candidates:
            if candidate is None:
                continue
            try:
                signature = inspect.signature(candidate)
            except (TypeError, ValueError):
                continue
            if not _opaque(signature):
                self.signature, self.source = signature, source
                break
        if self.signature is not None:
            params = [p for p in self.signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            self.names = tuple(p.name for p in params)
            self.positions = {
                p.name: i for i, p in enumerate(params) if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            }
            self.defaults = {p.name: p.default for p in params if p.default is not p.empty}
        else:
            self.names = tuple(fallback_params or ())
            self.positions = {name: i for i, name in enumerate(self.names)}
            self.defaults = {}
        # plain positional-or-keyword parameters: bind with a zip instead of inspect (10x cheaper)
        self._finish(
            simple=self.signature is not None
            and all(p.kind == p.POSITIONAL_OR_KEYWORD for p in self.signature.parameters.values())
        )

    def _finish(self, simple: bool) -> None:
        self._name_set = frozenset(self.names)
        self._simple = simple

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
                extra = arguments.pop(
                    next((p.name for p in self.signature.parameters.values() if p.kind == p.VAR_KEYWORD), "\0"), None
                )
                if extra:
                    arguments.update(extra)
                return arguments
        arguments = {}
        for name, position in self.positions.items():
            if position < len(args):
                arguments[name] = args[position]
        arguments.update(kwargs)
        for name in self.names:
            if name not in arguments:
                arguments[name] = self.defaults.get(name)
        if self.dtype_params:
            for name in self.dtype_params:
                arguments[name] = scalar_type(arguments.get(name))
        return arguments

    def position(self, name: str) -> int:
        return self.positions.get(name, -1)

    def as_signature(self) -> inspect.Signature:
        """The bound parameters as a signature (for drift comparison), whatever their source."""
        if self.signature is not None:
            return self.signature
        parameters = [
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD if name in self.positions else inspect.Parameter.KEYWORD_ONLY,
                default=self.defaults.get(name, inspect.Parameter.empty),
            )
            for name in self.names
        ]
        try:
            return inspect.Signature(parameters)
        except ValueError:  # a default before a required parameter: keep names, drop defaults' order rule
            return inspect.Signature([p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in parameters])

    def default(self, name: str) -> Any:
        return self.defaults.get(name)


def _opaque(signature: inspect.Signature) -> bool:
    """``(*args, **kwargs)``: a signature that names no parameter (AITER's ``wrapper_custom``)."""
    parameters = signature.parameters.values()
    return bool(parameters) and all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters)


def decorated_function(function: Any, depth: int = 4, names: tuple[str, ...] = ()) -> Any:
    """The function an opaque ``(*args, **kwargs)`` wrapper decorates, found through its closure.

    AITER's ``compile_ops`` keeps the declared stub (``functools.wraps``) a few
    closures deep; the first closure function with a readable signature whose
    name matches the wrapper's op name (``loadName``) or its own name is it.
    """
    code = getattr(function, "__code__", None)
    if code is None or not function.__closure__:
        return None
    wanted = {getattr(function, "__name__", None), *names}
    seen: set[int] = set()
    frontier = [function]
    for _ in range(depth):
        following = []
        for current in frontier:
            for cell in getattr(current, "__closure__", None) or ():
                try:
                    value = cell.cell_contents
                except ValueError:
                    continue
                if isinstance(value, str) and current is function:
                    wanted.add(value)
                if not callable(value) or id(value) in seen or not hasattr(value, "__code__"):
                    continue
                seen.add(id(value))
                following.append(value)
        for candidate in following:
            if getattr(candidate, "__name__", None) in wanted:
                try:
                    if not _opaque(inspect.signature(candidate)):
                        return candidate
                except (TypeError, ValueError):
                    continue
        frontier = following
    return None


class CallRecord:
    """A guarded call: its contract, bound arguments, result, and where it came from.

    ``view`` is the contract's normalized interpretation (``QuantView``,
    ``GemmView``, ...), built lazily and once.
    """

    __slots__ = (
        "state",
        "arguments",
        "args",
        "kwargs",
        "result",
        "index",
        "layer",
        "entry_point",
        "_view",
        "_callsite",
        "scratch",
    )

    def __init__(
        self,
        state: GuardState,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        layer: str | None = None,
        entry_point: str | None = None,
    ) -> None:
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
    def contract(self) -> Contract:
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


_SCALAR_TYPES: dict[int, Any] = {}
_SCALAR_LOCK = threading.Lock()


def scalar_type(code: Any) -> Any:
    """The torch dtype behind a ``ScalarType`` integer (schemas store dtypes as ints); anything else as is."""
    if not isinstance(code, int) or isinstance(code, bool):
        return code
    with _SCALAR_LOCK:
        if not _SCALAR_TYPES:
            _SCALAR_TYPES.update(_probe_scalar_types())
    return _SCALAR_TYPES.get(code, code)


def _probe_scalar_types() -> dict[int, Any]:
    """Ask torch's schema parser which integer each dtype is (no hand-kept enum table)."""
    import torch

    found: dict[int, Any] = {}
    for name in dir(torch):
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype) or dtype in found.values():
            continue
        try:
            schema = torch._C.parse_schema(f"probe(ScalarType d={str(dtype).replace('torch.', '')}) -> ()")
            code = schema.arguments[0].default_value
        except Exception:
            continue
        if isinstance(code, int):
            found[code] = dtype
    return found
