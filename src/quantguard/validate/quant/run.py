"""Run one quant→GEMM chain on one shape and judge it.

Three comparisons per case, because each catches a different bug:

* against the fp32 product of the unquantized operands (``x @ W^T``): the
  whole chain, quantization error included; judged by the scheme's cosine
  threshold and a norm-ratio band (cosine alone is blind to a dropped scale);
* against the precision-matched reference (the *same* quantized operands,
  dequantized with the scale layout the GEMM claims to read, fp32
  accumulation): the kernel alone, so the tolerance is tight;
* the scale layout and e8m0 rounding the producer actually wrote, against what
  the GEMM reads (:mod:`quantguard.validate.quant.layouts`).

With ``guards`` on, quantguard itself watches every call (all calls sampled,
blocks logged rather than raised) and its events are attached to the case.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from quantguard.numerics.metrics import Metrics, comparison_tensors, summarize
from quantguard.validate.quant.chains import Chain, QuantWeight, dequantize_activation
from quantguard.validate.quant.layouts import LayoutVerdict, analyse_layout
from quantguard.validate.quantize_kernels import UnsupportedPath

if TYPE_CHECKING:
    from quantguard.validate.quant.moe import MoePath

__all__ = [
    "STATUS_ORDER",
    "CaseResult",
    "Limits",
    "ScaleBuffer",
    "Shape",
    "buffer_info",
    "collect_events",
    "compare",
    "error_reason",
    "guarded",
    "judge",
    "run_case",
    "seeded_activation",
    "seeded_operands",
    "severity",
    "worst_status",
]

Shape = tuple[int, int, int]
#: A scale buffer as a kernel got it: (shape, strides, dtype name).
ScaleBuffer = tuple[tuple[int, ...], tuple[int, ...], str]


@dataclass(frozen=True)
class Limits:
    """What a case must reach: chain cosine and norm band per scheme, and the kernel-vs-matched cosine."""

    chain_cosine: float
    norm_tolerance: float
    matched_cosine: float


@dataclass
class CaseResult:
    """One chain on one shape (or a model's routed experts, a :class:`MoePath`, on M tokens).

    ``status``: PASS, FAIL, SKIP or ERROR.
    """

    chain: Chain | MoePath
    shape: Shape
    status: str
    reasons: list[str] = field(default_factory=list)
    chain_metrics: Metrics | None = None
    matched_metrics: Metrics | None = None
    layout: LayoutVerdict | None = None
    guard_findings: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: The scale buffers as the GEMM got them: {"x_scale"|"w_scale": (shape, strides, dtype)};
    #: routed experts: {"w1_scale"|"w2_scale": ...} as fused_moe got them.
    buffers: dict[str, ScaleBuffer] = field(default_factory=dict)


#: Case statuses, worst first: a group of cases (a chain, a measurement) has its worst case's status.
STATUS_ORDER = {"FAIL": 0, "ERROR": 1, "PASS": 2, "SKIP": 3}


def severity(case: CaseResult) -> tuple[int, int]:
    """Sort key, worst first: by status, then the larger M (its numbers are the more telling)."""
    return STATUS_ORDER[case.status], -case.shape[0]


def worst_status(cases: Sequence[CaseResult]) -> str:
    """The status of a group of cases: its worst case's (SKIP when it has none)."""
    return min((case.status for case in cases), key=STATUS_ORDER.__getitem__, default="SKIP")


def seeded_activation(generator: torch.Generator, m: int, k: int) -> torch.Tensor:
    """(m, k) fp32 normal values with a few outlier channels (x8), as real activations have."""
    x = torch.randn(m, k, generator=generator)
    x[:, torch.randperm(k, generator=generator)[: max(1, k // 64)]] *= 8.0
    return x


def seeded_operands(
    m: int, n: int, k: int, seed: int, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded bf16 activation (:func:`seeded_activation`) and ``weight`` or a seeded random (n, k) one, on the CPU."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + m * 7919 + n * 31 + k)
    x = seeded_activation(generator, m, k)
    w = weight if weight is not None else torch.randn(n, k, generator=generator) * 0.02
    return x.to(torch.bfloat16), w.to(torch.bfloat16)


def buffer_info(tensor: torch.Tensor) -> ScaleBuffer:
    """``tensor`` as a :attr:`CaseResult.buffers` entry."""
    return tuple(tensor.shape), tuple(tensor.stride()), str(tensor.dtype).replace("torch.", "")


def error_reason(exc: BaseException) -> str:
    """A kernel's exception as a case reason: its type and first line, at most 300 characters."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}"[:300]


def compare(out: torch.Tensor, ref: torch.Tensor) -> Metrics:
    """Cosine, norm ratio and the rest of :func:`summarize` of ``out`` against ``ref``."""
    values = {key: tensor.tolist() for key, tensor in comparison_tensors(out.float(), ref.float()).items()}
    return summarize(values)


def judge(result: CaseResult, limits: Limits) -> None:
    """PASS or FAIL from the metrics, layout and findings already on ``result`` (earlier reasons count too)."""
    chain, matched, layout = result.chain_metrics, result.matched_metrics, result.layout
    reasons = result.reasons
    assert chain is not None
    # Root causes first: what the producer wrote, then whether the kernel computes what its inputs say.
    if layout is not None and not layout.ok:
        reasons.append(f"scale layout: {layout.summary}")
    if matched is None:
        reasons.append("the activation scales cannot be read in the layout the GEMM expects")
    elif matched.cosine < limits.matched_cosine or abs(matched.norm_ratio - 1.0) > 1.0 - limits.matched_cosine + 1e-3:
        reasons.append(
            f"kernel vs its precision-matched reference: cosine {matched.cosine:.6f}, "
            f"norm ratio {matched.norm_ratio:.4g} (the GEMM does not compute what its inputs say)"
        )
    if chain.nonfinite:
        reasons.append(f"{chain.nan} NaN and {chain.inf} Inf in the output")
    if chain.cosine < limits.chain_cosine:
        reasons.append(f"cosine vs fp32 {chain.cosine:.4f} < {limits.chain_cosine}")
    if abs(chain.norm_ratio - 1.0) > limits.norm_tolerance:
        reasons.append(f"norm ratio vs fp32 {chain.norm_ratio:.4g} outside 1 ± {limits.norm_tolerance}")
    reasons.extend(f"quantguard: {finding}" for finding in result.guard_findings)
    result.status = "FAIL" if reasons else "PASS"


def _describe_event(event: Mapping[str, Any]) -> str:
    target = str(event.get("target", "")).rsplit(".", 1)[-1]
    if event["event"] == "quantguard.blocked":
        return f"blocked {target}: {event.get('reason', '')}"
    return f"{event.get('check')} on {target}: {event.get('message', '')}"


def collect_events(result: CaseResult, events: list | None, first: int) -> None:
    """quantguard's blocks and (first) findings since ``events[first]``, onto ``result``."""
    if events is None:
        return
    for event in events[first:]:
        if event["event"] == "quantguard.blocked":
            result.blocked.append(_describe_event(event))
        elif event["event"] == "quantguard.violation" and not (event.get("details") or {}).get("repeat"):
            result.guard_findings.append(_describe_event(event))


def run_case(
    chain: Chain,
    shape: Shape,
    weight: QuantWeight,
    x: torch.Tensor,
    reference: torch.Tensor,
    limits: Limits,
    events: list | None = None,
) -> CaseResult:
    """Quantize ``x``, run the chain's GEMM, compare; never raises for a failing kernel."""
    started = time.perf_counter()
    result = CaseResult(chain, shape, "PASS")
    first = len(events) if events is not None else 0
    try:
        operands = chain.prepare(weight)
        quantized = chain.quantize(x)
        out = chain.run_gemm(quantized, operands, chain.out_dtype)
    except UnsupportedPath as exc:
        result.status, result.reasons = "SKIP", [str(exc)]
        return result
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a kernel (or a JIT build) failing is the finding
        result.status, result.reasons = "ERROR", [error_reason(exc)]
        result.seconds = time.perf_counter() - started
        return result
    m, n, _ = shape
    out = out.reshape(m, n)
    for key, tensor in (("x_scale", quantized.scales), ("w_scale", operands.get("scale"))):
        if tensor is not None and quantized.encoding != "none":
            result.buffers[key] = buffer_info(tensor)
    result.chain_metrics = compare(out, reference)
    layout = chain.layout_for(m)
    activation = dequantize_activation(quantized, layout)
    if activation is not None:
        matched = (activation @ weight.dequantized.T).to(out.dtype)
        result.matched_metrics = compare(out, matched)
    result.layout = analyse_layout(quantized, x, layout)
    collect_events(result, events, first)
    judge(result, limits)
    result.seconds = time.perf_counter() - started
    return result


@contextmanager
def guarded(arch: str, ck_free: bool, enabled: bool, log: str = os.devnull) -> Iterator[list | None]:
    """quantguard on for the whole run (every call sampled, blocks logged); yields the live event list."""
    if not enabled:
        yield None
        return
    import quantguard
    from quantguard.testing import capture_events

    with capture_events() as events:
        quantguard.enable(
            mode="log",
            sample_rate=1.0,
            sample_first=1_000_000,
            on_block="log",
            gfx=arch,
            ck_free=ck_free,
            log=log,
            summary_at_exit=False,
            label="validate-quant",
        )
        try:
            yield events
        finally:
            quantguard.disable()
