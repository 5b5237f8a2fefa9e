"""The CK-free checklist items decided from a guarded run: ASM, regressions, layer cosine, generation.

Events are folded with :class:`quantguard.report.Aggregator` (counts are the
growth of each key's cumulative ``count``, so rate limiting loses nothing),
whether they were captured live from the simulated workload or read from the
JSON-lines logs of a real ATOM run (``--events``). ASM invocations are the
blocked kernels plus the guarded calls of ASM-named targets in the summaries,
so an ASM call is seen even where the run's guard did not apply the gfx950
CK-free policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantguard import events as event_names
from quantguard.contracts.aiter import is_asm_name
from quantguard.report.aggregate import Aggregator
from quantguard.report.records import Report
from quantguard.validate.accuracy.evaluation import layer_problems
from quantguard.validate.ckfree.checks import ERROR, FAIL, PASS, SKIP, Item
from quantguard.validate.ckfree.workload import LAYER, MOE, WorkloadRun

__all__ = [
    "REGRESSIONS",
    "GuardedRun",
    "Thresholds",
    "asm_item",
    "fold_events",
    "fold_files",
    "generation_item",
    "layer_item",
    "regression_item",
]

#: The guards issue's regression checklist: every check a violation event can name, with what it catches.
REGRESSIONS: Mapping[str, str] = {
    "kwarg_ignored": "shuffle_scale / transpose_scale / shuffle or routed_scaling_factor requested and not honored",
    "ignored_parameter": "a function or its Triton fallback accepts a parameter it never reads (static scan)",
    "noop_transform": "partial_transpose / shuffle_weight left its output unchanged or wrong",
    "jit_exit": "the JIT builder raised SystemExit, so except-RuntimeError fallbacks never ran",
    "fp8_variant": "e4m3fn bytes where the arch reads e4m3fnuz (or the reverse); normalization skipped",
    "e8m0_rounding": "e8m0 scales rounded in another mode than the producer declares",
    "scale_values": "scales all zero (e8m0 copy zero-fill), NaN, negative, or matching no layout",
    "weight_magnitude": "FP8 values in a BF16 weight without their block scale (dropped scale)",
    "unloaded_parameter": "all-zero (never loaded) weights",
    "scale_layout": "a scale layout the consuming kernel does not read",
    "scale_shape": "scale shape differs from what the kernel reads",
    "scale_dtype": "scale dtype differs from what the kernel reads (fp32 vs e8m0)",
    "weight_layout": "preshuffled weight read as plain, or preshuffle requirements not met",
    "gemm_shape": "mismatched GEMM operand shapes",
    "backend_selection": "a CK kernel reached in a CK-free build, or an ATOM selector returned False",
    "numerics": "a sampled call off its precision-matched or chain reference (cosine, norm ratio, SQNR)",
    "nonfinite": "NaN/Inf in a guarded output",
}

_SHOWN = 4


@dataclass(frozen=True)
class Thresholds:
    """``layer_cosine``/``moe_cosine`` gate against the precision-matched reference; the generation
    minimums (``embedding_cosine``, ``token_match``) against the BF16 one, end to end."""

    layer_cosine: float
    norm_tolerance: float
    embedding_cosine: float
    token_match: float
    moe_cosine: float = 0.9999


@dataclass
class GuardedRun:
    """What quantguard reported over the workload; ``stopped`` when the workload did not finish."""

    report: Report
    calls: dict[str, int] = field(default_factory=dict)
    uncovered: dict[str, bool] = field(default_factory=dict)  # ASM-looking kernel -> guarded by the policy
    source: str = ""
    stopped: str | None = None

    @property
    def asm_calls(self) -> dict[str, int]:
        return {target: count for target, count in sorted(self.calls.items()) if count and is_asm_name(target)}


def _fold(pairs: Iterable[tuple[Mapping[str, Any], str]], source: str, stopped: str | None = None) -> GuardedRun:
    aggregator = Aggregator()
    last: dict[tuple[str, Any], Mapping[str, Any]] = {}
    uncovered: dict[str, bool] = {}
    for event, name in pairs:
        aggregator.add(event, name)
        kind = event.get("event")
        if kind == event_names.SUMMARY and isinstance(event.get("calls"), Mapping):
            last[(name, event.get("pid"))] = event["calls"]  # summaries are cumulative per process
        elif kind == event_names.UNCOVERED_KERNELS and isinstance(event.get("kernels"), list):
            uncovered.update(dict.fromkeys(map(str, event["kernels"]), event.get("policy") is True))
    calls: dict[str, int] = {}
    for summary in last.values():
        for target, count in summary.items():
            if isinstance(count, int):
                calls[target] = calls.get(target, 0) + count
    return GuardedRun(aggregator.finish(), calls, uncovered, source, stopped)


def fold_events(run: WorkloadRun) -> GuardedRun:
    """The events captured during the simulated workload."""
    return _fold(((event, "validate ckfree") for event in run.events), "the guarded simulated workload", run.error)


def fold_files(paths: Iterable[Path]) -> GuardedRun:
    """JSON-lines logs of a guarded run (``quantguard run`` / ``QUANTGUARD_LOG``)."""
    from quantguard.report.reader import read_events

    paths = list(paths)
    return _fold(
        ((event, path.name) for path in paths for event in read_events(path)), ", ".join(str(path) for path in paths)
    )


def _short(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _clip(text: str, width: int = 240) -> str:
    """At most ``width`` characters, cut at a word boundary (evidence must stay readable)."""
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > width // 2 else cut).rstrip(" ,;:") + "…"


def _listed(parts: list[str]) -> str:
    return ", ".join(parts[:_SHOWN]) + (f", ... ({len(parts) - _SHOWN} more)" if len(parts) > _SHOWN else "")


def asm_item(run: GuardedRun | None, arch: str | None) -> Item:
    """No ASM kernel may run on gfx950 in a CK-free build (their output is garbage there)."""
    key, title = "asm_never_invoked", "no ASM GEMM invoked on gfx950"
    if run is None:
        return Item(key, title, SKIP, "no guarded run: pass --events with the logs of a quantguard-enabled ATOM run")
    # the kernel the entry point dispatched to before the internal one it calls
    blocked = sorted(
        run.report.blocked.values(),
        key=lambda kernel: (-kernel.count, _short(kernel.target).startswith("_"), kernel.target),
    )
    uncovered = [
        f"{kernel} ({'guarded by the CK-free ASM policy' if guarded else 'not guarded'})"
        for kernel, guarded in run.uncovered.items()
    ]
    details = {
        "blocked": [
            {
                "entry_point": kernel.entry_point,
                "kernel": kernel.target,
                "count": kernel.count,
                "action": kernel.action,
                "callsite": kernel.callsite,
            }
            for kernel in blocked
        ],
        "asm_calls": run.asm_calls,
        "uncovered_kernels": uncovered,
    }
    invoked = [f"{_short(kernel.entry_point)} → {_short(kernel.target)} ×{kernel.count}" for kernel in blocked]
    invoked += [
        f"{_short(target)} ×{count}"
        for target, count in run.asm_calls.items()
        if not any(kernel.target == target for kernel in blocked)
    ]
    unguarded = [kernel for kernel, guarded in run.uncovered.items() if not guarded]
    audit = (
        f"{len(uncovered)} ASM-looking kernels no contract names"
        + (f", not guarded: {_listed(unguarded)}" if unguarded else ", all guarded by the CK-free ASM policy")
        if uncovered
        else "no uncovered ASM-looking kernels"
    )
    if arch != "gfx950":
        return Item(
            key,
            title,
            SKIP,
            f"{arch}: ASM kernels are allowed (the CK-free ASM garbage is gfx950's); "
            f"ASM calls seen: {_listed(invoked) or 'none'}",
            details,
        )
    if invoked:
        return Item(key, title, FAIL, f"ASM invoked on gfx950 in a CK-free build: {_listed(invoked)}", details)
    if run.stopped:
        return Item(key, title, ERROR, f"no ASM call before the workload stopped ({run.stopped})", details)
    return Item(key, title, PASS, f"0 ASM calls over {_total_calls(run)} guarded calls; {audit}", details)


def _total_calls(run: GuardedRun) -> int:
    return sum(configuration.run_totals.calls for configuration in run.report.configurations.values())


def regression_item(run: GuardedRun | None) -> Item:
    """Every guard over the workload: any violation fails, grouped by check."""
    key, title = "regression_checklist", "guards' regression checklist over the workload"
    if run is None:
        return Item(key, title, SKIP, "no guarded run: pass --events with the logs of a quantguard-enabled ATOM run")
    checks = run.report.checks
    names = list(REGRESSIONS) + sorted(set(checks) - set(REGRESSIONS))
    rows = []
    for name in names:
        stats = checks.get(name)
        rows.append(
            {
                "check": name,
                "catches": REGRESSIONS.get(name, ""),
                "violations": stats.total if stats else 0,
                "targets": sorted(stats.targets) if stats else [],
                "first": stats.first.message if stats and stats.first else "",
                "first_target": stats.first.target if stats and stats.first else "",
            }
        )
    errors = [f"{error.target} ({error.check}): {error.error}" for error in run.report.internal_errors.values()]
    coverage = [
        f"{note.kind} {note.target}: {note.detail}"
        for note in run.report.coverage.values()
        if note.kind in ("target_missing", "target_mismatch")
    ]
    details = {"checks": rows, "internal_errors": errors, "coverage": coverage, "source": run.source}
    failed = [row for row in rows if row["violations"]]
    if failed:
        listed = [
            f"{row['check']} ×{row['violations']} ({_short(row['first_target'])}: {_clip(row['first'])})"
            for row in failed
        ]
        return Item(key, title, FAIL, "; ".join(listed), details)
    if run.stopped:
        return Item(key, title, ERROR, f"no violation before the workload stopped ({run.stopped})", details)
    if errors:
        return Item(
            key, title, ERROR, f"no violation, but {len(errors)} checks failed internally: {errors[0]}", details
        )
    note = f"; coverage: {_listed(coverage)}" if coverage else ""
    return Item(
        key, title, PASS, f"0 violations in {len(names)} checks over {_total_calls(run)} guarded calls{note}", details
    )


def layer_item(run: WorkloadRun, thresholds: Thresholds) -> Item:
    """Each transformer layer, MoE routing and expert GEMM against the precision-matched reference."""
    key, title = "layer_cosine", "per-layer and MoE cosine vs the precision-matched reference"
    limits = {LAYER: thresholds.layer_cosine, MOE: thresholds.moe_cosine}
    rows = [
        {
            "layer": layer.name,
            "gated": layer.gated,
            "gate": layer.gate,
            "threshold": limits.get(layer.gate),
            "cosine": layer.metrics.cosine,
            "norm_ratio": layer.metrics.norm_ratio,
            "nonfinite": layer.metrics.nonfinite,
            "bf16_cosine": layer.bf16.cosine if layer.bf16 is not None else None,
            "routing_match": layer.routing_match,
            "problems": list(layer_problems(layer.metrics, limits[layer.gate], thresholds.norm_tolerance, digits=6))
            if layer.gated
            else [],
        }
        for layer in run.layers
    ]
    details = {
        "layers": rows,
        "positions": run.positions,
        "threshold": thresholds.layer_cosine,
        "moe_threshold": thresholds.moe_cosine,
        "norm_tolerance": thresholds.norm_tolerance,
    }
    gated = [row for row in rows if row["gated"]]
    if not gated:
        return Item(key, title, FAIL, f"the CK-free workload did not run: {run.error}", details)
    flagged = [f"{row['layer']}: {'; '.join(row['problems'])}" for row in gated if row["problems"]]
    if flagged:
        return Item(key, title, FAIL, _clip("; ".join(flagged), 480), details)
    layers = [row for row in gated if row["gate"] == LAYER]
    moe = [row for row in gated if row["gate"] == MOE]
    worst, worst_moe = (min(group, key=lambda row: row["cosine"]) for group in (layers, moe))
    ratios = [row["norm_ratio"] for row in gated]
    bf16 = [row["bf16_cosine"] for row in layers if row["bf16_cosine"] is not None]
    matches = [row["routing_match"] for row in moe if row["routing_match"] is not None]
    return Item(
        key,
        title,
        PASS,
        f"worst layer {worst['layer']} cosine {worst['cosine']:.6f} (min {thresholds.layer_cosine}); "
        f"worst MoE {worst_moe['layer']} {worst_moe['cosine']:.6f} (min {thresholds.moe_cosine})"
        + (f", same experts {min(matches):.0%}" if matches else "")
        + f"; norm ratios {min(ratios):.4f}-{max(ratios):.4f} (1 ± {thresholds.norm_tolerance}); "
        f"{run.positions} positions" + (f"; vs BF16 (info) worst layer {min(bf16):.4f}" if bf16 else ""),
        details,
    )


def generation_item(run: WorkloadRun, thresholds: Thresholds, tokens: int) -> Item:
    """Greedy tokens vs the reference's, and output embeddings on the same token history."""
    key, title = "generation", f"{tokens}-token greedy generation vs the BF16 reference"
    generation = run.generation
    if tokens == 0:
        return Item(key, title, SKIP, "--tokens 0")
    if generation is None:
        return Item(key, title, FAIL, f"the CK-free workload did not generate: {run.error}")
    embedding = generation.embedding
    details = {
        "prompt": list(generation.prompt),
        "reference_tokens": list(generation.reference),
        "tokens": list(generation.tokens),
        "token_match": generation.token_match,
        "embedding_cosine": embedding.cosine,
        "embedding_norm_ratio": embedding.norm_ratio,
        "embedding_nonfinite": embedding.nonfinite,
        "logits_cosine": generation.logits.cosine,
        "thresholds": {
            "token_match": thresholds.token_match,
            "embedding_cosine": thresholds.embedding_cosine,
            "norm_tolerance": thresholds.norm_tolerance,
        },
    }
    problems = []
    if not generation.token_match >= thresholds.token_match:
        problems.append(f"token match {generation.token_match:.1%} < {thresholds.token_match:.0%}")
    problems += [
        f"output embedding {problem}"
        for problem in layer_problems(embedding, thresholds.embedding_cosine, thresholds.norm_tolerance)
    ]
    measured = (
        f"token match {generation.matched}/{len(generation.reference)} ({generation.token_match:.1%}); "
        f"output embedding cosine {embedding.cosine:.5f}, norm ratio {embedding.norm_ratio:.4f}; "
        f"logits cosine {generation.logits.cosine:.5f}"
    )
    if problems:
        return Item(key, title, FAIL, "; ".join(problems) + f" ({measured})", details)
    return Item(
        key,
        title,
        PASS,
        measured + f" (min: match {thresholds.token_match:.0%}, embedding {thresholds.embedding_cosine})",
        details,
    )
