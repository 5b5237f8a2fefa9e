"""Compare a target's real signature with what its contract expects (AITER version drift).

AITER renames and reorders parameters between versions.  A check that reads
``transpose_scale`` from a function that no longer has it would silently
check nothing, so at patch time each target's parameters and relied-upon
defaults are compared with the contract; the differences are reported
(``quantguard.target_mismatch``) and only the checks that depend on a changed
parameter are switched off for that target.
"""

from __future__ import annotations

import inspect
from typing import Any

from quantguard.contracts.base import Contract

__all__ = ["compare_signature", "default_text"]


def default_text(value: Any) -> str:
    """A default as source-like text (``dtypes.fp32`` style names compare by their dtype name)."""
    if value is inspect.Parameter.empty:
        return "<required>"
    text = getattr(value, "__name__", None)
    if text is None:
        text = str(value).replace("torch.", "")
    return text


def compare_signature(
    contract: Contract, function: Any, signature: inspect.Signature | None = None
) -> tuple[list[str], set[str]]:
    """``(differences, disabled_check_ids)``; empty when the contract declares no expectation.

    ``signature`` is what the engine bound the target by when the function's
    own signature is opaque (an op schema, the decorated function).
    """
    if contract.params is None:
        return [], set()
    if signature is None:
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            return [], set()
    actual = [p.name for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    expected = list(contract.params)
    differences: list[str] = []
    changed: set[str] = set()
    for name in expected:
        if name not in actual:
            differences.append(f"parameter {name!r} is missing")
            changed.add(name)
    for name in actual:
        if name not in expected:
            differences.append(f"unexpected parameter {name!r}")
    common = [name for name in actual if name in expected]
    expected_common = [name for name in expected if name in actual]
    if common != expected_common:
        for position, (have, want) in enumerate(zip(common, expected_common)):
            if have != want:
                differences.append(f"parameter order differs at {position}: {have!r} where {want!r} was expected")
                changed.update((have, want))
    for name, want in contract.relied_defaults.items():
        parameter = signature.parameters.get(name)
        if parameter is None:
            continue
        have = default_text(parameter.default)
        if have.split(".")[-1] != want.split(".")[-1]:
            differences.append(f"default of {name!r} is {have} (contract relies on {want})")
            changed.add(name)
    disabled = {check for check, needs in contract.depends.items() if changed.intersection(needs)}
    return differences, disabled
