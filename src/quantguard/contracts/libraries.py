"""Facts about the guarded libraries that generic code needs, declared beside each library's contracts.

Checks and the engine know no library by name (the import-linter contract in
``pyproject.toml`` and ``tests/test_architecture.py`` hold them to it).  What
they must still know — which kernels are ASM or CK, which factories hand out
kernels, which imports change the platform facts, whose frames are never the
user's call site, and how a calling library selects its GEMM backend — each
library declares once, as a :class:`Library` named ``LIBRARY`` in one of its
contract modules, and generic code reads it through the functions below
(re-exported by :mod:`quantguard.contracts`).
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BackendSelection",
    "InstanceChoice",
    "Library",
    "asm_functions_loaded",
    "backend_selections",
    "internal_packages",
    "custom_op_conventions",
    "is_asm",
    "kernel_factories",
    "libraries",
    "library_of",
    "resets_platform",
    "runs_ck",
]

#: The contract modules that declare a ``LIBRARY``, imported on first use (none imports torch).
_LIBRARY_MODULES = ("quantguard.contracts.aiter.names", "quantguard.contracts.atom_selection")


@dataclass(frozen=True)
class InstanceChoice:
    """One object's own backend choice (an MoE quant method's), as the ``backend_selection`` checks report it.

    Args:
        layer: the layer that holds the object, by name.
        selector: what was read, for messages and details (``"Mxfp4MoEMethod.use_triton"``).
        path: where an audit reports it (the selector's fully qualified path).
        chosen: True when Triton was chosen.
        kernels: what runs when it was not (``"AITER's CK/ASM MoE kernels"``).
        hint: how to make the library choose Triton.
    """

    layer: str
    selector: str
    path: str
    chosen: bool
    kernels: str
    hint: str


@dataclass(frozen=True)
class BackendSelection:
    """How a calling library picks between CK and Triton: what the ``backend_selection`` checks read.

    Args:
        modules: module prefixes whose import means there is a selection to audit.
        selectors: the library's zero-argument selector functions now loaded, as ``(path, function)``.
        instance_choices: the per-object choices of a model's layers (and of those the library
            registered itself); the model may be None.
        instance_choice: ``(object, layer, layer name known to the caller)`` → the object's choice,
            or None when it has none.
        ck_hint: how a CK path is avoided, named in the message when a CK kernel runs in a CK-free build.
    """

    modules: tuple[str, ...]
    selectors: Callable[[], list[tuple[str, Callable[[], Any]]]]
    instance_choices: Callable[[Any], list[InstanceChoice]]
    instance_choice: Callable[[Any, Any, str], InstanceChoice | None]
    ck_hint: str

    def loaded(self) -> bool:
        return any(name.startswith(self.modules) for name in list(sys.modules))


@dataclass(frozen=True)
class Library:
    """What generic code needs to know about one library.

    Args:
        name: the library's name in events (lower case, like its package).
        packages: its top-level import packages.
        asm_name: its naming rule for ASM kernels (a dotted path in, True for ASM), if it has ASM kernels.
        ck_kernels: entry points that run CK code whatever their contract's ``backend`` says.
        factories: functions whose (cached) results hand out kernels, for the stale-reference scan.
        platform_modules: module prefixes whose import can change the detected platform.
        frames_internal: its frames are plumbing, never the user's call site (a library that is
            called; not one, like ATOM, that calls on the user's behalf).
        selection: how it selects a GEMM backend, if it is a caller that does.
        op_namespaces: the ``torch.ops`` namespaces its custom ops register in.
        op_name_cell: the closure variable its opaque op wrappers keep the op name in.
    """

    name: str
    packages: tuple[str, ...]
    asm_name: Callable[[str], bool] | None = None
    ck_kernels: tuple[str, ...] = ()
    factories: tuple[str, ...] = ()
    platform_modules: tuple[str, ...] = ()
    frames_internal: bool = False
    selection: BackendSelection | None = None
    op_namespaces: tuple[str, ...] = ()
    op_name_cell: str | None = None


@functools.cache
def libraries() -> tuple[Library, ...]:
    """Every library quantguard ships facts for (imported once, on first use)."""
    return tuple(importlib.import_module(name).LIBRARY for name in _LIBRARY_MODULES)


def is_asm(contract: Any) -> bool:
    """An ASM kernel: its contract says so, or a library's naming rule calls its target ASM."""
    if getattr(contract, "asm", False):
        return True
    target = getattr(contract, "target", "")
    return any(library.asm_name(target) for library in libraries() if library.asm_name is not None)


def runs_ck(contract: Any) -> bool:
    """Runs CK (JIT-built) code: a ``ck`` contract, or a target a library lists as CK."""
    return contract.backend == "ck" or any(contract.target in library.ck_kernels for library in libraries())


def kernel_factories() -> tuple[str, ...]:
    """Paths of the functions whose (cached) results hand out kernels."""
    return tuple(path for library in libraries() for path in library.factories)


@functools.cache
def _platform_prefixes() -> tuple[str, ...]:
    return tuple(prefix for library in libraries() for prefix in library.platform_modules)


def resets_platform(module_name: str) -> bool:
    """Importing this module can change the detected platform (arch, CK-free build, fp8 format)."""
    return module_name.startswith(_platform_prefixes())


@functools.cache
def internal_packages() -> tuple[str, ...]:
    """Packages whose frames are never the user's call site."""
    return tuple(package for library in libraries() if library.frames_internal for package in library.packages)


@functools.cache
def custom_op_conventions() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(``torch.ops`` namespaces, op-name closure variables) of every library with custom ops."""
    namespaces = tuple(ns for library in libraries() for ns in library.op_namespaces)
    cells = tuple(library.op_name_cell for library in libraries() if library.op_name_cell)
    return namespaces, cells


def library_of(path: str) -> Library | None:
    """The library a dotted path (``"pkg.module.name"`` or ``"pkg.module:obj.attr"``) belongs to."""
    package = path.partition(":")[0].partition(".")[0]
    return next((library for library in libraries() if package in library.packages), None)


def backend_selections() -> list[BackendSelection]:
    """How each calling library selects its backend (loaded or not: each says with ``loaded()``)."""
    return [library.selection for library in libraries() if library.selection is not None]


def asm_functions_loaded() -> list[tuple[str, str, str, Any]]:
    """``(path, module, attribute, value)`` of every callable (not a class) in a loaded library module
    whose path the library's naming rule calls ASM.  Whether each is defined there, or only
    re-exported, is the caller's to decide."""
    found = []
    for library in libraries():
        if library.asm_name is None:
            continue
        submodule = tuple(package + "." for package in library.packages)
        for module_name, module in list(sys.modules.items()):
            if module is None or not (module_name in library.packages or module_name.startswith(submodule)):
                continue
            for name, value in list(vars(module).items()):
                path = f"{module_name}.{name}"
                if callable(value) and not isinstance(value, type) and library.asm_name(path):
                    found.append((path, module_name, name, value))
    return found
