"""What happens to a call of a blocked kernel: raise, reroute to a safe equivalent, or log.

Whether a kernel is blocked is decided by a plan check (``checks.backend_policy``)
from the contract and the platform; this module only carries out the
configured action and names both the kernel that was reached and the public
entry point the user called (internal dispatch reaches ASM kernels through
module globals, e.g. ``gemm_a8w8_blockscale`` → ``gfx950_a8w8_blockscale_ASM``).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quantguard.errors import QuantGuardBlocked
from quantguard.reentrancy import suppressed

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.checks.base import Finding
    from quantguard.engine.calls import CallRecord
    from quantguard.engine.guard import GuardState
    from quantguard.engine.runtime import Runtime

__all__ = ["PolicyHandler", "guarded_call_chain", "register_guard_code", "PROCEED"]

#: ``id(code)`` of every generated guard entry (``__call__`` or dispatch kernel) -> (weak ref to the code, target).
#: By identity: code objects compare equal by content, and guards of two targets can share their source.
_GUARD_CODES: dict[int, tuple[Any, str]] = {}
#: Returned by :meth:`PolicyHandler.on_blocked` when the call should go on as usual (``on_block="log"``).
PROCEED = object()


def register_guard_code(code: Any, target: str) -> None:
    """Remember a guard entry's code object, so a blocked kernel can name the public call that reached it."""
    key = id(code)
    _GUARD_CODES[key] = (weakref.ref(code, lambda _, key=key: _GUARD_CODES.pop(key, None)), target)


def guarded_call_chain(depth: int = 1) -> list[str]:
    """Targets of the guarded calls on this thread's stack, outermost first.

    Read from the frames (a fast-path call keeps no state of its own): each
    guard entry's code object is registered when it is generated.
    """
    chain = []
    frame = sys._getframe(depth)
    codes = _GUARD_CODES
    while frame is not None:
        entry = codes.get(id(frame.f_code))
        if entry is not None and entry[0]() is frame.f_code:
            chain.append(entry[1])
        frame = frame.f_back
    chain.reverse()
    return chain


class PolicyHandler:
    __slots__ = ("runtime",)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def on_blocked(self, state: GuardState, record: CallRecord, finding: Finding, wrapped: Callable[..., Any]) -> Any:
        contract = state.contract
        chain = guarded_call_chain(2)
        entry_point = chain[0] if chain else contract.target
        record.entry_point = entry_point
        action = self.runtime.config.on_block
        reporter = self.runtime.reporter
        details = dict(finding.details)
        details["chain"] = chain
        if action == "reroute" and contract.reroute is not None:
            with suppressed():
                result = contract.reroute(record)
            reporter.blocked(
                contract.target, finding.message, "reroute", contract.alternative, entry_point, record.callsite, details
            )
            return result
        if action == "reroute":
            details["reroute"] = "no reroute known for this kernel; raising instead"
        if action == "log":
            reporter.blocked(contract.target, finding.message, "log", None, entry_point, record.callsite, details)
            return PROCEED
        reporter.blocked(contract.target, finding.message, "raise", None, entry_point, record.callsite, details)
        raise QuantGuardBlocked(contract.target, finding.message, contract.alternative, entry_point)

    def after_the_fact(self, state: GuardState, record: CallRecord, finding: Finding) -> None:
        """A blocked kernel already ran (a compiled graph calls it directly): report; raise unless logging."""
        contract = state.contract
        action = self.runtime.config.on_block
        details = dict(finding.details)
        details["chain"] = [contract.target]
        details["compiled"] = "the kernel ran inside a torch.compile graph before quantguard could stop it"
        record.entry_point = contract.target
        enforced = "log" if action == "log" else "raise"
        self.runtime.reporter.blocked(
            contract.target, finding.message, enforced, None, contract.target, record.callsite, details
        )
        if enforced == "raise":
            raise QuantGuardBlocked(contract.target, finding.message, contract.alternative, contract.target)
