"""``validate quant`` results as a terminal table, a markdown report and JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from quantguard._tables import markdown_table
from quantguard.numerics.metrics import Metrics
from quantguard.validate.quant.chains import BACKENDS, SCHEMES, Chain
from quantguard.validate.quant.run import STATUS_ORDER, CaseResult, Limits, severity, worst_status

__all__ = ["ChainSummary", "RunHeader", "console", "markdown", "metrics_json", "summarize_chains", "to_json"]


@dataclass(frozen=True)
class RunHeader:
    environment: str
    arch: str
    ck_free: bool
    device: str
    shapes: str
    guards: bool
    limits: Mapping[str, Limits]
    seed: int


@dataclass
class ChainSummary:
    """A chain over every shape it ran: the worst case decides."""

    chain: Chain
    cases: list[CaseResult]

    @property
    def ran(self) -> list[CaseResult]:
        return [case for case in self.cases if case.status in ("PASS", "FAIL")]

    @property
    def status(self) -> str:
        return worst_status(self.cases)

    def worst(self, attribute: str, key: str) -> float | None:
        values = [getattr(getattr(case, attribute), key) for case in self.ran if getattr(case, attribute) is not None]
        values = [value for value in values if not math.isnan(value)]
        if not values:
            return None
        if key == "norm_ratio":
            return max(values, key=lambda value: abs(value - 1.0))
        return max(values) if key == "max_abs_err" else min(values)

    @property
    def layout(self) -> str:
        verdicts = [case.layout for case in self.ran if case.layout is not None]
        bad = [verdict for verdict in verdicts if not verdict.ok]
        pool = bad or verdicts
        chosen = max(pool, key=lambda verdict: verdict.compared_groups) if pool else None
        return chosen.summary if chosen is not None else "—"

    @property
    def reason(self) -> str:
        for case in sorted(self.cases, key=severity):
            if case.reasons:
                m, n, k = case.shape
                return f"M={m} N={n} K={k}: {case.reasons[0]}"
        return ""

    @property
    def policy(self) -> str:
        blocked = sorted({text for case in self.cases for text in case.blocked})
        return blocked[0] if blocked else ""


def summarize_chains(results: Sequence[CaseResult]) -> list[ChainSummary]:
    by_chain: dict[int, ChainSummary] = {}
    for result in results:
        by_chain.setdefault(id(result.chain), ChainSummary(result.chain, [])).cases.append(result)
    return list(by_chain.values())


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"


def _cells(summary: ChainSummary) -> list[str]:
    chain = summary.chain
    return [
        chain.scheme,
        chain.backend + (f" ({chain.variant})" if chain.variant else ""),
        summary.status,
        _number(summary.worst("chain_metrics", "cosine")),
        _number(summary.worst("matched_metrics", "cosine"), 6),
        _number(summary.worst("chain_metrics", "norm_ratio")),
        _number(summary.worst("chain_metrics", "max_abs_err"), 3),
        f"{len(summary.ran)}/{len(summary.cases)}",
        summary.layout,
    ]


_HEADER = [
    "scheme",
    "backend",
    "verdict",
    "min cos vs fp32",
    "min cos vs matched",
    "norm ratio",
    "max abs err",
    "shapes run",
    "scale layout (produced vs read)",
]

#: The terminal's headers: short enough for 100 columns, explained by _LEGEND (``--wide``: _HEADER).
_SHORT_HEADER = ["scheme", "backend", "verdict", "cos fp32", "cos match", "norm", "max err", "shapes", "scale layout"]
_LEGEND = (
    "cos fp32 / cos match: min cosine vs the fp32 / precision-matched reference; norm: worst norm ratio; "
    "max err: max abs error; scale layout: produced vs read"
)


def console(header: RunHeader, summaries: Sequence[ChainSummary], wide: bool = False) -> str:
    """The comparison table and the first reason of each failing chain, for a terminal.

    Cells wrap to the terminal's 100 columns (``wide``: one line per chain, however long).
    """
    from quantguard.cli._console import indented, render, table

    lines = [
        indented([f"quantguard validate quant — {header.environment}; shapes: {header.shapes}"], wide).rstrip("\n"),
        "",
        render(
            table(
                _HEADER if wide else _SHORT_HEADER,
                [_cells(summary) for summary in summaries],
                wide,
                {0: 14, 1: 14, 2: 7, 3: 8, 4: 9, 5: 6, 6: 7, 7: 6},
            ),
            wide,
        ).rstrip("\n"),
    ]
    if not wide:
        lines.append(render(_LEGEND, wide).rstrip("\n"))
    notes = [
        f"  {summary.chain.name}: {summary.status}: {summary.reason}"
        for summary in summaries
        if summary.status in ("FAIL", "ERROR")
    ]
    blocked = [f"  {summary.chain.name}: {summary.policy}" for summary in summaries if summary.policy]
    if notes:
        lines += ["", "failures:", indented(notes, wide).rstrip("\n")]
    if blocked:
        lines += ["", "not allowed in this build (quantguard's CK-free policy would block them):"]
        lines += [indented(blocked, wide).rstrip("\n")]
    counts = {status: sum(1 for s in summaries if s.status == status) for status in STATUS_ORDER}
    lines += ["", ", ".join(f"{count} {status}" for status, count in counts.items() if count) + " chains"]
    return "\n".join(lines) + "\n"


def _backend_matrix(summaries: Sequence[ChainSummary]) -> list[str]:
    """Scheme x backend: the worst cosine vs fp32 and the verdict of each chain in that cell."""
    present = [backend for backend in BACKENDS if any(s.chain.backend == backend for s in summaries)]
    rows = []
    for scheme in SCHEMES:
        mine = [s for s in summaries if s.chain.scheme == scheme]
        if not mine:
            continue
        row = [scheme]
        for backend in present:
            cell = [
                f"{s.status} {_number(s.worst('chain_metrics', 'cosine'))}"
                + (f" ({s.chain.variant})" if s.chain.variant else "")
                for s in mine
                if s.chain.backend == backend
            ]
            row.append("; ".join(cell) or "n/a")  # no <br>: one line per cell in the source too
        rows.append(row)
    return markdown_table(["scheme"] + present, rows)


def _case_rows(results: Sequence[CaseResult]) -> list[list[str]]:
    rows = []
    for case in results:
        m, n, k = case.shape
        chain, matched = case.chain_metrics, case.matched_metrics
        rows.append(
            [
                case.chain.name,
                f"{m}x{n}x{k}",
                case.status,
                _number(chain.cosine if chain else None, 6),
                _number(matched.cosine if matched else None, 6),
                _number(chain.norm_ratio if chain else None),
                _number(chain.sqnr_db if chain else None, 1),
                _number(chain.max_abs_err if chain else None, 3),
                f"{case.seconds:.2f}",
                "; ".join(case.reasons),
            ]
        )
    return rows


def markdown(header: RunHeader, results: Sequence[CaseResult], summaries: Sequence[ChainSummary]) -> str:
    failing = [s for s in summaries if s.status in ("FAIL", "ERROR")]
    verdict = "FAIL" if failing else "PASS"
    lines = [
        f"# quantguard validate quant: {verdict}",
        "",
        f"- AITER: {header.environment}",
        f"- arch: {header.arch}; CK-free: {'yes' if header.ck_free else 'no'}; "
        f"device: {header.device}; seed: {header.seed}",
        f"- shapes (M, N, K): {header.shapes}",
        f"- quantguard guards on every call: {'yes' if header.guards else 'no'}",
        "- thresholds: "
        + "; ".join(
            f"{scheme}: cosine vs fp32 >= {limit.chain_cosine}, norm ratio 1 ± "
            f"{limit.norm_tolerance}, kernel vs matched >= {limit.matched_cosine}"
            for scheme, limit in header.limits.items()
        ),
        "",
        "## Backend comparison",
        "",
        "Worst cosine against the fp32 product of the unquantized operands, per scheme and backend.",
        "",
    ]
    lines += _backend_matrix(summaries)
    lines += ["", "## Chains", ""]
    lines += markdown_table(
        _HEADER + ["quant entry point", "GEMM entry point"],
        [_cells(s) + [f"`{s.chain.quant}`", f"`{s.chain.gemm}`"] for s in summaries],
    )
    lines += [
        "",
        "## Scale layouts",
        "",
        "What each producer actually wrote (recomputed from its input, strides ignored) and what the GEMM reads.",
        "",
    ]
    lines += markdown_table(
        ["chain", "GEMM reads", "producer wrote", "verdict"],
        [
            [
                s.chain.name,
                s.chain.expected_layout,
                s.layout,
                "ok" if all(c.layout is None or c.layout.ok for c in s.ran) else "MISMATCH",
            ]
            for s in summaries
            if s.ran
        ],
    )
    lines += ["", "## Failures", ""]
    if failing:
        for summary in failing:
            lines.append(f"- **{summary.chain.name}** ({summary.status}): {summary.reason}")
            if summary.chain.asm and summary.policy:
                lines.append(f"  - policy: {summary.policy}")
    else:
        lines.append("None.")
    skipped = [s for s in summaries if s.status == "SKIP"]
    if skipped:
        lines += ["", "## Not run", ""] + [f"- {s.chain.name}: {s.cases[0].reasons[0]}" for s in skipped]
    lines += ["", "## Every case", ""]
    lines += markdown_table(
        [
            "chain",
            "MxNxK",
            "verdict",
            "cos vs fp32",
            "cos vs matched",
            "norm ratio",
            "SQNR dB",
            "max abs err",
            "s",
            "reasons",
        ],
        _case_rows(results),
    )
    return "\n".join(lines) + "\n"


def metrics_json(metrics: Metrics | None) -> dict[str, Any] | None:
    """``metrics`` as JSON can hold them: NaN and infinities become null."""
    if metrics is None:
        return None
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in metrics.as_dict().items()
    }


def to_json(header: RunHeader, results: Sequence[CaseResult]) -> dict[str, Any]:
    return {
        "environment": header.environment,
        "arch": header.arch,
        "ck_free": header.ck_free,
        "device": header.device,
        "seed": header.seed,
        "guards": header.guards,
        "passed": all(case.status in ("PASS", "SKIP") for case in results),
        "cases": [
            {
                "scheme": case.chain.scheme,
                "backend": case.chain.backend,
                "variant": case.chain.variant,
                "quant": case.chain.quant,
                "gemm": case.chain.gemm,
                "shape": list(case.shape),
                "status": case.status,
                "reasons": case.reasons,
                "vs_fp32": metrics_json(case.chain_metrics),
                "vs_matched": metrics_json(case.matched_metrics),
                "scale_layout": None
                if case.layout is None
                else {
                    "expected": case.layout.expected,
                    "written": list(case.layout.written),
                    "rounding": list(case.layout.rounding),
                    "declared_rounding": case.layout.declared_rounding,
                    "ok": case.layout.ok,
                },
                "quantguard_findings": case.guard_findings,
                "blocked": case.blocked,
                "seconds": case.seconds,
            }
            for case in results
        ],
    }
