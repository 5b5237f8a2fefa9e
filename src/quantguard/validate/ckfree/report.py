"""The ``validate ckfree`` report: the checklist table (stdout), markdown sections, JSON.

Sections, in order: run settings, verdict, checklist (item, status, evidence),
then the data behind the items: ASM kernels, ATOM backend selectors, fallback
probes, regression checklist, per-layer cosine, generation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from quantguard._tables import markdown_table as _table
from quantguard.validate.ckfree.checks import ERROR, FAIL, PASS, SKIP, Item

__all__ = ["RunHeader", "checklist", "exit_code", "markdown", "to_json", "verdict"]

_SAMPLE_TOKENS = 16


@dataclass(frozen=True)
class RunHeader:
    """The settings a report states before any verdict."""

    arch: str
    aiter: str
    deployment: str
    faults: str
    device: str
    workload: str
    thresholds: str
    guard: str


def exit_code(items: Sequence[Item]) -> int:
    """0 when every item passed or was skipped, 1 when one failed or could not be decided."""
    return 1 if any(item.status in (FAIL, ERROR) for item in items) else 0


def verdict(items: Sequence[Item]) -> str:
    bad = [item.key for item in items if item.status in (FAIL, ERROR)]
    counts = ", ".join(
        f"{sum(item.status == status for item in items)} {status}"
        for status in (PASS, FAIL, ERROR, SKIP)
        if any(item.status == status for item in items)
    )
    if bad:
        return f"**Verdict: FAIL** ({counts}; failing: {', '.join(bad)})"
    return f"**Verdict: PASS** ({counts})"


def console(header: RunHeader, items: Sequence[Item], wide: bool = False) -> str:
    """The checklist for a terminal: evidence wraps to 100 columns (``wide``: one line per item)."""
    from quantguard.cli._console import indented, render, table

    rows = [(str(index), item.key, item.status, item.evidence) for index, item in enumerate(items, 1)]
    return "".join(
        [
            indented(
                [f"quantguard validate ckfree: {header.arch}; {header.deployment}; faults: {header.faults}"], wide
            ),
            "\n",
            render(table(("#", "check", "status", "evidence"), rows, wide, {1: 29, 2: 6}), wide),
            "\n",
            render(verdict(items).replace("**", ""), wide),
        ]
    )


def checklist(items: Sequence[Item]) -> list[str]:
    rows = [(str(index), item.key, item.status, item.evidence) for index, item in enumerate(items, 1)]
    return _table(("#", "check", "status", "evidence"), rows)


def _number(value: Any, digits: int = 6) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _details(items: Sequence[Item], prefix: str) -> list[Mapping[str, Any]]:
    return [item.details for item in items if item.key.startswith(prefix) and item.details]


def _asm(items: Sequence[Item]) -> list[str]:
    lines = ["## ASM kernels", ""]
    for details in _details(items, "asm_never_invoked"):
        rows = [
            (f"`{row['entry_point']}`", f"`{row['kernel']}`", str(row["count"]), row["action"])
            for row in details["blocked"]
        ]
        if rows:
            lines += _table(("entry point", "ASM kernel reached", "calls", "action"), rows) + [""]
        calls = ", ".join(f"`{target}` ×{count}" for target, count in details["asm_calls"].items())
        lines.append(f"- guarded ASM calls: {calls or 'none'}")
        lines.append(
            f"- uncovered ASM-looking kernels (quantguard audit): {'; '.join(details['uncovered_kernels']) or 'none'}"
        )
    return lines


def _selectors(items: Sequence[Item]) -> list[str]:
    rows = [
        (f"`{name}()`", str(value))
        for details in _details(items, "triton_selected.")
        for name, value in details["selectors"].items()
    ]
    return ["## ATOM backend selectors", ""] + (_table(("selector", "returned"), rows) if rows else ["None found."])


def _probes(items: Sequence[Item]) -> list[str]:
    lines = ["## Fallback probes", ""]
    for details in _details(items, "shuffle_scale_column_major"):
        lines += [
            f"Scales recomputed from a ({details['rows']}, {details['groups']} x {details['group_size']}) "
            f"input as group amax / {details['fp8']} max, then looked up in the scale buffer's bytes.",
            "",
        ]
        lines += _table(
            ("entry point", "request", "expected", "written", "ok"),
            [
                (f"`{p['entry_point']}`", p["request"], p["expected"], p["written"], "✓" if p["ok"] else "✗")
                for p in details["probes"]
            ],
        ) + [""]
    for details in _details(items, "partial_transpose_writes"):
        lines += _table(
            ("entry point", "must write", "wrong", "left unwritten", "written past num_rows"),
            [
                (
                    f"`{p['entry_point']}`",
                    str(p["must_write"]),
                    str(p["wrong"]),
                    str(p["left_unwritten"]),
                    str(p["overwritten_past_num_rows"]),
                )
                for p in details["probes"]
            ],
        )
    lines += [
        f"\nFailed CK JIT build ({item.status}): {item.evidence}"
        for item in items
        if item.key == "jit_failure_catchable"
    ]
    return lines


def _regressions(items: Sequence[Item]) -> list[str]:
    lines = ["## Regression checklist", ""]
    for details in _details(items, "regression_checklist"):
        lines += [f"Events from: {details['source']}.", ""]
        lines += _table(
            ("check", "catches", "violations", "first message"),
            [
                (f"`{row['check']}`", row["catches"], str(row["violations"]), row["first"] or "")
                for row in details["checks"]
            ],
        )
        lines += [f"- internal error: {error}" for error in details["internal_errors"]]
        lines += [f"- coverage: {note}" for note in details["coverage"]]
    return lines


def _layers(items: Sequence[Item]) -> list[str]:
    lines = ["## Per-layer cosine", ""]
    for details in _details(items, "layer_cosine"):
        lines += [
            f"Float64 cosine and norm ratio of each module's output to the precision-matched reference's "
            f"(the same FP8/MXFP4 weights, scales and activation quantization, products in fp32) over "
            f"{details['positions']} prompt positions. Each reference layer is fed the deployed layer's "
            f"input; routing is the gate GEMM and top-k on the deployed MoE input (as a dense token x "
            f"expert weight matrix), the expert GEMMs run on the deployed input and routing. Gated: "
            f"transformer layers (cosine >= {details['threshold']}), routing and expert GEMMs (cosine >= "
            f"{details.get('moe_threshold', details['threshold'])}), norm ratio within 1 ± "
            f"{details['norm_tolerance']}; attention and MoE outputs are shown to localize a drop. "
            f"`vs BF16` is the end-to-end distance to the unquantized model (information: the "
            f"quantization error, not the kernels').",
            "",
        ]
        rows = [
            (
                f"`{row['layer']}`",
                _number(row["cosine"]),
                _number(row["norm_ratio"], 4),
                _number(row.get("bf16_cosine"), 4),
                "" if row.get("routing_match") is None else f"{row['routing_match']:.0%}",
                ("FAIL: " + "; ".join(row["problems"]) if row["problems"] else f"PASS (>= {row.get('threshold')})")
                if row["gated"]
                else "shown",
            )
            for row in details["layers"]
        ]
        lines += _table(("module", "cosine", "norm ratio", "vs BF16", "same experts", "verdict"), rows)
    return lines


def _generation(items: Sequence[Item]) -> list[str]:
    lines = ["## Generation", ""]
    for details in _details(items, "generation"):
        lines += [
            f"- prompt: `{details['prompt']}`",
            f"- reference (first {_SAMPLE_TOKENS}): `{details['reference_tokens'][:_SAMPLE_TOKENS]}`",
            f"- CK-free (first {_SAMPLE_TOKENS}): `{details['tokens'][:_SAMPLE_TOKENS]}`",
            f"- token match: {details['token_match']:.1%}",
            f"- output embedding (last decoder layer, each generated position, reference on the same "
            f"tokens): cosine {_number(details['embedding_cosine'])}, norm ratio "
            f"{_number(details['embedding_norm_ratio'], 4)}, non-finite {details['embedding_nonfinite']}",
            f"- logits cosine: {_number(details['logits_cosine'])}",
        ]
    return lines


def markdown(header: RunHeader, items: Sequence[Item]) -> str:
    """The full report."""
    settings = [(name.replace("_", " "), value) for name, value in asdict(header).items()]
    lines = [f"# quantguard validate ckfree: {header.arch}", ""] + _table(("setting", "value"), settings)
    lines += ["", verdict(items), "", "## Checklist", ""] + checklist(items)
    for section in (_asm, _selectors, _probes, _regressions, _layers, _generation):
        lines += [""] + section(items)
    errors = [item for item in items if item.status == ERROR and "traceback" in item.details]
    if errors:
        lines += ["", "## Errors", ""]
        for item in errors:
            lines += [f"### {item.key}", "", "```", item.details["traceback"].rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def to_json(header: RunHeader, items: Sequence[Item]) -> dict[str, Any]:
    """The run as JSON-ready data (NaN as null)."""
    return _jsonable(
        {
            "run": asdict(header),
            "verdict": "fail" if exit_code(items) else "pass",
            "exit_code": exit_code(items),
            "items": [asdict(item) for item in items],
        }
    )


def write_json(path: Path, header: RunHeader, items: Sequence[Item]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(header, items), indent=2) + "\n")
