"""A ``SystemExit`` escaping AITER's JIT module builder becomes ``RuntimeError`` (``jit_exit``).

The incident: the JIT build of a CK module raised ``SystemExit``, so ATOM's
``except RuntimeError`` fallbacks never ran and the process exited mid-serve.
Converting it (and logging) lets the fallback the caller wrote actually run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quantguard.checks.base import AroundCheck, Finding, register_check

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["JitExit"]


@register_check
class JitExit(AroundCheck):
    name = "jit_exit"
    reports = ("jit_exit",)
    summary = "turn SystemExit from the JIT builder into RuntimeError so fallbacks run"

    def around(self, call: CallRecord, proceed: Callable[[], Any], report: Callable[[Finding], None]) -> Any:
        try:
            return proceed()
        except SystemExit as exc:
            module = call.args[0] if call.args else call.kwargs.get("md_name", "?")
            report(
                Finding(
                    "jit_exit",
                    f"JIT build of {module!r} raised SystemExit({exc.code!r}); converted to "
                    "RuntimeError so the caller's fallback runs",
                    details={"module": str(module), "exit_code": str(exc.code)},
                )
            )
            raise RuntimeError(f"[quantguard] JIT build of {module!r} exited with SystemExit({exc.code!r})") from exc
