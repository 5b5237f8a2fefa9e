"""The first stack frame outside quantguard and the guarded library: where the user called.

Only computed when an event needs it (a violation, a block), never on the
fast path.
"""

from __future__ import annotations

import sys

from quantguard.contracts import internal_packages

__all__ = ["find_callsite", "INTERNAL_PREFIXES"]

#: Modules whose frames are skipped: ours and call plumbing (and the guarded library's: ``internal_packages``).
INTERNAL_PREFIXES = (
    "quantguard.",
    "wrapt.",
    "functools",
    "contextlib",
    "torch._ops",
    "torch.utils._contextlib",
)
_INTERNAL_EXACT = ("quantguard", "wrapt")
#: Our own packages that play the role of user code (the simulator's workload).
_USER_PREFIXES = ("quantguard.sim.workload", "quantguard.cli.", "quantguard.validate")


def _is_internal(module_name: str) -> bool:
    if module_name.startswith(_USER_PREFIXES):
        return False
    return (
        module_name in _INTERNAL_EXACT
        or module_name.startswith(INTERNAL_PREFIXES)
        or module_name.partition(".")[0] in internal_packages()
    )


def find_callsite(depth: int = 1, extra_internal: tuple[str, ...] = ()) -> str:
    """``"file:line"`` of the first frame outside quantguard, aiter and call plumbing."""
    frame = sys._getframe(depth)
    while frame is not None:
        module_name = frame.f_globals.get("__name__", "") or ""
        if not _is_internal(module_name) and not module_name.startswith(extra_internal or ("\0",)):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"
