"""Shadow numerics for GEMMs (``numerics``): sampled calls against precision-matched and chain references.

Precision-matched (always): the kernel's own quantized inputs, read the way
the kernel claims to read them; a layout or scale bug is a collapse (ASM on
gfx950 CK-free: cosine 0.006), not noise.  Chain (when provenance knows the
activation before quantization): the whole quant→GEMM chain against the
unquantized product — this is what catches a producer that wrote the wrong
layout into memory the GEMM then read "correctly".  Each verdict checks
cosine (direction), norm ratio (magnitude: a dropped scale keeps cosine at
1.0) and SQNR, and names which failed with the measured value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import dtype_name
from quantguard.checks.base import DataCheck, Finding, Measurement, ShadowResult, register_check
from quantguard.contracts.views import GemmView
from quantguard.numerics.dequant import quantize_dequantize
from quantguard.numerics.metrics import comparison_tensors, slice_tensors, summarize, worst_slices
from quantguard.shadow.fused import fused_operands, fused_stats, split_stats
from quantguard.shadow.references import (
    chain_reference,
    dequantize_w_columns,
    dequantize_x_rows,
    matched_reference,
    output_columns,
    select_columns,
    select_rows,
)
from quantguard.shadow.thresholds import Comparison, compare_tensors, comparison_for, tolerance_for

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["GemmNumerics"]


def _family(view: GemmView) -> str:
    if view.scheme == "mx":
        return "mxfp4"
    element = view.element
    return element.family if element is not None else "fp8"


def _precision(call: CallRecord) -> torch.dtype:
    return torch.float64 if call.config.shadow_precision == "fp64" else torch.float32


def _comparison(call: CallRecord, out_dtype: torch.dtype) -> Comparison:
    """How this call's precision-matched reference is compared (``shadow_compare``; cosine by default)."""
    config = call.config
    return comparison_for(config.shadow_compare, call.target, call.layer, out_dtype, config.shadow_allclose)


def _add_comparison(
    snap: Mapping[str, Any], context: dict[str, Any], tensors: dict[str, Any], out: torch.Tensor, ref: torch.Tensor
) -> None:
    """The exact/allclose statistics of the matched reference, when ``shadow_compare`` asks for them."""
    comparison = snap.get("comparison")
    if comparison is not None:
        tensors.update(compare_tensors(out, ref, comparison, "m_"))
        context["comparison"] = comparison


def _out_2d(view: GemmView) -> torch.Tensor | None:
    out = view.out
    if not isinstance(out, torch.Tensor):
        return None
    if view.batch is not None:
        return out.transpose(0, 1) if view.notes.get("transpose_bm") else out
    return out.reshape(-1, out.shape[-1])


def _worst_slices(values: Mapping[str, Any], prefix: str, context: Mapping[str, Any]) -> dict[str, Any] | None:
    """The worst compared row and column (their real indices) and their SQNR, if measured."""
    worst = worst_slices(values, prefix)
    if worst is None:
        return None
    row_sqnr, row_position, column_sqnr, column_position = worst
    rows, columns = context["rows"].indices(), context["columns"].columns()
    return {
        "worst_row": rows[row_position % len(rows)] if rows else None,
        "worst_row_sqnr_db": row_sqnr,
        "worst_column": columns[column_position] if column_position < len(columns) else None,
        "worst_column_sqnr_db": column_sqnr,
    }


#: Fewest values a row or column needs before its own SQNR is judged: one output of a short
#: column (decode, M = 1) can be a near-cancellation whose bf16 rounding alone is -20 dB.
MIN_SLICE_VALUES = 8


def _slice_failures(worst: Mapping[str, Any], sqnr_db: float, rows: int, columns: int) -> list[str]:
    """A fault confined to one tile: its rows or columns fail although the pooled metrics pass.

    A row holds ``columns`` compared values and a column ``rows``; an axis
    whose slices are shorter than ``MIN_SLICE_VALUES`` is left to the pooled
    metrics.
    """
    failed = []
    for axis, length in (("row", columns), ("column", rows)):
        if length < MIN_SLICE_VALUES:
            continue
        value = worst[f"worst_{axis}_sqnr_db"]
        if not value >= sqnr_db:
            failed.append(f"{axis} {worst[f'worst_{axis}']} SQNR {value:.1f} dB < {sqnr_db} dB")
    return failed


def _coverage(context: Mapping[str, Any]) -> dict[str, Any]:
    rows, columns = context["rows"], context["columns"]
    return {"rows_compared": len(rows), "columns_compared": len(columns.blocks) * columns.size}


@register_check
class GemmNumerics(DataCheck):
    name = "gemm_numerics"
    reports = ("numerics",)
    summary = "rows and column blocks of every tile against precision-matched and chain references"

    def snapshot(self, call: CallRecord) -> None:
        view = call.view
        if not isinstance(view, GemmView) or not call.config.shadow or view.w is None:
            return
        out = _out_2d(view)
        if out is None:
            return
        # a different share of rows and columns on every sampled call: a random offset inside each
        # tile (seeded sampler) and, when there are more tiles than the budget, a rotating subset
        memo = call.state.memo
        turn = memo["gemm_numerics.turn"] = memo.get("gemm_numerics.turn", -1) + 1
        draw = call.runtime.sampler.draw
        rows = select_rows(view.m, call.config.shadow_full, draw(), turn, call.config.shadow_rows)
        layout = view.shuffle_layout
        columns = select_columns(view.n, call.config.shadow_full, draw(), layout[0] if layout else None, turn)
        snap: dict[str, Any] = {"rows": rows, "columns": columns, "out_dtype": out.dtype}
        operands = fused_operands(view, out, _precision(call))
        comparison = _comparison(call, out.dtype)
        if comparison.strict:  # exact/allclose need the reference's values, not the fused kernels' statistics
            snap["comparison"], operands = comparison, "exact or allclose comparison"
        # the fused reference: two launches on this stream, right after the kernel, no operand copies
        fused = None if isinstance(operands, str) else fused_stats(view, out, rows, columns, operands)
        if fused is not None:
            snap["fused"] = fused
        elif view.batch is not None:
            snap["x"] = rows.take(view.x, 1).clone()
            snap["out"] = rows.take(out, 1).clone()
        else:
            snap["x"] = rows.take(view.x.reshape(-1, view.x.shape[-1])).clone()
            snap["out"] = rows.take(out).clone()
            snap["x_scale"] = (
                view.x_scale.detach().clone(memory_format=torch.preserve_format) if view.x_scale is not None else None
            )
        if view.batch is None:
            produced = (call.scratch.get("provenance") or {}).get("activation") or call.runtime.provenance.lookup(
                view.x
            )
            if produced is not None and produced.role == "quantized" and produced.attributes.get("rows") == view.m:
                chain_rows = produced.attributes["selected"]
                snap["chain_x"] = produced.attributes["x_rows"]
                snap["chain_out"] = out[chain_rows].clone()
                snap["chain_producer"] = produced.producer
        call.scratch["gemm_numerics"] = snap

    def measure(self, call: CallRecord) -> Measurement | None:
        snap = call.scratch.get("gemm_numerics")
        if snap is None:
            return None
        view = call.view
        precision = _precision(call)
        columns, out_dtype = snap["columns"], snap["out_dtype"]
        context: dict[str, Any] = {"rows": snap["rows"], "columns": columns, "out_dtype": dtype_name(out_dtype)}
        w_deq = dequantize_w_columns(view, columns) if "fused" not in snap or "chain_x" in snap else None
        if "fused" in snap:
            tensors: dict[str, torch.Tensor] = split_stats(snap["fused"])
            context["reference_kernels"] = "fused"
        else:
            if w_deq is None:
                return None
            tensors = {}
            if view.scheme == "batched_prequant":
                # the per-token-group quantization the kernel applies to x, dequantized again
                x_deq = quantize_dequantize(snap["x"], view.block_k, view.w.dtype)
                reference = matched_reference(view, x_deq, w_deq, columns, out_dtype, precision)
                compared = output_columns(snap["out"], columns)
                tensors.update(comparison_tensors(compared, reference, "m_"))
                tensors.update(slice_tensors(compared, reference, "m_"))
                _add_comparison(snap, context, tensors, compared, reference)
                tensors.update(
                    comparison_tensors(compared, chain_reference(snap["x"], w_deq, view, columns, precision), "c_")
                )
                context["chain_producer"] = "in-kernel quantization"
                return Measurement(tensors, context)
            x_deq = dequantize_x_rows(view, snap["x"], snap.get("x_scale"), snap["rows"])
            if x_deq is not None:
                reference = matched_reference(view, x_deq, w_deq, columns, out_dtype, precision)
                compared = output_columns(snap["out"], columns)
                tensors.update(comparison_tensors(compared, reference, "m_"))
                tensors.update(slice_tensors(compared, reference, "m_"))
                _add_comparison(snap, context, tensors, compared, reference)
        if "chain_x" in snap and w_deq is not None:
            reference = chain_reference(snap["chain_x"], w_deq, view, columns, precision)
            tensors.update(comparison_tensors(output_columns(snap["chain_out"], columns), reference, "c_"))
            context["chain_producer"] = snap["chain_producer"]
        return Measurement(tensors, context) if tensors else None

    def judge(
        self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]
    ) -> Iterable[Finding | ShadowResult]:
        view = call.view
        family = _family(view)
        outcomes: list[Finding | ShadowResult] = []
        shapes = {
            "x": list(view.x.shape),
            "w": list(view.w.shape),
            "x_scale": list(view.x_scale.shape) if view.x_scale is not None else None,
            "w_scale": list(view.w_scale.shape) if view.w_scale is not None else None,
        }
        dtypes = {
            "x": dtype_name(view.x.dtype),
            "w": dtype_name(view.w.dtype),
            "x_scale": dtype_name(view.x_scale.dtype) if view.x_scale is not None else None,
            "out": measurement.context["out_dtype"],
        }
        for prefix, kind, label in (
            ("m_", "matched", "precision-matched reference"),
            ("c_", "chain", "unquantized quant→GEMM chain"),
        ):
            if prefix + "stats" not in values:
                continue
            metrics = summarize(values, prefix)
            tolerance = tolerance_for(kind, family, call.target, call.layer, call.config.thresholds)
            failures = tolerance.failures(metrics.cosine, metrics.norm_ratio, metrics.sqnr_db, metrics.nonfinite)
            comparison = measurement.context.get("comparison") if kind == "matched" else None
            compared = values.get("m_compare") if comparison is not None else None
            if compared is not None:
                failures += comparison.failures(compared)
            worst = _worst_slices(values, prefix, measurement.context)
            if worst and not failures:
                context = measurement.context
                failures = _slice_failures(
                    worst,
                    tolerance.sqnr_db,
                    len(context["rows"]),
                    len(context["columns"].blocks) * context["columns"].size,
                )
            fields = {
                "reference": kind,
                **metrics.as_dict(),
                "threshold": tolerance.cosine,
                "passed": not failures,
                "shapes": shapes,
                "dtypes": dtypes,
                "family": family,
                **(worst or {}),
                **(_coverage(measurement.context) if kind == "matched" else {}),
                **(comparison.fields(compared) if compared is not None else {}),
            }
            if kind == "chain":
                fields["producer"] = measurement.context.get("chain_producer")
            else:
                fields["reference_kernels"] = measurement.context.get("reference_kernels", "torch")
            outcomes.append(ShadowResult(fields, not failures, metrics.cosine))
            if failures:
                outcomes.append(
                    Finding(
                        "numerics",
                        f"output vs {label}: {'; '.join(failures)}",
                        details={
                            "reference": kind,
                            "failed": failures,
                            **metrics.as_dict(),
                            **(worst or {}),
                            "threshold_source": tolerance.source,
                            **(comparison.fields(compared) if compared is not None else {}),
                            "family": family,
                            "shapes": shapes,
                            "dtypes": dtypes,
                        },
                        variant=kind,
                    )
                )
        return outcomes
