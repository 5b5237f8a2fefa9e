"""Find and rebind every place that holds a function we wrapped.

ATOM imports AITER functions by name at module level
(``from aiter import gemm_a8w8_blockscale``) and ``aiter/__init__.py``
re-exports submodule functions, so replacing one module attribute leaves the
other names pointing at the original.  After patching, every module global and
class attribute in ``sys.modules`` that *is* the original is pointed at the
wrapper; each such place is recorded as a :class:`Binding` so ``disable()``
restores exactly those, and only where the wrapper is still in place.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["Binding", "find_aliases", "rebind"]


@dataclass
class Binding:
    """``owner.<name>`` held ``original`` and now holds ``replacement``.

    ``own`` says whether ``name`` was in the owner's own namespace; when it was
    not (a bound method reached through an instance's class), restoring deletes
    the instance attribute instead of pinning the bound method on it.
    """

    owner: Any
    name: str
    original: Any
    replacement: Any
    own: bool = True

    @property
    def where(self) -> str:
        owner = self.owner
        label = getattr(owner, "__qualname__", None) if isinstance(owner, type) else None
        if isinstance(owner, type):
            return f"{owner.__module__}.{label}.{self.name}"
        if isinstance(owner, ModuleType):
            return f"{owner.__name__}.{self.name}"
        return f"{type(owner).__name__}@{id(owner):#x}.{self.name}"

    def apply(self) -> None:
        setattr(self.owner, self.name, self.replacement)

    def restore(self) -> bool:
        """Put the original back if our replacement is still there; return whether it was."""
        current = _raw_attribute(self.owner, self.name)
        if current is self.replacement:
            if self.own:
                setattr(self.owner, self.name, self.original)
            else:
                delattr(self.owner, self.name)
            return True
        return False


def _raw_attribute(owner: Any, name: str) -> Any:
    if isinstance(owner, type):
        return vars(owner).get(name)
    try:
        return vars(owner).get(name)
    except TypeError:
        return getattr(owner, name, None)


def _snapshot(namespace: dict[str, Any]) -> list[tuple[str, Any]]:
    """Items of a namespace another thread may be mutating (imports in flight)."""
    for _ in range(5):
        try:
            return list(namespace.items())
        except RuntimeError:
            continue
    return []


def find_aliases(originals: dict[int, Any], skip_modules: Iterable[str] = ()) -> list[tuple[Any, str, Any]]:
    """Every ``(owner, name, original)`` in loaded modules and their classes holding an original.

    ``originals`` maps ``id(function)`` to the function; one pass over
    ``sys.modules`` serves all of them.  ``staticmethod``/``classmethod``
    objects wrapping an original count too (the caller rewraps them).
    """
    skip = tuple(skip_modules)
    found: list[tuple[Any, str, Any]] = []
    seen_classes: set[int] = set()
    seen_modules: set[int] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # touching deprecated module attributes may warn
        for module_name, module in list(sys.modules.items()):
            if (
                module is None
                or not isinstance(module, ModuleType)
                or module_name.startswith(skip)
                or id(module) in seen_modules
            ):
                continue
            seen_modules.add(id(module))
            _scan_module(module, module_name, originals, found, seen_classes)
    return found


def _scan_module(
    module: ModuleType,
    module_name: str,
    originals: dict[int, Any],
    found: list[tuple[Any, str, Any]],
    seen_classes: set[int],
) -> None:
    try:
        namespace = vars(module)
    except TypeError:
        return
    for name, value in _snapshot(namespace):
        if id(value) in originals and value is originals[id(value)]:
            found.append((module, name, value))
        elif (
            isinstance(value, type)
            and id(value) not in seen_classes
            and getattr(value, "__module__", None) == module_name
        ):
            seen_classes.add(id(value))
            _scan_class(value, originals, found)


def _scan_class(cls: type, originals: dict[int, Any], found: list[tuple[Any, str, Any]]) -> None:
    for name, value in _snapshot(dict(vars(cls))):
        inner = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        if id(inner) in originals and inner is originals[id(inner)]:
            found.append((cls, name, value))


def rebind(owner: Any, name: str, held: Any, wrapper: Any) -> Binding | None:
    """Point ``owner.name`` (currently ``held``) at ``wrapper``; keep descriptors' kind."""
    if isinstance(held, staticmethod):
        replacement: Any = staticmethod(wrapper)
    elif isinstance(held, classmethod):
        return None  # a classmethod binds its class first: not the same callable
    else:
        replacement = wrapper
    try:
        own = name in vars(owner)
    except TypeError:
        own = True
    binding = Binding(owner, name, held, replacement, own)
    try:
        binding.apply()
    except (AttributeError, TypeError):
        return None
    return binding
