"""What to look at and what to change, per check: the part of a report an engineer acts on.

Advice is data, keyed by the ``check`` of a violation (plus ``blocked`` and
``internal_error``, which have their own events).  A check can have
variants chosen by *hints*, small facts read from its events: a
``kwarg_ignored`` on a routing kernel needs other advice than one on a
quant producer, a ``numerics`` failure with a collapsed cosine (garbage:
wrong kernel, layout or variant) other advice than a wrong norm ratio with the
cosine near 1 (a dropped or extra scale) or a slightly wrong cosine (direction).  Texts name the
targets and producers seen, so the advice points at functions, not concepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from quantguard import environment_variables as env
from quantguard.report._fields import as_mapping, as_text

__all__ = ["Recommendation", "ADVISED_KINDS", "recommend", "hints_of", "producer_of"]

_NAMES_SHOWN = 4


class _Advice(NamedTuple):
    look: str
    change: str


# "" is a kind's default; other keys are hint variants, used instead of the default when present.
_ADVICE: dict[str, dict[str, _Advice]] = {
    "kwarg_ignored": {
        "layout": _Advice(
            "Producer(s) {producers}: asked for a scale layout (`shuffle_scale`, `transpose_scale` or "
            "`shuffle`), wrote another one. In a CK-free build this is typically the Triton fallback "
            "(`_fallback_*`) that accepts the kwarg and never reads it; the consumer GEMM then reads permuted scales.",
            "Make the fallback honor the kwarg, or pin the backend to an implementation that does (a build with "
            "the CK/HIP kernel) until it is fixed. A `scale_layout` or `numerics` finding downstream on the same "
            "layer is the consequence, not a second bug.",
        ),
        "routing": _Advice(
            "MoE routing kernel(s) {targets}: accepted `routed_scaling_factor` and did not apply it, so the "
            "routed-expert output is 1/factor too small.",
            "Multiply `topk_weights` by the factor in the caller, or use an AITER build whose routing kernel "
            "applies it; check the model's `routed_scaling_factor` reaches the kernel.",
        ),
    },
    "ignored_parameter": {
        "": _Advice(
            "Static scan: {producers} accept a parameter and never read it (named in the message), so every "
            "caller passing it gets the default behaviour.",
            "Treat calls passing that parameter as suspect. Fix the implementation (often a CK-free Triton fallback) "
            "or avoid that code path by pinning the backend. A runtime `kwarg_ignored` on the same target confirms "
            "the impact.",
        )
    },
    "e8m0_rounding": {
        "": _Advice(
            "e8m0 producer(s) {producers}: rounded block scales with another mode than declared, or than the "
            "model's reference (one power of two off on part of the blocks).",
            "Align the producer's rounding mode with the model's reference (the kernel variant or its "
            f"`scaling_mode`), and set `{env.QUANTGUARD_E8M0_ROUNDING}` to the mode the checkpoint was "
            "calibrated with so quantguard compares against it.",
        )
    },
    "scale_pairing": {
        "": _Advice(
            "GEMM(s) {targets} received a scale that is not its operand's: an activation and an x_scale written "
            "by different producer calls, or a weight with a w_scale other than the one loaded with it (another "
            "layer's, a fresh tensor such as ones, or one rewritten after loading). The message names both sides.",
            "Pass the scale the producer returned with the activation, and the layer's own `weight_scale`. For "
            "weights, look at the loader step named in the message (`process_weights_after_loading`, a "
            "requantization, a `copy_` between parameters) and make weight and scale change together.",
        )
    },
    "weight_scale": {
        "": _Advice(
            "Weight scale(s) used by {targets} do not describe their weights (the message says how: ones, zeroed "
            "e8m0 bytes, implausible dequantized magnitudes, a constant scale, or no longer the checkpoint's).",
            "Look at the loading step: a `copy_` from FP8 into a wider dtype drops the scale, a `copy_` of "
            "`float8_e8m0fnu` into uint8 writes zeros, a requantization must rewrite weight and scale together. "
            "Reload the layer and compare with the checkpoint.",
        )
    },
    "scale_plausibility": {
        "": _Advice(
            "No producer of the activation reaching {targets} was observed, and its x_scale looks wrong for it "
            "(another tensor's scale, ones, or maxima far from the format maximum). A weaker verdict than a chain "
            "reference.",
            "Guard the producer (enable quantguard before the model is built, or add a contract for a custom "
            "quant kernel) so the quant->GEMM chain can be checked exactly; then fix the scale passed to the GEMM.",
        )
    },
    "scale_values": {
        "": _Advice(
            "Scales reaching {targets} are all zero, negative or NaN, or match no known layout. All-zero uint8 "
            "e8m0 scales mean a `copy_` converted `float8_e8m0fnu` values instead of copying bytes; zeros in "
            "activation scales often mean an upstream transform left its buffer unwritten (`noop_transform`).",
            "Load e8m0 scales byte-wise (`param.copy_(src.view(torch.uint8))`), re-run `quantguard.scan_weights` "
            "after loading, and fix any upstream `noop_transform` / `kwarg_ignored` first.",
        )
    },
    "scale_shape": {
        "": _Advice(
            "The x_scale/w_scale shapes given to {targets} differ from what the kernel reads (group size, "
            "padding, per-token vs per-tensor).",
            "Quantize with the group size the GEMM expects (e.g. 1x128 activations, 128x128 weights) and pass "
            "scales unpadded unless the kernel documents padding.",
        )
    },
    "scale_dtype": {
        "": _Advice(
            "The scales given to {targets} have another dtype than the kernel reads (fp32 vs e8m0/uint8).",
            "Produce the scale dtype the consumer reads (`scale_type=` of the producer), or convert explicitly "
            "before the call; never reinterpret bytes with a numeric cast.",
        )
    },
    "scale_layout": {
        "": _Advice(
            "Producer/consumer layout mismatch: {producers} wrote scales in one major order and {targets} read "
            "them in the other (`transpose_scale`/`shuffle_scale` on the producer vs the transposed x_scale a "
            "`*_bpreshuffle` GEMM reads).",
            "Make both sides agree: request the transposed layout from the producer when the consumer is a "
            "bpreshuffle GEMM, or call the non-preshuffle GEMM for row-major scales. If the producer ignored the "
            "request, fix that first (`kwarg_ignored`).",
        )
    },
    "weight_layout": {
        "": _Advice(
            "The weight given to {targets} is not in the layout the kernel reads: a preshuffled weight read as "
            "plain, a plain one read as preshuffled, or a (16, 16) vs (32, 16) shuffle.",
            "Shuffle once at load with the layout of the kernel that will run (`shuffle_weight(w, layout=...)`) "
            "and keep `ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE` consistent with the GEMM selected.",
        )
    },
    "gemm_shape": {
        "": _Advice(
            "The operands of {targets} disagree on K (or on packing: fp4x2 halves K).",
            "Check the weight's padding and packing at load and the activation quantization's output shape.",
        )
    },
    "fp8_variant": {
        "": _Advice(
            "{targets} received e4m3fn data on an arch whose kernels read e4m3fnuz (gfx942: values read 2x "
            "smaller, byte 0x80 reads as NaN), or the reverse on gfx950.",
            "On gfx942 run `normalize_e4m3fn_to_e4m3fnuz` on FP8 weights and their scales at load (and not on "
            "gfx950); quantize activations to `aiter.dtypes.fp8`.",
        )
    },
    "backend_selection": {
        "": _Advice(
            "A CK kernel was reached in a CK-free build, or a selector ({targets}) chose CK there "
            "(`use_triton_gemm()` False, or an MoE method's `use_triton` False, in CK-free mode).",
            "ATOM main: set `ATOM_USE_TRITON_GEMM=1` (linear `use_triton_gemm()`, and `Mxfp4MoEMethod.use_triton` "
            "on gfx950) or `ATOM_USE_TRITON_MOE=1` for the MoE layers; on ATOM's CK-free branch `ATOM_CK_FREE=1` "
            "does both. Fix selectors that ignore the CK-free build.",
        )
    },
    "numerics": {
        "": _Advice(
            "Output of {targets} differs from its reference beyond tolerance (the message names the metric).",
            "Look for a layout, scale or dtype finding on the same layer first; if there is none, reproduce "
            f"with `quantguard validate quant` and `{env.QUANTGUARD_LOG_VALUES}=1`.",
        ),
        "norm_ratio": _Advice(
            "Norm ratio out of tolerance in {targets} with the cosine near 1: the direction is right and the "
            "magnitude wrong, the signature of a dropped or extra scale (weights copied without their block "
            "scale, a missing `routed_scaling_factor`, a scale applied twice) or scales on the wrong rows/groups.",
            "Check how scales reach this kernel for the flagged layers (weight loading, routing factor, "
            "e4m3fn vs e4m3fnuz halving) and fix the producer that drops or doubles it.",
        ),
        "collapsed": _Advice(
            "The output of {targets} has collapsed (cosine near 0 against its reference): it points nowhere "
            "near the right direction, so this is not a dropped scale (which keeps the cosine at 1) but garbage "
            "kernel output (e.g. an ASM kernel on an arch it does not support), operands or scales read in the "
            "wrong layout, or the wrong FP8 variant.",
            "Look for `backend_selection`, `scale_layout`, `weight_layout` or `fp8_variant` findings on the same "
            "layer; pin a backend known good on this arch (Triton in a CK-free build) and reproduce with "
            "`quantguard validate quant`.",
        ),
        "direction": _Advice(
            "Cosine/SQNR out of tolerance in {targets} with the magnitude right: values are permuted, "
            "typically scales read in the wrong major order or a weight in the wrong shuffle layout.",
            "Compare the producer's scale layout with what the consumer reads (`scale_layout`, "
            "`kwarg_ignored`, `weight_layout` findings on the same layer) and make them agree.",
        ),
    },
    "nonfinite": {
        "": _Advice(
            "NaN/Inf in the output of {targets}.",
            "Check for e4m3fn byte 0x80 read as e4m3fnuz NaN (`fp8_variant`), zero or NaN scales "
            f"(`scale_values`) and bf16 overflow; `{env.QUANTGUARD_SAMPLE_RATE}=1` finds the first layer where it "
            "appears.",
        )
    },
    "noop_transform": {
        "": _Advice(
            "Layout transform(s) {targets}: left the output unchanged or wrong (a CK-free Triton fallback that "
            "returns without writing); consumers read whatever the buffer held.",
            "Fix the fallback or pin a backend where the transform is implemented. Downstream `scale_values` or "
            "`numerics` findings are consequences.",
        )
    },
    "requant_precision": {
        "": _Advice(
            "A weight conversion {targets} lost precision in some blocks: requantizing per-block scales to one "
            "scale per tensor (or per shard) pushes the small-magnitude blocks below the format's normal range, "
            "while the global cosine stays near 1.",
            "Keep the per-block scales and a block-scaled GEMM for that weight (DeepSeek-V4 `wo_a`: the FP8 "
            "grouped GEMM, or the per-block BF16 dequantization), or requantize per block. The event names the "
            "worst block, its relative error and SQNR.",
        )
    },
    "jit_exit": {
        "": _Advice(
            "The AITER JIT builder {targets} exited (`SystemExit`) while building a module, usually a CK module in a "
            "CK-free install; quantguard converted it to a `RuntimeError`.",
            "That module should not be built here: select Triton (ATOM main: `ATOM_USE_TRITON_GEMM=1`; CK-free branch: `ATOM_CK_FREE=1`) or install the CK sources "
            "(`CK_3RDPARTY_DIR`).",
        )
    },
    "weight_magnitude": {
        "": _Advice(
            "A weight checked at {targets} holds raw FP8 values in a BF16 parameter without their scale, or "
            "implausible dequantized magnitudes.",
            "Dequantize at load (multiply by the block scale) or keep the parameter FP8 with its scale; check "
            "the loader's `copy_`.",
        )
    },
    "unloaded_parameter": {
        "": _Advice(
            "A parameter seen by {targets} is all zeros: it was never loaded from the checkpoint.",
            "Check the checkpoint key mapping and the weight loader for the parameter named in the message.",
        )
    },
    "blocked": {
        "": _Advice(
            "quantguard stopped (or rerouted) {targets}, a kernel the platform's policy forbids (ASM on gfx950 "
            "CK-free, CK in a CK-free build).",
            "Make the caller select the allowed kernel: `use_triton_gemm()` true (ATOM main: "
            "`ATOM_USE_TRITON_GEMM=1`; CK-free branch: `ATOM_CK_FREE=1`). Meanwhile "
            f"`{env.QUANTGUARD_ON_BLOCK}=reroute` runs the equivalent kernel instead of raising.",
        )
    },
    "internal_error": {
        "": _Advice(
            "A quantguard bug in the check named for {targets}; the user's call returned the original result, "
            "but that check did not run.",
            "Report it with the traceback below attached; meanwhile "
            f"`{env.QUANTGUARD_DISABLED_TARGETS}=<target>` silences the target.",
        )
    },
}

_FALLBACK = _Advice(
    "{targets} reported a check this version of the report has no advice for.",
    "Read the first message and the check's row in docs/events.md.",
)

#: Every kind with specific advice (the checks of docs/events.md, ``blocked`` and ``internal_error``).
ADVISED_KINDS = tuple(_ADVICE)


@dataclass(frozen=True)
class Recommendation:
    """Advice for one kind: pairs of (what to look at, what to change)."""

    kind: str
    items: tuple[tuple[str, str], ...]


def _names(names: Iterable[str]) -> str:
    ordered = sorted(set(names))
    if not ordered:
        return "the target"
    shown = ", ".join(f"`{name}`" for name in ordered[:_NAMES_SHOWN])
    rest = len(ordered) - _NAMES_SHOWN
    return f"{shown} and {rest} more" if rest > 0 else shown


def recommend(
    kind: str, targets: Iterable[str], producers: Iterable[str] = (), hints: Mapping[str, Iterable[str]] | None = None
) -> Recommendation:
    """The advice for ``kind`` (a check, ``blocked`` or ``internal_error``) naming the functions seen.

    ``hints`` map each hint (from :func:`hints_of`) to the targets it was seen
    on; each matching variant names only those.  ``producers`` default to the
    targets: for producer checks the target is the producer.
    """
    hints = hints or {}
    variants = _ADVICE.get(kind, {"": _FALLBACK})
    chosen = [(advice, hints[hint]) for hint, advice in variants.items() if hint and hint in hints]
    if not chosen:
        chosen = [(variants.get("", next(iter(variants.values()))), targets)]
    items = []
    for advice, seen_on in chosen:
        fields = {"targets": _names(seen_on), "producers": _names(producers) if producers else _names(seen_on)}
        items.append((advice.look.format(**fields), advice.change.format(**fields)))
    return Recommendation(kind, tuple(items))


#: Below this cosine an output is garbage, not a mis-scaled right answer (a dropped scale keeps cosine 1.0).
_COLLAPSED_COSINE = 0.5


def _cosine_of(details: Mapping[str, Any], failed_text: str) -> float | None:
    """The measured cosine: the event's ``cosine`` field, else the number after "cosine" in its message."""
    value = details.get("cosine")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = re.search(r"cosine (-?\d+(?:\.\d+)?(?:e-?\d+)?)", failed_text)
    return float(match.group(1)) if match else None


def hints_of(check: str, event: Mapping[str, Any]) -> set[str]:
    """The facts of one violation event that choose an advice variant."""
    details = as_mapping(event.get("details"))
    message = as_text(event.get("message"))
    if check == "kwarg_ignored":
        routing = "routed_scaling_factor" in details or "routed_scaling_factor" in message
        return {"routing" if routing else "layout"}
    if check == "numerics":
        failed = details.get("failed")
        failed_text = (
            " ".join(item for item in failed if isinstance(item, str)) if isinstance(failed, list) else message
        )
        direction_failed = "cosine" in failed_text or "SQNR" in failed_text
        cosine = _cosine_of(details, failed_text)
        if direction_failed and cosine is not None and cosine < _COLLAPSED_COSINE:
            return {"collapsed"}  # garbage: whatever the norm ratio says, it is not a scale
        if "norm ratio" in failed_text:
            return {"norm_ratio"}
        if direction_failed:
            return {"direction"}
    return set()


def producer_of(check: str, event: Mapping[str, Any]) -> str | None:
    """The function that produced what the violation is about, when it is not the target itself."""
    details = as_mapping(event.get("details"))
    if check == "scale_layout":
        return as_text(details.get("producer")) or None
    if check == "ignored_parameter":
        return as_text(details.get("function")) or None
    return None
