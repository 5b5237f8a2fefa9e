"""Entry points that are torch custom ops: find the op, read its parameters, hook its dispatch.

AITER's ``torch_compile_guard`` and ``compile_ops`` register each entry point as
``torch.ops.aiter.<name>`` and hand back ``wrapper_custom(*args, **kwargs)``: a
Python signature that names no parameter, and a function that compiled code
never calls (``torch.compile`` emits ``torch.ops.aiter.<name>`` itself, and a
stored ``functools.partial`` keeps the wrapper it was built from).  Every path
does go through the op, so that is where such an entry point is guarded: a
kernel registered for the op at the ``BackendSelect`` dispatch key sees every
call — eager, through any alias, from compiled code — once, with real tensors
(fake-tensor tracing is dispatched above it), and redispatches to the op's own
kernel.  Removing it (``Library._destroy``) restores the dispatch table exactly.

The op's schema keeps the parameter names and defaults the wrapper hides; a
leading ``Tensor dummy`` (added by AITER when the first parameter is not a
tensor) is positional plumbing, not a parameter of the function.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from quantguard.contracts import custom_op_conventions
from quantguard.engine.calls import decorated_function, scalar_type

__all__ = [
    "DUMMY",
    "DispatchHook",
    "OpBinding",
    "OpParameters",
    "after_backend_select",
    "find_custom_op",
    "op_implementation",
    "op_parameters",
    "scalar_type",
]

#: Name AITER gives the placeholder tensor it prepends when the first parameter is not a tensor.
DUMMY = "dummy"


def _torch() -> Any:
    import torch

    return torch


def _op_by_name(qualified: str) -> Any:
    """``"ns::name"`` (or ``"ns::name.overload"``) → the OpOverload, or None."""
    namespace, _, name = qualified.partition("::")
    name, _, overload = name.partition(".")
    try:
        packet = getattr(getattr(_torch().ops, namespace), name)
        return getattr(packet, overload or "default")
    except (AttributeError, RuntimeError):
        return None


def _closure_value(function: Any, name: str) -> Any:
    code = getattr(function, "__code__", None)
    closure = getattr(function, "__closure__", None)
    if code is None or not closure or name not in code.co_freevars:
        return None
    try:
        return closure[code.co_freevars.index(name)].cell_contents
    except ValueError:  # an empty cell
        return None


def find_custom_op(
    function: Any,
    declared: str | None = None,
    namespaces: tuple[str, ...] | None = None,
    public_name: str | None = None,
) -> Any:
    """The OpOverload an entry point dispatches to, or None for a plain Python function.

    ``declared`` (a contract's ``op``, ``"namespace::name"``) wins.  Otherwise an
    opaque ``(*args, **kwargs)`` wrapper is matched to an op of ``namespaces`` (default:
    the libraries' op namespaces, ``quantguard.contracts.custom_op_conventions``)
    by the op name its closure holds (AITER's ``loadName``, or any string cell
    naming an existing op) or, failing that, by its public name (AITER
    registers ``torch.ops.aiter.<name>`` under the decorated function's name),
    in ``namespaces`` or a namespace the wrapper's code names.
    """
    if "torch" not in sys.modules:
        return None
    if declared:
        return _op_by_name(declared)
    code = getattr(function, "__code__", None)
    if code is None or not _is_opaque(function):
        return None
    default_namespaces, name_cells = custom_op_conventions()
    namespaces = default_namespaces if namespaces is None else namespaces
    names = [_closure_value(function, cell) for cell in name_cells]
    names += [_closure_value(function, free) for free in code.co_freevars if free not in name_cells]
    names.append(public_name)
    # the namespace: AITER's, or one the wrapper's code names (``torch.ops.<namespace>.<name>``)
    candidates = (*namespaces, *(n for n in code.co_names if n not in namespaces and n.isidentifier()))
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            continue
        for namespace in candidates:
            if namespace in code.co_names or (name is public_name and namespace in namespaces):
                op = _op_by_name(f"{namespace}::{name}")
                if op is not None:
                    return op
    return None


def _is_opaque(function: Any) -> bool:
    """Takes only ``*args``/``**kwargs`` (what a custom-op wrapper looks like)."""
    code = function.__code__
    return code.co_argcount == 0 and code.co_kwonlyargcount == 0 and bool(code.co_flags & 0x04)


class OpParameters:
    """Parameter names, positions and defaults of an op as its Python entry point sees them.

    ``positions`` index the arguments the dispatcher passes to a kernel, which
    include the leading dummy tensor when there is one; ``names`` exclude it.
    """

    __slots__ = ("names", "positions", "defaults", "kwarg_only", "leading_dummy", "schema", "dtype_params")

    def __init__(
        self,
        names: tuple[str, ...],
        positions: dict[str, int],
        defaults: dict[str, Any],
        kwarg_only: frozenset[str],
        leading_dummy: bool,
        schema: str,
        dtype_params: frozenset[str] = frozenset(),
    ) -> None:
        #: ``ScalarType`` parameters: the dispatcher may hand them to a kernel as integers.
        self.dtype_params = dtype_params
        self.names = names
        self.positions = positions
        self.defaults = defaults
        self.kwarg_only = kwarg_only
        self.leading_dummy = leading_dummy
        self.schema = schema


def op_parameters(op: Any, expected: tuple[str, ...] | None = None) -> OpParameters:
    """Read an op's schema; a leading ``dummy`` tensor is dropped unless the contract expects it."""
    arguments = list(op._schema.arguments)
    names = [argument.name for argument in arguments]
    # AITER prepends a placeholder tensor when the function's first parameter is not a tensor: named
    # ``dummy`` by AITER; recognised by the names either way when the contract lists the parameters
    leading_dummy = (
        bool(arguments)
        and not (expected and expected[0] == names[0])
        and (
            names[0] == DUMMY
            or (
                expected is not None
                and names[1 : len(expected) + 1] == list(expected)
                and str(arguments[0].type) == "Tensor"
            )
        )
    )
    names: list[str] = []
    positions: dict[str, int] = {}
    defaults: dict[str, Any] = {}
    kwarg_only: set[str] = set()
    # the schema's argument objects report a ScalarType as "int"; its text keeps the type
    dtype_params = set(re.findall(r"ScalarType\??\s+(\w+)", str(op._schema)))
    for index, argument in enumerate(arguments):
        if index == 0 and leading_dummy:
            continue
        names.append(argument.name)
        if argument.kwarg_only:
            kwarg_only.add(argument.name)
        else:
            positions[argument.name] = index
        if argument.has_default_value():
            value = argument.default_value
            defaults[argument.name] = scalar_type(value) if argument.name in dtype_params else value
    return OpParameters(
        tuple(names),
        positions,
        defaults,
        frozenset(kwarg_only),
        leading_dummy,
        str(op._schema),
        frozenset(dtype_params),
    )


class DispatchHook:
    """One kernel of ours at an op's ``BackendSelect`` key, until :meth:`remove`.

    ``kernel(keyset, *args, **kwargs)`` receives the call as the dispatcher
    passes it (trailing defaults omitted) and must redispatch below
    ``BackendSelect`` to reach the op's own kernel.
    """

    __slots__ = ("op", "library", "where")

    def __init__(self, op: Any, kernel: Any) -> None:
        torch = _torch()
        self.op = op
        namespace, _, name = op._schema.name.partition("::")
        self.where = f"torch.ops.{namespace}.{name} (BackendSelect)"
        self.library = torch.library.Library(namespace, "IMPL")
        overload = op._overloadname
        self.library.impl(
            name if overload == "default" else f"{name}.{overload}", kernel, "BackendSelect", with_keyset=True
        )

    def remove(self) -> bool:
        library, self.library = self.library, None
        if library is None:
            return False
        library._destroy()
        return True


def op_implementation(op: Any) -> Any:
    """The Python function an op was made from (``torch_compile_guard``'s decorated function), or None.

    Kept only in the closures of the op's registered fake (AITER's ``abstract_impl``
    holds ``calling_func``); used for static scans, never to call.  None for ops
    whose kernel is compiled code (``compile_ops`` stubs have no body to read).
    """

    try:
        from torch._library import simple_registry

        entry = simple_registry.singleton.find(op._schema.name)
        kernel = getattr(getattr(entry, "fake_impl", None), "kernel", None)
        kernel = getattr(kernel, "func", kernel)  # torch._library.utils.Kernel wraps the registered callable
    except Exception:
        return None
    name = op._schema.name.partition("::")[2]
    found = decorated_function(kernel, names=(name,), depth=5) if kernel is not None else None
    if found is None or getattr(found, "__name__", "") != name:
        return None
    from quantguard.checks.ignored_parameters import is_stub

    code = getattr(found, "__code__", None)
    return None if code is None or is_stub(found) else found


class OpBinding:
    """The runtime's record of a dispatch guard (the counterpart of an alias ``Binding``)."""

    __slots__ = ("owner", "guard")

    def __init__(self, owner: Any, guard: Any) -> None:
        self.owner = owner  # the module whose contract led to the op
        self.guard = guard

    @property
    def where(self) -> str:
        return self.guard.hook.where

    def restore(self) -> bool:
        return self.guard.hook.remove()


def after_backend_select() -> Any:
    """The keyset mask that sends a redispatch to the kernels below ``BackendSelect``."""
    torch = _torch()
    return torch._C._dispatch_keyset_full_after(torch._C.DispatchKey.BackendSelect)


def implementation_behind(callee: Any) -> Any:
    """For an entry point that wraps a torch custom op, the Python function the op was made from (or None)."""
    op = find_custom_op(callee)
    return None if op is None else op_implementation(op)


def install_static_scan_lookup() -> None:
    """Give the (generic) static scan the engine's way of seeing through custom-op wrappers.

    Called when guards are made (the checks, and torch, are imported by then;
    importing this module must not import them: ``QUANTGUARD_ENABLED=1`` stays cheap).
    """
    from quantguard.checks import ignored_parameters

    ignored_parameters.CUSTOM_OP_IMPLEMENTATION = implementation_behind
