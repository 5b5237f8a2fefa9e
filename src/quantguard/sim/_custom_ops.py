"""The ``torch.ops.aiter.*`` custom ops behind the simulated AITER, kept for the whole process.

Real AITER registers one torch custom op per guarded entry point when its
modules are imported, and a process imports AITER once. The simulator is
installed and removed many times in one process (every test does it), while
torch op registrations cannot be taken back without destroying the whole
library fragment, and a second ``define`` of the same op fails. So the ops
live here, outside the purged ``aiter.*`` modules:

* each op is defined once, with the schema its simulated function had the
  first time it was imported; a later import must infer the same schema
  (:func:`register` raises otherwise, so a changed sim signature fails
  loudly instead of silently running against a stale schema);
* the CPU/CUDA kernel and the fake registered with torch are trampolines
  that look the op up in a table of the *current* install's functions, which
  every import of a simulated module refreshes, and :func:`forget` empties
  on uninstall (a stale op then says the simulator is not installed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["NAMESPACE", "OpEntry", "entry", "forget", "register", "registered_ops"]

#: The namespace AITER's ops live in: ``torch.ops.aiter.<name>``.
NAMESPACE = "aiter"


@dataclass(frozen=True)
class OpEntry:
    """What the current install runs for one op.

    ``function`` is the decorated Python function (its signature is the one
    the opaque public wrapper hides); ``kernel`` and ``fake`` take the op's
    arguments exactly as the dispatcher passes them (dummy tensor included).
    """

    schema: str
    function: Callable[..., Any]
    kernel: Callable[..., Any]
    fake: Callable[..., Any]


_library: torch.library.Library | None = None
_schemas: dict[str, str] = {}
_current: dict[str, OpEntry] = {}


def _lookup(name: str) -> OpEntry:
    try:
        return _current[name]
    except KeyError:
        raise RuntimeError(
            f"torch.ops.{NAMESPACE}.{name} belongs to the AITER simulator, which is not installed "
            "(or has not imported the module that defines it); call quantguard.sim.install() first"
        ) from None


def _kernel_trampoline(name: str) -> Callable[..., Any]:
    def kernel(*args: Any, **kwargs: Any) -> Any:
        return _lookup(name).kernel(*args, **kwargs)

    kernel.__name__ = f"{name}_kernel"
    return kernel


#: op name -> setter of the ``calling_func`` cell its fake closes over.
_fake_cells: dict[str, Callable[[Any], None]] = {}


def _fake_trampoline(name: str) -> Callable[..., Any]:
    # Like AITER's ``abstract_impl``, the registered fake keeps the decorated function in its
    # closure (``calling_func``): tools that read an op's Python implementation find it there.
    calling_func: Callable[..., Any] | None = None

    def fake(*args: Any, **kwargs: Any) -> Any:
        if calling_func is None:
            _lookup(name)  # raises: the simulator is not installed
        return _lookup(name).fake(*args, **kwargs)

    def point_at(function: Callable[..., Any] | None) -> None:
        nonlocal calling_func
        calling_func = function

    fake.__name__ = f"{name}_fake"
    _fake_cells[name] = point_at
    return fake


def register(name: str, schema: str, entry_: OpEntry, tags: tuple = ()) -> None:
    """Make ``torch.ops.aiter.<name>`` run ``entry_`` from now on; define the op the first time.

    Raises ``RuntimeError`` when the op already exists with another schema:
    the simulated function's signature changed, or two simulated functions
    share a name. Both would dispatch calls with the wrong argument layout.
    """
    global _library
    known = _schemas.get(name)
    if known is None:
        if hasattr(getattr(torch.ops, NAMESPACE), name):
            raise RuntimeError(
                f"torch.ops.{NAMESPACE}.{name} already exists and was not defined by the AITER "
                "simulator (a real AITER imported in this process?); refusing to shadow it"
            )
        if _library is None:
            _library = torch.library.Library(NAMESPACE, "FRAGMENT")
        _library.define(f"{name}{schema}", tags=tags)
        for dispatch_key in ("CPU", "CUDA"):
            _library.impl(name, _kernel_trampoline(name), dispatch_key=dispatch_key)
        torch.library.register_fake(f"{NAMESPACE}::{name}", _fake_trampoline(name), lib=_library)
        _schemas[name] = schema
    elif known != schema:
        raise RuntimeError(
            f"the simulated {NAMESPACE}.{name} now infers the schema {schema}, but "
            f"torch.ops.{NAMESPACE}.{name} was defined in this process as {known}; torch ops "
            "cannot be redefined, so keep the simulated signature stable (or restart the process)"
        )
    _current[name] = entry_
    _fake_cells[name](entry_.function)


def entry(name: str) -> OpEntry:
    """The current install's functions behind ``torch.ops.aiter.<name>``."""
    return _lookup(name)


def registered_ops() -> dict[str, str]:
    """Every op the simulator defined in this process -> its schema."""
    return dict(_schemas)


def forget() -> None:
    """Drop the current install's functions (on uninstall); the op definitions stay."""
    _current.clear()
    for point_at in _fake_cells.values():
        point_at(None)
