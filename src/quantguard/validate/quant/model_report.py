"""``validate quant --model`` results: per-layer verdicts, scale layouts, recommendations, live-server steps.

The terminal groups layers that share a measurement (their names compressed
to ``model.layers.{0-2,5}.self_attn.q_proj``); the markdown report and the
JSON list every layer. Recommendations name the kwarg, backend and ATOM
switch to change, reusing :mod:`quantguard.report.recommendations`' advice.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quantguard import environment_variables as qg_env
from quantguard._tables import markdown_table
from quantguard.numerics.formats import MODE_NAMES
from quantguard.report.recommendations import recommend
from quantguard.validate.quant.model import AtomEnv, ModelSpec
from quantguard.validate.quant.model_run import LayerResult, Measurement, expected_x_scale
from quantguard.validate.quant.moe import MoePath, expected_expert_scales, scales_ok
from quantguard.validate.quant.report import metrics_json
from quantguard.validate.quant.run import STATUS_ORDER, CaseResult, ScaleBuffer

__all__ = ["ModelHeader", "console", "live_server_steps", "markdown", "recommendations", "to_json"]

#: Below this cosine an output is garbage (recommendations.py's threshold for "collapsed").
_COLLAPSED = 0.5


@dataclass(frozen=True)
class ModelHeader:
    spec: ModelSpec
    environment: str
    arch: str
    env: AtomEnv
    tokens: tuple[int, ...]
    guards: bool
    seed: int
    seconds: float


@dataclass(frozen=True)
class Recommendation:
    """One fix for the layers of one failing chain: what is wrong, what to change, and the general advice."""

    chain: str
    layers: tuple[str, ...]
    problem: str
    fix: str
    advice: tuple[tuple[str, str], ...]


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "—"
    return "inf" if math.isinf(value) else (f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}")


def compress_names(names: Sequence[str]) -> str:
    """``model.layers.{0-2,5}.mlp.down_proj``: names differing only in their layer index, in one pattern."""
    groups: dict[str, list[int]] = {}
    others: list[str] = []
    for name in names:
        match = re.search(r"\.layers\.(\d+)\.", name)
        if match:
            groups.setdefault(name[: match.start(1)] + "{}" + name[match.end(1) :], []).append(int(match.group(1)))
        else:
            others.append(name)
    parts = []
    for pattern, indices in groups.items():
        if len(indices) == 1:
            parts.append(pattern.replace("{}", str(indices[0])))
            continue
        ranges, start = [], indices[0]
        for previous, current in zip(indices, [*indices[1:], None], strict=True):
            if current is None or current != previous + 1:
                ranges.append(str(start) if start == previous else f"{start}-{previous}")
                start = current if current is not None else start
        parts.append(pattern.replace("{}", "{" + ",".join(ranges) + "}"))
    return ", ".join(parts + others)


def _measurements(results: Sequence[LayerResult]) -> list[tuple[Measurement, list[str]]]:
    grouped: dict[int, tuple[Measurement, list[str]]] = {}
    for result in results:
        if result.measurement is not None:
            grouped.setdefault(id(result.measurement), (result.measurement, []))[1].append(result.layer.name)
    return list(grouped.values())


def _scale_written(case: CaseResult) -> str:
    if isinstance(case.chain, MoePath):
        return "; ".join(f"{key} {tuple(shape)} {dtype}" for key, (shape, _, dtype) in case.buffers.items()) or "—"
    buffer = case.buffers.get("x_scale")
    if buffer is None:
        return "—"
    return _buffer_text(buffer) + (f"; {case.layout.summary}" if case.layout is not None else "")


def _buffer_text(buffer: ScaleBuffer | None) -> str:
    if buffer is None:
        return "—"
    shape, strides, dtype = buffer
    return f"{shape} strides {strides} {dtype}"


def _scale_expected(measurement: Measurement, case: CaseResult) -> str:
    if isinstance(measurement.chain, MoePath):
        expected = expected_expert_scales(measurement.chain)
        return "; ".join(f"{key} {shape} {dtype}" for key, (shape, dtype) in expected.items())
    m = case.shape[0]
    expected = expected_x_scale(measurement.chain, m, measurement.k)
    return f"{expected['shape']} {expected['dtype']}, {expected['order']}" + (
        "" if not expected["shuffled"] else " (shuffled)"
    )


def _layout_ok(case: CaseResult) -> bool:
    if isinstance(case.chain, MoePath):  # the expert scales as fused_moe got them (its activation scales are internal)
        return not case.buffers or scales_ok(case.chain, case)
    return case.layout is None or case.layout.ok


def _metric(case: CaseResult, attribute: str, key: str) -> float | None:
    metrics = getattr(case, attribute)
    return None if metrics is None else getattr(metrics, key)


# -- recommendations ------------------------------------------------------------------------------


def _kwargs(call: Any, keys: tuple[str, ...]) -> list[str]:
    return [f"`{key}={value!r}`" for key, value in (call.arguments if call else ()) if key in keys]


def _call_name(call: Any) -> str:
    """``gemm_a8w8_CK``; ``tgemm.mm`` where the function is a method."""
    owner, _, name = call.path.rpartition(".")
    return f"{owner.rpartition('.')[2]}.{name}" if owner.endswith("tgemm") else name


def _raised(called: str, case: CaseResult) -> tuple[str, str, dict[str, list[str]]]:
    """(problem text, advice kind, hints) for a case that raised in ``called``."""
    reason = case.reasons[0] if case.reasons else "raised"
    kind = "jit_exit" if "SystemExit" in reason else "internal_error"
    return f"{called} raised: {reason}", kind, {}


def _moe_problem(path: MoePath, case: CaseResult) -> tuple[str, str, dict[str, list[str]]]:
    """(problem text, advice kind, hints) for failing routed experts: the routing kernel or fused_moe."""
    routing = path.moe.routing.rsplit(".", 1)[-1]
    if case.status == "ERROR":
        return _raised(f"`{routing}` or `fused_moe`" if routing else "`fused_moe`", case)
    routed = [reason for reason in case.reasons if reason.startswith("routing:")]
    if routed:
        hint = "norm_ratio" if any("topk_weights" in reason for reason in routed) else "direction"
        return f"`{routing}` {'; '.join(r.removeprefix('routing: ') for r in routed)}", "numerics", {hint: [routing]}
    cosine, norm = _metric(case, "matched_metrics", "cosine"), _metric(case, "matched_metrics", "norm_ratio")
    if cosine is not None and cosine > 0.99 and norm is not None and abs(norm - 1) > 0.05:
        text = (
            f"`fused_moe` output is {norm:.4g}x the right magnitude with the direction right: it drops or "
            "doubles a scale (`w1_scale`/`w2_scale`, its activation scales, or the routing weights)"
        )
        return text, "numerics", {"norm_ratio": ["fused_moe"]}
    return (
        f"`fused_moe` does not compute what its inputs say: {case.reasons[0] if case.reasons else ''}",
        "numerics",
        {"direction": ["fused_moe"]},
    )


def _problem(measurement: Measurement, case: CaseResult) -> tuple[str, str, dict[str, list[str]]]:
    """(problem text, advice kind, hints) for a failing case."""
    if isinstance(measurement.chain, MoePath):
        return _moe_problem(measurement.chain, case)
    spec = measurement.chain.spec
    quant, gemm = (spec.quant.name if spec.quant else "none"), (_call_name(spec.gemm) if spec.gemm else spec.note)
    if case.status == "ERROR":
        return _raised(f"`{gemm}`", case)
    layout = case.layout
    if layout is not None and not layout.ok:
        if layout.expected in layout.written:  # layout right, e8m0 rounding wrong
            observed = ", ".join(MODE_NAMES[mode] for mode in layout.rounding) or "in no known mode"
            declared = MODE_NAMES.get(layout.declared_rounding or "", layout.declared_rounding)
            return (
                f"`{quant}` rounds its e8m0 scales {observed}; AITER declares {declared} for it "
                "(the scales of part of the blocks are one power of two off)",
                "e8m0_rounding",
                {},
            )
        flags = _kwargs(spec.quant, ("transpose_scale", "shuffle", "shuffle_scale"))
        reads = _kwargs(spec.gemm, ("is_x_scale_tranposed",))
        written = layout.summary.split("; GEMM reads")[0].removeprefix("written ")
        expected = expected_x_scale(measurement.chain, case.shape[0], measurement.k)["order"]
        ignored = f"ignored {' and '.join(flags)}" if flags else "wrote another layout than its GEMM reads"
        return (
            f"`{quant}` {ignored}: it wrote x_scale {written}, and `{gemm}`"
            + (f" ({', '.join(reads)})" if reads else "")
            + f" reads {expected}",
            "kwarg_ignored",
            {"layout": [quant]},
        )
    cosine, norm = _metric(case, "chain_metrics", "cosine"), _metric(case, "chain_metrics", "norm_ratio")
    if cosine is not None and cosine < _COLLAPSED:
        hint = "collapsed"
        text = f"`{gemm}` returns garbage (cosine {_number(cosine)} vs the 16-bit output)"
    elif cosine is not None and cosine > 0.99 and norm is not None and abs(norm - 1) > 0.05:
        hint = "norm_ratio"
        scales = "`scale_a`/`scale_b`" if measurement.chain.backend == "hipblaslt" else "`x_scale`/`w_scale`"
        text = (
            f"`{gemm}` output is {norm:.4g}x the right magnitude with the direction right: "
            f"it drops or doubles a scale ({scales})"
        )
    else:
        hint = "direction"
        text = f"`{gemm}` does not compute what its inputs say: {case.reasons[0] if case.reasons else ''}"
    return text, "numerics", {hint: [gemm]}


def _fix(measurement: Measurement, env: AtomEnv) -> str:
    if isinstance(measurement.chain, MoePath):
        return (
            f"no ATOM switch moves {measurement.chain.moe.experts} routed FP8 experts off AITER's fused_moe "
            f"(current: {env.describe()}): fix {' / '.join(f'`{p}`' for p in measurement.chain.entry_points)} "
            "or use an AITER build where this passes"
        )
    passing = [alt for alt in measurement.alternatives if alt.status == "PASS"]
    if passing:
        alt = passing[0]
        settings = " and ".join(f"`{key}={int(value)}`" for key, value in alt.settings.items())
        cosine = min(c.chain_metrics.cosine for c in alt.cases if c.chain_metrics is not None)
        return (
            f"set {settings} (backend {alt.chain.backend}): ATOM then runs `{alt.chain.name}` "
            f"({alt.chain.quant} -> {alt.chain.gemm}), which passed on the same operands (cosine {cosine:.4f})"
        )
    tried = ", ".join(f"{alt.chain.name} {alt.status}" for alt in measurement.alternatives)
    producers = {alt.chain.spec.quant.path for alt in measurement.alternatives if alt.chain.spec.quant}
    quant = measurement.chain.spec.quant
    if measurement.alternatives and quant is not None and producers == {quant.path}:
        return (
            f"every chain ATOM can pick here quantizes with `{quant.name}` (tried {tried}), so no ATOM switch "
            f"avoids it: fix `{quant.name}` in AITER (or use a build where it passes)"
        )
    return (
        "no other setting of ATOM's switches passes on this build"
        + (f" (tried {tried})" if tried else "")
        + f"; current: {env.describe()}. Fix the kernel named above or use an AITER build where it passes"
    )


def recommendations(results: Sequence[LayerResult], env: AtomEnv) -> list[Recommendation]:
    """One recommendation per failing measurement kind, naming its layers."""
    found: dict[tuple[str, str], Recommendation] = {}
    for measurement, names in _measurements(results):
        if measurement.status not in ("FAIL", "ERROR"):
            continue
        case = measurement.worst_case()
        problem, kind, hints = _problem(measurement, case)
        if isinstance(measurement.chain, MoePath):
            targets = [path.rsplit(".", 1)[-1] for path in measurement.chain.entry_points]
            producers = ["get_hip_quant"]
        else:
            spec = measurement.chain.spec
            producers = [spec.quant.name] if spec.quant else []
            targets = [_call_name(spec.gemm)] if spec.gemm else [measurement.chain.name]
        advice = recommend(kind, targets, producers, hints).items
        if case.blocked:
            advice += recommend("blocked", targets).items
        key = (measurement.chain.name, kind, tuple(hints))
        if key in found:
            old = found[key]
            found[key] = Recommendation(old.chain, old.layers + tuple(names), old.problem, old.fix, old.advice)
        else:
            found[key] = Recommendation(measurement.chain.name, tuple(names), problem, _fix(measurement, env), advice)
    return list(found.values())


def live_server_steps(header: ModelHeader) -> list[str]:
    """How to confirm on a running server: a fixed greedy prompt with logprobs, and what bad looks like."""
    return [
        "Start the server with the settings under test (and again with the recommended ones), then run:",
        "",
        "```sh",
        "curl -s http://localhost:8000/v1/completions -H 'Content-Type: application/json' -d '{"
        '"model": "<served model name>", "prompt": "The capital of France is", "max_tokens": 32, '
        '"temperature": 0, "logprobs": 5, "seed": 0}\' '
        "| jq '.choices[0].text, .choices[0].logprobs.token_logprobs'",
        "```",
        "",
        "Compare the text and `token_logprobs` against the same request on a reference: the unquantized "
        "(BF16/FP16) model, or this server with the recommended setting if that already passed here.",
        "- good: the same greedy text for at least the first tokens; top-1 logprobs within about 0.1 nat of the "
        "reference for FP8 (0.3 for FP4); the reference's token among the top 5 where they diverge",
        "- bad: gibberish, one token repeated, empty text or NaN logprobs (garbage GEMM or wrong scale layout); "
        "fluent text with every logprob far from the reference or a flat top-5 (a dropped or doubled scale); "
        "divergence from the first token",
        f"- on quantguard's side: `{qg_env.QUANTGUARD_ENABLED}=1` in the server's environment logs the failing "
        "layer's findings for the same request",
    ]


# -- rendering ------------------------------------------------------------------------------------


def _counts(results: Sequence[LayerResult]) -> dict[str, int]:
    counts = dict.fromkeys(STATUS_ORDER, 0)
    for result in results:
        counts[result.status] += 1
    return counts


def _summary_line(header: ModelHeader, results: Sequence[LayerResult], measurements: int) -> str:
    counts = _counts(results)
    return (
        ", ".join(f"{count} {status}" for status, count in counts.items() if count)
        + f" layers ({measurements} measurements, {header.seconds:.1f} s)"
    )


def _shape(measurement: Measurement, wide: bool = False) -> str:
    if isinstance(measurement.chain, MoePath):
        moe = measurement.chain.moe
        count = f"{moe.experts}/{moe.model_experts}" if moe.model_experts else str(moe.experts)
        return moe.describe() if wide else f"{count}x {moe.hidden}x{moe.inter} top{moe.top_k}"
    rows = measurement.cases[0].shape[1] if measurement.cases else measurement.n
    return f"{measurement.n}x{measurement.k}" + (f" (N padded to {rows})" if rows != measurement.n else "")


def _row(number: int, measurement: Measurement) -> list[str]:
    case = measurement.worst_case()
    return [
        f"#{number}",
        _shape(measurement),
        measurement.chain.name,
        measurement.status,
        _number(_metric(case, "matched_metrics", "cosine"), 6),
        _number(_metric(case, "chain_metrics", "cosine")),
        _number(_metric(case, "chain_metrics", "norm_ratio")),
        "ok" if all(_layout_ok(c) for c in measurement.cases) else "MISMATCH",
    ]


_SHORT = ["#", "N x K", "chain (ATOM's)", "verdict", "cos match", "cos 16b", "norm", "x_scale"]
_LEGEND = (
    "cos match: cosine vs the precision-matched reference (same quantized operands, fp32 accumulation); "
    "cos 16b: vs the unquantized 16-bit model's output; norm: norm ratio vs it; x_scale: layout written vs read "
    "(experts: their w1/w2 scales vs ATOM's)"
)


def console(header: ModelHeader, results: Sequence[LayerResult], wide: bool = False) -> str:
    from quantguard.cli._console import indented, render, table

    def block(text: list[str]) -> str:
        return indented(text, wide).rstrip("\n")

    spec = header.spec
    measured = _measurements(results)
    lines = [
        block(
            [
                f"quantguard validate quant --model {spec.source} — {header.environment}",
                f"quant_method {spec.quant_method or '—'}; ATOM: {header.env.describe()}"
                + ("; CK-free: Triton forced" if header.env.ck_free else "")
                + f"; M = {', '.join(map(str, header.tokens))}; weights: {spec.weight_source}",
            ]
        ),
        "",
        render(
            table(_SHORT, [_row(number, m) for number, (m, _) in enumerate(measured, 1)], wide, {2: 32}),
            wide,
        ).rstrip("\n"),
    ]
    if not wide:
        lines.append(render(_LEGEND, wide).rstrip("\n"))
    lines += ["", "layers of each measurement:"]
    lines.append(block([f"#{n} ({len(names)}) {compress_names(names)}" for n, (_, names) in enumerate(measured, 1)]))
    skipped: dict[str, list[str]] = {}
    for result in results:
        if result.measurement is None:
            skipped.setdefault(result.note, []).append(result.layer.name)
    if skipped:
        lines += ["", "not run:"]
        lines.append(block([f"{compress_names(names)}: {note}" for note, names in skipped.items()]))
    bad_layouts = [(m, names) for m, names in measured if not all(_layout_ok(c) for c in m.cases)]
    if bad_layouts:
        lines += ["", "scale layout written vs expected:"]
        for measurement, names in bad_layouts:
            case = next(c for c in measurement.cases if not _layout_ok(c))
            lines.append(
                block(
                    [
                        f"{compress_names(names)} ({measurement.chain.name}, M={case.shape[0]}):",
                        f"  written  {_scale_written(case)}",
                        f"  expected {_scale_expected(measurement, case)}",
                    ]
                )
            )
    advice = recommendations(results, header.env)
    if advice:
        lines += ["", "recommendations:"]
        for item in advice:
            lines.append(block([f"{compress_names(item.layers)} ({item.chain}): {item.problem}", f"  fix: {item.fix}"]))
        lines.append(block(["full advice and live-server checks: the -o report"]))
    lines += ["", _summary_line(header, results, len(measured))]
    return "\n".join(lines) + "\n"


def markdown(header: ModelHeader, results: Sequence[LayerResult]) -> str:
    spec = header.spec
    counts = _counts(results)
    measured = _measurements(results)
    verdict = "FAIL" if counts["FAIL"] or counts["ERROR"] else "PASS"
    lines = [
        f"# quantguard validate quant --model: {verdict}",
        "",
        f"- model: {spec.description}; quant_method: {spec.quant_method or '—'}",
        f"- AITER: {header.environment}; arch: {header.arch}",
        f"- ATOM switches: {header.env.describe()}" + ("; CK-free build: Triton forced" if header.env.ck_free else ""),
        f"- activation rows M: {', '.join(map(str, header.tokens))}; seed {header.seed}; weights: {spec.weight_source}",
        f"- quantguard guards on every call: {'yes' if header.guards else 'no'}",
        f"- {_summary_line(header, results, len(measured))}",
        "",
        "## Layers",
        "",
        "Every layer; layers with the same shape, scheme and chain share one measurement (the `measurement` column).",
        "",
    ]
    index = {id(m): number for number, (m, _) in enumerate(measured, 1)}
    rows = []
    for result in results:
        layer, measurement = result.layer, result.measurement
        if measurement is None:
            shape = layer.moe.describe() if layer.moe else f"{layer.n}x{layer.k}"
            rows.append([layer.name, shape, layer.quant.label, "—", "SKIP", "—", "—", "—", "—", result.note])
            continue
        case = measurement.worst_case()
        rows.append(
            [
                layer.name,
                _shape(measurement, wide=True),
                layer.quant.label,
                f"{measurement.chain.name} (#{index[id(measurement)]})",
                measurement.status,
                _number(_metric(case, "matched_metrics", "cosine"), 6),
                _number(_metric(case, "chain_metrics", "cosine"), 6),
                _number(_metric(case, "chain_metrics", "norm_ratio")),
                "ok" if all(_layout_ok(c) for c in measurement.cases) else "MISMATCH",
                "; ".join(case.reasons),
            ]
        )
    lines += markdown_table(
        [
            "layer",
            "N x K",
            "ATOM quant",
            "chain (measurement)",
            "verdict",
            "cos vs matched",
            "cos vs 16-bit",
            "norm ratio",
            "x_scale",
            "reasons",
        ],
        rows,
    )
    lines += [
        "",
        "## Scale layouts",
        "",
        "x_scale as the producer wrote it (recomputed from its input) vs what the GEMM reads; w_scale as passed. "
        "Routed experts: the w1/w2 scales passed to fused_moe vs the shapes ATOM's FusedMoE holds "
        "(fused_moe quantizes its activations inside).",
        "",
    ]
    layout_rows = []
    for number, (measurement, names) in enumerate(measured, 1):
        for case in measurement.cases:
            layout_rows.append(
                [
                    f"#{number} {compress_names(names)}",
                    str(case.shape[0]),
                    measurement.chain.name,
                    _scale_written(case),
                    _scale_expected(measurement, case),
                    _buffer_text(case.buffers.get("w_scale")),
                    "ok" if _layout_ok(case) else "MISMATCH",
                ]
            )
    lines += markdown_table(
        ["measurement", "M", "chain", "x_scale written", "x_scale expected", "w_scale", "verdict"], layout_rows
    )
    lines += ["", "## Recommendations", ""]
    advice = recommendations(results, header.env)
    if not advice:
        lines.append("None: every measured layer passed.")
    for item in advice:
        lines += [
            f"### {item.chain}: {len(item.layers)} layers",
            "",
            f"- layers: {compress_names(item.layers)}",
            f"- problem: {item.problem}",
            f"- **fix**: {item.fix}",
        ]
        lines += [f"- look: {look}\n- change: {change}" for look, change in item.advice]
        lines.append("")
    failing = [m for m, _ in measured if m.alternatives]
    if failing:
        lines += ["Other chains tried on the failing operands:", ""]
        lines += markdown_table(
            ["chain", "ATOM switches", "on", "verdict", "cos vs 16-bit"],
            [
                [
                    alt.chain.name,
                    ", ".join(f"{key}={int(value)}" for key, value in alt.settings.items()),
                    f"{m.n}x{m.k}",
                    alt.status,
                    _number(min((c.chain_metrics.cosine for c in alt.cases if c.chain_metrics), default=None)),
                ]
                for m in failing
                for alt in m.alternatives
            ],
        )
        lines.append("")
    lines += ["## Confirm on a live server", ""] + live_server_steps(header)
    return "\n".join(lines) + "\n"


def to_json(header: ModelHeader, results: Sequence[LayerResult]) -> dict[str, Any]:
    def case_json(case: CaseResult) -> dict[str, Any]:
        return {
            "m": case.shape[0],
            "status": case.status,
            "reasons": case.reasons,
            "vs_matched": metrics_json(case.matched_metrics),
            "vs_16bit": metrics_json(case.chain_metrics),
            "scale_buffers": {
                key: {"shape": list(s), "strides": list(t), "dtype": d} for key, (s, t, d) in case.buffers.items()
            },
            "scale_layout": None
            if case.layout is None
            else {"expected": case.layout.expected, "written": list(case.layout.written), "ok": case.layout.ok},
            "seconds": case.seconds,
        }

    advice = recommendations(results, header.env)
    return {
        "model": header.spec.source,
        "quant_method": header.spec.quant_method,
        "environment": header.environment,
        "arch": header.arch,
        "atom_env": dict(header.env.values),
        "ck_free": header.env.ck_free,
        "tokens": list(header.tokens),
        "seconds": header.seconds,
        "passed": not any(result.status in ("FAIL", "ERROR") for result in results),
        "layers": [
            {
                "name": result.layer.name,
                "n": result.layer.n,
                "k": result.layer.k,
                "quant_type": result.layer.quant.quant_type,
                "quant_dtype": result.layer.quant.quant_dtype,
                "scheme": result.layer.scheme,
                "moe": None if result.layer.moe is None else dataclasses.asdict(result.layer.moe),
                "status": result.status,
                "note": result.note,
                "chain": result.measurement.chain.name if result.measurement else None,
                "cases": [case_json(case) for case in result.measurement.cases] if result.measurement else [],
                "alternatives": [
                    {"chain": alt.chain.name, "settings": alt.settings, "status": alt.status}
                    for alt in (result.measurement.alternatives if result.measurement else [])
                ],
            }
            for result in results
        ],
        "recommendations": [
            {
                "chain": item.chain,
                "layers": list(item.layers),
                "problem": item.problem,
                "fix": item.fix,
                "advice": [list(pair) for pair in item.advice],
            }
            for item in advice
        ],
    }
