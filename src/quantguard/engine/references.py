"""Originals captured before ``enable()``: find them, rebind what can be rebound, report the rest.

ATOM builds each linear layer with ``self.quant_func = get_hip_quant(qtype)``;
``get_hip_quant`` is ``lru_cache``d and returns ``functools.partial(
per_group_quant_hip, group_size=128)`` for per_1x128.  Anything captured
before ``enable()`` holds the original function, so without this module a
late enable guards only AITER's inner module-global calls.

At ``enable()`` (and ``quantguard.attach(model)``) the garbage collector's
referrer graph of every wrapped original is walked once:

* a ``functools.partial`` of an original is replaced, where it is held, by a
  new partial around the guard (same args and keywords);
* a ``torch.nn.Module`` instance attribute holding an original (or such a
  partial) is rebound on the instance;
* the caches of AITER's quant factories (``get_hip_quant``,
  ``get_triton_quant``, ``get_torch_quant``) are cleared, so later lookups build
  their tables from the (patched) module globals;
* anything else — a closure cell, a tuple, a list, an object that is not an
  nn.Module — cannot be rebound safely and is reported once as
  ``quantguard.stale_reference`` with where it was found.

Every rebinding is a :class:`~quantguard.engine.aliases.Binding`, restored
exactly on ``disable()`` (and the factory caches are cleared again).
"""

from __future__ import annotations

import functools
import gc
import sys
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from quantguard import events
from quantguard.contracts import kernel_factories  # the library functions that hand out kernels
from quantguard.engine.aliases import Binding

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.runtime import Applied, Runtime

__all__ = ["StaleReferences"]


def _is_module_instance(obj: Any) -> bool:
    nn = sys.modules.get("torch.nn")
    return nn is not None and isinstance(obj, nn.Module)


_OURS = object()


def _owner_of_dict(namespace: dict) -> Any:
    """The object whose ``__dict__`` is ``namespace`` (instances only), ``_OURS`` for quantguard's, or None."""
    for referrer in gc.get_referrers(namespace):
        if getattr(referrer, "__dict__", None) is namespace and not isinstance(referrer, (type, types.ModuleType)):
            if type(referrer).__module__.startswith("quantguard.") and not type(referrer).__module__.startswith(
                "quantguard.sim"
            ):
                return _OURS
            return referrer
    return None


def _describe(owner: Any, name: str, layers: dict[int, str]) -> str:
    label = layers.get(id(owner))
    return f"{label}.{name}" if label else f"{type(owner).__name__}@{id(owner):#x}.{name}"


class StaleReferences:
    """Runtime extension: rebinds captured originals at enable/attach, restores them at disable."""

    def __init__(self) -> None:
        self.bindings: list[Binding] = []
        self._reported: set[str] = set()
        self._layers: dict[int, str] = {}
        self._cleared: list[Any] = []
        self._own_cells: set[int] = set()

    # -- runtime hooks --------------------------------------------------------------------------
    def on_applied(self, runtime: Runtime, applied: list[Applied], initial: bool) -> None:
        if applied and initial:  # a module imported after enable() cannot have been captured before it
            self._rebind(runtime)

    def on_attach(self, runtime: Runtime, model: Any, prefix: str) -> None:
        for name, module in model.named_modules():
            self._layers[id(module)] = ".".join(part for part in (prefix, name) if part) or type(module).__name__
        self._rebind(runtime)

    def on_unapplied(self, runtime: Runtime) -> None:
        for binding in reversed(self.bindings):
            try:
                binding.restore()
            except Exception as exc:
                runtime.reporter.internal_error("stale_reference", "restore", exc)
        self.bindings.clear()
        self._clear_factory_caches()
        self._cleared.clear()

    # -- the walk -------------------------------------------------------------------------------
    def _guards(self, runtime: Runtime) -> dict[int, Any]:
        from quantguard.engine.guard import Guard

        # dispatch guards see every call of their op, whatever reference led there: nothing is stale
        return {
            id(a.guard.__wrapped__): a.guard
            for a in runtime.applied.values()
            if isinstance(a.guard, Guard) and a.bindings
        }

    def _rebind(self, runtime: Runtime) -> None:
        try:
            guards = self._guards(runtime)
            if not guards:
                return
            self._clear_factory_caches()
            originals = [guard.__wrapped__ for guard in guards.values()]
            partials = []
            for referrer in gc.get_referrers(*originals):
                if isinstance(referrer, functools.partial) and id(referrer.func) in guards:
                    partials.append(referrer)
            self._own_cells = {
                id(cell) for guard in guards.values() for cell in (type(guard).__call__.__closure__ or ())
            }
            self._rebind_holders(runtime, originals, guards, lambda held: guards.get(id(held)))
            if partials:
                replacements = {id(p): functools.partial(guards[id(p.func)], *p.args, **p.keywords) for p in partials}
                self._rebind_holders(runtime, partials, guards, lambda held: replacements.get(id(held)))
        except Exception as exc:  # never break enable()
            runtime.reporter.internal_error("stale_reference", "scan", exc)

    def _rebind_holders(
        self, runtime: Runtime, held_objects: Iterable[Any], guards: dict[int, Any], replacement_for: Any
    ) -> None:
        held_ids = {id(obj) for obj in held_objects}
        ignore = {id(self.bindings), id(held_objects)}
        for referrer in gc.get_referrers(*held_objects):
            if id(referrer) in ignore or isinstance(referrer, (types.FrameType, Binding)):
                continue
            if isinstance(referrer, dict):
                self._from_dict(runtime, referrer, held_ids, replacement_for)
            elif isinstance(referrer, (functools.partial, types.FunctionType)):
                continue  # partials are handled as held objects; functions reference originals via globals
            elif isinstance(referrer, types.CellType):
                if id(referrer) not in self._own_cells:  # the guards' own closures hold the originals
                    self._stale(runtime, "closure cell", "closure", replacement_for, referrer.cell_contents)
            elif isinstance(referrer, (list, tuple, set)):
                for item in referrer:
                    if id(item) in held_ids:
                        self._stale(
                            runtime,
                            f"a {type(referrer).__name__} of {len(referrer)} items",
                            type(referrer).__name__,
                            replacement_for,
                            item,
                        )

    def _from_dict(self, runtime: Runtime, namespace: dict, held_ids: set[int], replacement_for: Any) -> None:
        if namespace.get("__name__") in sys.modules and sys.modules[namespace["__name__"]].__dict__ is namespace:
            if not any(isinstance(v, functools.partial) and id(v) in held_ids for v in namespace.values()):
                return  # module globals holding the original itself are the alias scan's job
            owner: Any = sys.modules[namespace["__name__"]]
        else:
            owner = _owner_of_dict(namespace)
            if owner is _OURS:
                return
        for name, value in list(namespace.items()):
            if id(value) not in held_ids:
                continue
            replacement = replacement_for(value)
            if owner is None:
                self._stale(runtime, "a dict (e.g. a factory's cache or a registry)", "dict", replacement_for, value)
                continue
            if isinstance(owner, types.ModuleType) or _is_module_instance(owner):
                try:
                    setattr(owner, name, replacement)
                except (AttributeError, TypeError):
                    self._stale(
                        runtime, _describe(owner, name, self._layers), "read-only attribute", replacement_for, value
                    )
                    continue
                binding = Binding(owner, name, value, replacement)
                self.bindings.append(binding)
                runtime.reporter.stats.stale_references += 1
                where = (
                    f"{owner.__name__}.{name}"
                    if isinstance(owner, types.ModuleType)
                    else _describe(owner, name, self._layers)
                )
                kind = "partial" if isinstance(value, functools.partial) else "instance_attribute"
                self._emit(where, kind, True, "rebound to the guard", value)
            else:
                self._stale(runtime, _describe(owner, name, self._layers), "object attribute", replacement_for, value)

    def _stale(self, runtime: Runtime, where: str, kind: str, replacement_for: Any, value: Any) -> None:
        runtime.reporter.stats.stale_references += 1
        self._emit(where, kind, False, "cannot be rebound safely: calls through it are not guarded", value)

    def _emit(self, where: str, kind: str, rebound: bool, reason: str, value: Any) -> None:
        function = value.func if isinstance(value, functools.partial) else value
        target = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"
        key = f"{target}@{where}"
        if key in self._reported:
            return
        self._reported.add(key)
        events.emit(
            events.STALE_REFERENCE,
            "info" if rebound else "warning",
            target=target,
            where=where,
            kind=kind,
            rebound=rebound,
            reason=reason,
        )

    def _clear_factory_caches(self) -> None:
        for path in kernel_factories():
            module_name, _, name = path.rpartition(".")
            factory = getattr(sys.modules.get(module_name), name, None)
            clear = getattr(getattr(factory, "__wrapped__", factory), "cache_clear", None) or getattr(
                factory, "cache_clear", None
            )
            if clear is not None:
                clear()
