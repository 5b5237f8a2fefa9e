"""How a run is named in a report: its label, or its platform and the file it was read from.

A configuration is what a report compares side by side (``gfx942 CK`` vs
``gfx950 CK-free``).  ``QUANTGUARD_LABEL`` names it explicitly, so that the
per-rank files of one run fall under one name; without a label the name is
derived from the platform quantguard detected at ``enable()`` and the file
name, which keeps unrelated runs apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quantguard.report._fields import as_mapping, as_text

__all__ = ["configuration_name", "platform_description", "unlabeled_name"]


def _arch_and_build(enabled: Mapping[str, Any]) -> tuple[str, str]:
    platform = as_mapping(enabled.get("platform"))
    arch = as_text(platform.get("arch"), "unknown-arch")
    ck_free = platform.get("ck_free")
    build = ("CK-free" if ck_free else "CK") if isinstance(ck_free, bool) else "CK?"
    return arch, build


def platform_description(enabled: Mapping[str, Any]) -> str:
    """``gfx942 CK float8_e4m3fnuz`` from the ``platform`` of a ``quantguard.enabled`` event."""
    fp8 = as_text(as_mapping(enabled.get("platform")).get("fp8_dtype"))
    return " ".join(part for part in (*_arch_and_build(enabled), fp8) if part)


def configuration_name(enabled: Mapping[str, Any], file_name: str) -> tuple[str, bool]:
    """The configuration an ``enabled`` event starts, and whether it was labeled.

    ``config.label`` when set; else ``<arch> <CK|CK-free> (<file>)``.
    """
    label = as_text(as_mapping(enabled.get("config")).get("label")).strip()
    if label:
        return label, True
    arch, build = _arch_and_build(enabled)
    return f"{arch} {build} ({file_name})", False


def unlabeled_name(file_name: str) -> str:
    """The configuration of events seen before any ``enabled`` event of their file."""
    return f"no enabled event ({file_name})"
