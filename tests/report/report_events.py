"""Synthetic quantguard events with the schema of docs/events.md, for report edge cases."""

from __future__ import annotations

from typing import Any

__all__ = ["event", "enabled", "violation", "shadow"]


def event(kind: str, /, pid: int = 100, rank: int | None = None, **fields: Any) -> dict[str, Any]:
    """A synthetic event with the common fields; ``kind`` may omit the ``quantguard.`` prefix."""
    name = kind if kind.startswith("quantguard.") else f"quantguard.{kind}"
    return {
        "event": name,
        "timestamp": fields.pop("timestamp", "2026-01-01T00:00:00.000000Z"),
        "level": fields.pop("level", "info"),
        **fields,
        "pid": pid,
        "host": "h",
        "rank": rank,
        "world_size": None if rank is None else 8,
        "quantguard_version": "0.1.0",
    }


def enabled(label: str | None = None, arch: str | None = "gfx942", ck_free: bool = False, **fields: Any) -> dict:
    return event(
        "enabled",
        reconfigured=fields.pop("reconfigured", False),
        config={"label": label},
        platform={"arch": arch, "ck_free": ck_free, "fp8_dtype": None},
        **fields,
    )


def violation(
    check: str = "kwarg_ignored",
    target: str = "aiter.ops.quant.per_group_quant_hip",
    count: int = 1,
    severity: str = "error",
    callsite: str = "model.py:10",
    repeat: bool = False,
    **fields: Any,
) -> dict:
    details = {"repeat": True} if repeat else fields.pop("details", {})
    if repeat:
        severity = "warning"  # what the engine's flush writes, whatever the original severity
        fields.setdefault("message", "more occurrence(s) since the last event")
    else:
        fields.setdefault("backend", "hip")
    return event(
        "violation",
        level=severity,
        target=target,
        check=check,
        severity=severity,
        message=fields.pop("message", f"{check} happened"),
        details=details,
        callsite=callsite,
        count=count,
        **fields,
    )


def shadow(
    cosine: Any,
    layer: str | None = "layers.0.mlp",
    target: str = "aiter.ops.gemm_op_a8w8.gemm_a8w8",
    threshold: float = 0.999,
    passed: bool | None = None,
    backend: str = "ck",
    **fields: Any,
) -> dict:
    if passed is None:
        passed = isinstance(cosine, float) and cosine >= threshold
    return event(
        "shadow",
        target=target,
        backend=backend,
        layer=layer,
        cosine=cosine,
        threshold=threshold,
        passed=passed,
        count=fields.pop("count", 1),
        **fields,
    )
