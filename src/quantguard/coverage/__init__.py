"""Static coverage: which AITER call sites of a source tree quantguard's contracts guard.

``quantguard info --coverage PATH`` is the command-line face of
:func:`measure`.  :mod:`quantguard.coverage.scan` finds the call sites (AST
only: the scanned code is never imported) and
:mod:`quantguard.coverage.resolve` decides, per site, whether a registered
contract guards it (re-export rules documented there and in
``docs/coverage.md``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantguard.contracts.base import Contract
from quantguard.coverage.resolve import ContractIndex, Resolution
from quantguard.coverage.scan import CallSite, scan_file, scan_source

__all__ = ["ATOM_GROUPS", "CallSite", "Coverage", "Site", "measure", "scan_source", "default_index"]

#: ATOM's quantized linear, MoE, MLA and DeepSeek-V2/V4 files (paths relative to the ATOM checkout).
ATOM_GROUPS: Mapping[str, tuple[str, ...]] = {
    "quantized linear": (
        "atom/model_ops/linear.py",
        "atom/model_ops/utils.py",
        "atom/model_ops/layernorm.py",
        "atom/model_ops/activation.py",
    ),
    "MoE": ("atom/model_ops/moe.py", "atom/model_ops/fused_moe_triton.py"),
    "MLA": ("atom/model_ops/attention_mla.py",),
    "DeepSeek-V2/V4": ("atom/models/deepseek_v2.py", "atom/models/deepseek_v4.py", "atom/model_ops/v4_kernels/*.py"),
}


@dataclass(frozen=True)
class Site:
    """A call site with its verdict."""

    call: CallSite
    group: str
    resolution: Resolution

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.call.path,
            "line": self.call.line,
            "name": self.call.written,
            "target": self.call.target,
            "group": self.group,
            "status": self.resolution.category,
            "quantized": self.resolution.quantized,
            "contract": self.resolution.contract,
            "rule": self.resolution.how,
        }


def _ratio(guarded: int, total: int) -> float | None:
    return None if total == 0 else guarded / total


@dataclass
class Coverage:
    """Every AITER call site found, grouped; totals count kernel calls (infrastructure excluded)."""

    root: str
    sites: list[Site] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)

    def counted(self, group: str | None = None, quantized_only: bool = True) -> tuple[int, int]:
        """(guarded, total) kernel call sites, optionally of one group, optionally quantized paths only."""
        chosen = [
            s
            for s in self.sites
            if s.resolution.category != "infrastructure"
            and (group is None or s.group == group)
            and (s.resolution.quantized or not quantized_only)
        ]
        return sum(s.resolution.category == "guarded" for s in chosen), len(chosen)

    def totals(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for label, group in [("all", None), *((g, g) for g in self.groups)]:
            quant = self.counted(group, True)
            every = self.counted(group, False)
            result[label] = {
                "quantized_guarded": quant[0],
                "quantized_total": quant[1],
                "quantized_coverage": _ratio(*quant),
                "kernel_guarded": every[0],
                "kernel_total": every[1],
                "kernel_coverage": _ratio(*every),
                "infrastructure": sum(
                    s.resolution.category == "infrastructure" for s in self.sites if group is None or s.group == group
                ),
            }
        return result

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "groups": self.groups,
            "unparsed": self.unparsed,
            "totals": self.totals(),
            "sites": [site.as_dict() for site in self.sites],
        }


def default_index(contracts: Iterable[Contract] | None = None) -> ContractIndex:
    """An index of the registered contracts (built-in and user ones) and AITER's quant factories."""
    from quantguard.contracts.aiter import FACTORIES

    if contracts is None:
        from quantguard.engine.lifecycle import registered_contracts

        contracts = registered_contracts()
    return ContractIndex(contracts, FACTORIES)


def _select(root: Path, patterns: Sequence[str] | None) -> list[tuple[str, Path]]:
    """(group, file) pairs: ``patterns`` (globs relative to root) as one group, else ATOM's groups, else all."""
    files = sorted(p for p in root.rglob("*.py") if p.is_file()) if root.is_dir() else [root]
    base = root if root.is_dir() else root.parent
    relative = [(p.relative_to(base).as_posix(), p) for p in files]
    if patterns:
        return [("selected", p) for rel, p in relative if any(fnmatch.fnmatchcase(rel, g) for g in patterns)]
    grouped = [
        (group, p)
        for group, globs in ATOM_GROUPS.items()
        for rel, p in relative
        if any(fnmatch.fnmatchcase(rel, g) for g in globs)
    ]
    return grouped or [("all", p) for _, p in relative]


def measure(root: str | Path, patterns: Sequence[str] | None = None, index: ContractIndex | None = None) -> Coverage:
    """Scan ``root`` (a directory or one file) and judge every AITER call site against the contracts.

    ``patterns``: globs relative to ``root`` selecting the files (one group,
    ``"selected"``); by default ATOM's groups (:data:`ATOM_GROUPS`) when the
    tree holds them, else every ``.py`` file (group ``"all"``).
    """
    path = Path(root)
    if not path.exists():
        raise FileNotFoundError(f"coverage: {root} does not exist")
    index = index or default_index()
    base = path if path.is_dir() else path.parent
    coverage = Coverage(str(path))
    for group, file in _select(path, patterns):
        if group not in coverage.groups:
            coverage.groups.append(group)
        try:
            calls = scan_file(file, base)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            coverage.unparsed.append(file.relative_to(base).as_posix())
            continue
        coverage.sites += [Site(call, group, index.resolve(call.target)) for call in calls]
    return coverage
