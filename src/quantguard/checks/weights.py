"""Weight-load scan: silent loading bugs in a model's parameters.

Incidents this catches: ``copy_`` from an FP8 checkpoint into a BF16
parameter dropped the block scale (weights 2768x too large, still
"nonzero"); ``copy_`` of float8_e8m0fnu scales into a uint8 parameter wrote
zeros (numeric conversion instead of a byte view); NaN/Inf; parameters that
were never loaded.  "Nonzero" is not "correct", so magnitudes are compared
with what the format and the scale imply:

* a high-precision weight whose values all sit on the FP8 (e4m3) grid with an
  amax near the FP8 maximum is FP8 data that lost its scale (``weight_magnitude``);
* a dequantized FP8 weight (values x its scale) far above any sane weight
  magnitude means a scale was dropped or inverted (``weight_magnitude``);
* uint8/e8m0 scales that are all zero, or whose bytes are all tiny (< 64,
  i.e. 2^-127..2^-64) are numeric copies of e8m0 values (``scale_values``);
* all-zero weights were never loaded (``unloaded_parameter``).

A weight is paired with its scale by name: ``<name>`` with ``<name>_scale``,
so dense linears (``weight``/``weight_scale``) and ATOM's MoE experts
(``w13_weight``/``w13_weight_scale``, ``w2_weight``/``w2_weight_scale``) are
judged the same way.

Each such pair is also registered with the runtime's provenance
(:class:`~quantguard.engine.provenance.WeightPairs`), so a GEMM handed the
weight with any other scale is reported (``scale_pairing``, see
:mod:`quantguard.checks.pairing`).  Registering again (a requantization that
goes through the loader again, a second scan) replaces the layer's pair.

Large tensors are checked on an evenly strided sample of at most a million
elements.  Used by :func:`quantguard.scan_weights` and, when ATOM is loaded,
after its ``process_weights_after_loading``: a layer's own method, or (ATOM
main, MoE) the quant method's ``process_weights_after_loading(layer)``, which
the loader calls after the layer's and which rewrites the expert weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from quantguard.checks._common import dtype_name
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.numerics.dequant import fp8_values
from quantguard.numerics.formats import FP8_E4M3FN, FP8_E4M3FNUZ, element_format

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = [
    "scan_tensors",
    "scale_name",
    "register_weight_pairs",
    "register_attached_models",
    "WeightScan",
]

_SAMPLE = 1 << 20
#: Largest plausible magnitude of a dequantized LLM weight.
_MAX_WEIGHT = 64.0
#: e8m0 weight-scale bytes below this are 2^-64 or smaller: not real scales.
_TINY_E8M0 = 64


def _sample(tensor: torch.Tensor) -> torch.Tensor:
    flat = tensor.detach().reshape(-1)
    if flat.numel() <= _SAMPLE:
        return flat
    return flat[:: flat.numel() // _SAMPLE + 1]


def _is_scale(name: str) -> bool:
    return "scale" in name.rsplit(".", 1)[-1]


def scale_name(weight_name: str) -> str | None:
    """The parameter holding ``weight_name``'s scale: ``x.weight`` → ``x.weight_scale``, ``x.w13_weight`` → ``x.w13_weight_scale``."""
    return weight_name + "_scale" if weight_name.endswith("weight") else None


def _on_fp8_grid(values: torch.Tensor) -> tuple[bool, str]:
    for fmt, dtype in ((FP8_E4M3FN, torch.float8_e4m3fn), (FP8_E4M3FNUZ, torch.float8_e4m3fnuz)):
        clamped = values.clamp(-fmt.max, fmt.max)
        if bool((clamped.to(dtype).to(torch.float32) == values).all()) and bool((values.abs() <= fmt.max).all()):
            return True, fmt.name
    return False, ""


def _scan_one(name: str, tensor: torch.Tensor, scales: Mapping[str, torch.Tensor]) -> list[Finding]:
    if tensor.numel() == 0:
        return []
    findings: list[Finding] = []
    details: dict[str, Any] = {"parameter": name, "shape": list(tensor.shape), "dtype": dtype_name(tensor.dtype)}
    sample = _sample(tensor)
    element = element_format(tensor.dtype)
    if tensor.dtype == torch.uint8 or str(tensor.dtype).endswith("e8m0fnu"):
        if _is_scale(name):
            raw = sample.view(torch.uint8)
            top = int(raw.max())
            if top == 0:
                findings.append(
                    Finding(
                        "scale_values",
                        f"{name}: e8m0 scales stored as uint8 zeros (every scale "
                        "2^-127): copy_ converted the values instead of copying the bytes",
                        details=details,
                    )
                )
            elif top < _TINY_E8M0:
                findings.append(
                    Finding(
                        "scale_values",
                        f"{name}: uint8 e8m0 scales are all below {_TINY_E8M0} "
                        f"(max byte {top}, i.e. <= 2^{top - 127}): numerically converted, not byte-copied",
                        details={**details, "max_byte": top},
                    )
                )
        return findings
    if element is not None and element.family == "fp8":
        values = fp8_values(sample, tensor.dtype)
    elif tensor.is_floating_point():
        values = sample.to(torch.float32)
    else:
        return findings
    nonfinite = int((~torch.isfinite(values)).sum())
    if nonfinite:
        findings.append(Finding("nonfinite", f"{name}: {nonfinite} non-finite values", details=details))
        values = torch.where(torch.isfinite(values), values, torch.zeros_like(values))
    if _is_scale(name):
        if values.numel() > 1 and bool((values <= 0).all()):
            findings.append(Finding("scale_values", f"{name}: every scale is zero or negative", details=details))
        return findings
    amax = float(values.abs().max())
    details["amax"] = amax
    if amax == 0.0 and tensor.dim() >= 2:
        findings.append(Finding("unloaded_parameter", f"{name}: all zeros (never loaded?)", details=details))
        return findings
    if element is not None and element.family == "fp8":
        paired = scale_name(name)
        scale = scales.get(paired) if paired is not None else None
        if scale is not None and scale.numel() and scale.is_floating_point():
            dequantized = amax * float(scale.detach().to(torch.float32).abs().max())
            if dequantized > _MAX_WEIGHT:
                findings.append(
                    Finding(
                        "weight_magnitude",
                        f"{name}: dequantized magnitude up to {dequantized:.3g} "
                        f"(fp8 amax {amax:g} x scale): scale inverted or not loaded?",
                        details={**details, "dequantized_amax": dequantized},
                    )
                )
        return findings
    if tensor.dtype in (torch.bfloat16, torch.float16, torch.float32) and tensor.dim() >= 2 and amax >= 16.0:
        on_grid, fmt_name = _on_fp8_grid(values)
        if on_grid:
            fmt = FP8_E4M3FN if fmt_name == FP8_E4M3FN.name else FP8_E4M3FNUZ
            findings.append(
                Finding(
                    "weight_magnitude",
                    f"{name}: {dtype_name(tensor.dtype)} weight holds raw {fmt_name} values (all on the fp8 grid, amax "
                    f"{amax:g} = {amax / fmt.max:.2f} of the format max): the checkpoint's block scale was dropped "
                    "(copy_ from FP8 without dequantization)",
                    details={**details, "format": fmt_name, "ratio_to_format_max": amax / fmt.max},
                )
            )
    return findings


def scan_tensors(named: Iterable[tuple[str, torch.Tensor]]) -> list[Finding]:
    """Scan ``(name, tensor)`` pairs; scales are matched to weights by name (``x.w13_weight`` ↔ ``x.w13_weight_scale``)."""
    items = [(name, tensor) for name, tensor in named if isinstance(tensor, torch.Tensor)]
    scales = {name: tensor for name, tensor in items if _is_scale(name)}
    findings: list[Finding] = []
    for name, tensor in items:
        findings.extend(_scan_one(name, tensor, scales))
    return findings


def register_weight_pairs(store: Any, named: Iterable[tuple[str, Any]]) -> int:
    """Register every ``<name>``/``<name>_scale`` pair among qualified ``(name, tensor)`` items; returns how many.

    The layer is the name's prefix (``model.layers.0.mlp.experts`` for
    ``model.layers.0.mlp.experts.w13_weight``).
    """
    tensors = {name: tensor for name, tensor in named if isinstance(tensor, torch.Tensor)}
    registered = 0
    for name, tensor in tensors.items():
        paired = scale_name(name)
        scale = tensors.get(paired) if paired is not None else None
        if scale is None or _is_scale(name):
            continue
        layer, _, attribute = name.rpartition(".")
        with torch.no_grad():
            if store.weights.register(tensor, scale, layer or "<model>", attribute, paired.rpartition(".")[2]):
                registered += 1
    return registered


def _model_tensors(model: torch.nn.Module, prefix: str = "") -> list[tuple[str, Any]]:
    named = list(model.named_parameters()) + list(model.named_buffers())
    return [(".".join(part for part in (prefix, name) if part), tensor) for name, tensor in named]


def register_attached_models(runtime: Any) -> None:
    """Register the weight pairs of models given to ``quantguard.attach`` and not registered yet."""
    seen = runtime.provenance.weights.attached
    for hooks in list(runtime.layer_hooks):
        if id(hooks) in seen:
            continue
        seen.add(id(hooks))
        model = getattr(hooks, "model", None)
        if isinstance(model, torch.nn.Module):
            register_weight_pairs(runtime.provenance, _model_tensors(model, getattr(hooks, "prefix", "")))


def _quant_method_follows(module: Any) -> bool:
    """ATOM main's loader runs ``module.quant_method.process_weights_after_loading(module)`` after the layer's own."""
    method = getattr(module, "quant_method", None)
    return method is not None and callable(getattr(method, "process_weights_after_loading", None))


@register_check
class WeightScan(DataCheck):
    name = "weight_scan"
    reports = ("scale_values", "weight_magnitude", "unloaded_parameter", "nonfinite")
    summary = "scan a layer's parameters after ATOM's process_weights_after_loading (layer's or quant method's)"

    @staticmethod
    def _module(call: CallRecord) -> torch.nn.Module | None:
        # A quant method's process_weights_after_loading(layer) rewrites ``layer``; a layer's own method, ``self``.
        module = call.get("layer")
        if not isinstance(module, torch.nn.Module):
            module = call.get("self")
            if _quant_method_follows(module):
                return None  # scanned after its quant method's step instead, once the weights are final
        return module if isinstance(module, torch.nn.Module) else None

    @staticmethod
    def _prefix(call: CallRecord, module: torch.nn.Module) -> str:
        own_prefix = getattr(module, "prefix", None)  # ATOM layers keep their checkpoint prefix
        return call.layer or (own_prefix if isinstance(own_prefix, str) and own_prefix else type(module).__name__)

    def snapshot(self, call: CallRecord) -> None:
        """Register the layer's weight/scale pairs now, on the loader's thread, before any GEMM can run."""
        module = self._module(call)
        if module is not None:
            prefix = self._prefix(call, module)
            named = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
            register_weight_pairs(call.runtime.provenance, [(f"{prefix}.{name}", tensor) for name, tensor in named])

    def measure(self, call: CallRecord) -> Measurement | None:
        module = self._module(call)
        return Measurement({}, {"module": module}) if module is not None else None

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        module = measurement.context["module"]
        prefix = self._prefix(call, module)
        with torch.no_grad():
            named = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
            return scan_tensors([(f"{prefix}.{name}", tensor) for name, tensor in named])
