"""Whole-process audits run when contracts are applied (not per call).

* Backend selection: in CK-free mode every backend selector of a calling
  library (ATOM's on the linear, attention_mla and moe paths) must choose Triton.
* Weight pairs: ``attach(model)`` registers the model's weight/scale pairs at once.
* ASM coverage: ASM-looking functions (by their library's naming rule, e.g.
  AITER's ``*_ASM``/``*_asm``) in loaded library modules that no contract names
  are reported (``quantguard.uncovered_kernels``); when the CK-free ASM policy
  is active they are guarded by it too, so an ASM kernel is blocked however it
  is reached.
Each finding is reported once per runtime.  Which libraries, selectors and
naming rules exist is the contracts' knowledge (``quantguard.contracts``).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from quantguard import events
from quantguard.contracts import asm_functions_loaded, backend_selections, library_of

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.runtime import Applied, Runtime

__all__ = ["Audits"]


def _defined_here(value: Any, module_name: str, name: str) -> bool:
    """Defined in this module (not a re-export): its ``__module__``, or, for a custom-op wrapper whose
    ``__module__`` is AITER's ``torch_guard``, the op it dispatches to carrying this attribute's name."""
    if not isinstance(value, types.FunctionType):
        return False  # a Triton @jit kernel named ``..._asm`` (aiter.mla) is not ASM, nor a function to wrap
    if getattr(value, "__module__", None) == module_name:
        return True
    from quantguard.engine.custom_ops import find_custom_op

    op = find_custom_op(value)
    return op is not None and op._schema.name.partition("::")[2] == name and not _reexported(value, module_name)


def _reexported(value: Any, module_name: str) -> bool:
    """A package that re-exports a submodule's function (``aiter`` re-exports ``aiter.ops.*``)."""
    for other_name, other in list(sys.modules.items()):
        if (
            other_name != module_name
            and other_name.startswith(module_name + ".")
            and other is not None
            and any(held is value for held in list(vars(other).values()))
        ):
            return True
    return False


class Audits:
    """A runtime extension: hooks called by :class:`~quantguard.engine.runtime.Runtime`."""

    def __init__(self) -> None:
        self._reported: set[tuple[str, str]] = set()
        self._announced: set[str] = set()

    def on_applied(self, runtime: Runtime, applied: list[Applied], initial: bool) -> None:
        self._backend_selection(runtime)
        self._asm_coverage(runtime)

    @staticmethod
    def uncovered_asm(runtime: Runtime) -> list[str]:
        """ASM-looking functions defined in loaded library modules that no contract names."""
        return sorted(
            path
            for path, module_name, name, value in asm_functions_loaded()
            if _defined_here(value, module_name, name) and path not in runtime.contracts
        )

    def _asm_coverage(self, runtime: Runtime) -> None:
        try:
            fresh = [path for path in self.uncovered_asm(runtime) if path not in self._announced]
            if not fresh:
                return
            self._announced.update(fresh)
            policy = runtime.platform.asm_blocked
            events.emit(
                events.UNCOVERED_KERNELS,
                "warning" if policy else "info",
                kernels=fresh,
                policy=policy,
                reason="ASM-looking functions no contract names"
                + ("; guarded by the CK-free ASM policy" if policy else ""),
            )
            if policy:
                from quantguard.contracts.base import Contract

                for path in fresh:
                    runtime.add_contract(
                        Contract(
                            target=path,
                            kind="kernel",
                            backend="asm",
                            checks=("asm_policy",),
                            asm=True,
                            description="ASM kernel found by the naming rule",
                        )
                    )
        except Exception as exc:
            runtime.reporter.internal_error("asm_coverage", "audit", exc)

    def on_unapplied(self, runtime: Runtime) -> None:
        self._reported.clear()
        runtime.provenance.weights.clear()

    def on_attach(self, runtime: Runtime, model: Any, prefix: str) -> None:
        self._backend_selection(runtime, model)
        try:  # the model's weight/scale pairs, which scale_pairing holds GEMMs to (torch is loaded: a model)
            from quantguard.checks.weights import register_attached_models

            register_attached_models(runtime)
        except Exception as exc:
            runtime.reporter.internal_error("quantguard.attach", "weight_pairs", exc)

    def _backend_selection(self, runtime: Runtime, model: Any = None) -> None:
        if not any(selection.loaded() for selection in backend_selections()):
            return  # nothing to audit, and no reason to import the checks (and torch) yet
        from quantguard.checks.backend_selection import audit_backend_selection

        try:
            for path, finding in audit_backend_selection(runtime.platform, model):
                if (path, finding.message) in self._reported:
                    continue
                self._reported.add((path, finding.message))
                library = library_of(path)
                extra = {"backend": library.name} if library is not None else None
                runtime.reporter.violation(path, finding, f"<audit {path}>", extra)
        except Exception as exc:
            runtime.reporter.internal_error("backend_selection", "audit", exc)
