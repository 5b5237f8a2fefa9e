"""How close is close enough, per format and per kind of reference.

Two kinds of references, two regimes of tolerance:

``matched``
    Precision-matched: the kernel's own quantized inputs dequantized in the
    layout it claims to read, accumulated in fp32 and cast like the kernel.
    Agreement is near-exact, so a layout or scale bug is a collapse far below
    the threshold, not noise.
``chain``
    The whole quant→GEMM chain against the unquantized product.  Quantization
    error is expected; the defaults follow the format's resolution: FP8 0.999,
    INT8 0.999, INT4 0.99, and FP4/MXFP4 0.98 — not 0.995: a correct MXFP4
    activation quantization (e2m1 with RoundUp e8m0 block scales) measures
    0.993 against the unquantized product on Gaussian activations at every K
    we tried (256..7168), so 0.995 would flag every clean call.

Cosine is blind to a uniform scale error, so every verdict also bounds the
norm ratio (output/reference) and floors the SQNR.  Overrides come from
``Config.thresholds``: a format name, a target glob, or ``TARGET_GLOB@LAYER_GLOB``
(most specific wins).

Where the reference is bit-reproducible, cosine is too lenient: a kernel that
rounds one output the other way keeps cosine at 1.0.  ``Config.shadow_compare``
selects, per target glob (``TARGET_GLOB`` or ``TARGET_GLOB@LAYER_GLOB``; a glob
also matches a target's bare function name) or for every target, a stricter
comparison of the precision-matched GEMM reference: ``exact`` (bit-identical
outputs) or ``allclose`` (``|out - ref| <= atol * rms(ref) + rtol * |ref|``,
with per-output-dtype defaults of one unit of rounding, overridable with
``Config.shadow_allclose``).  The verdict then adds that comparison to the
cosine/norm/SQNR one; chain references are never bit-reproducible and stay on
cosine.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "Tolerance",
    "tolerance_for",
    "CHAIN_COSINE",
    "MATCHED_COSINE",
    "ALLCLOSE_DEFAULTS",
    "Comparison",
    "comparison_for",
    "compare_tensors",
]

CHAIN_COSINE = {"fp8": 0.999, "fp4": 0.98, "mxfp4": 0.98, "int8": 0.999, "int4": 0.99, "bf16": 0.999}
CHAIN_NORM_BAND = {"fp8": 0.05, "fp4": 0.10, "mxfp4": 0.10, "int8": 0.05, "int4": 0.15, "bf16": 0.03}
CHAIN_SQNR_DB = {"fp8": 20.0, "fp4": 12.0, "mxfp4": 12.0, "int8": 20.0, "int4": 10.0, "bf16": 25.0}
MATCHED_COSINE = 0.9995
MATCHED_NORM_BAND = 0.02
MATCHED_SQNR_DB = 25.0


@dataclass(frozen=True)
class Tolerance:
    cosine: float
    norm_band: float  # |norm_ratio - 1| must stay within this
    sqnr_db: float
    source: str  # where the cosine threshold came from

    def failures(self, cosine: float, norm_ratio: float, sqnr_db: float, nonfinite: int = 0) -> list[str]:
        """Which of cosine, norm ratio, SQNR failed, each with its measured value (and NaN/Inf outputs)."""
        failed = [f"{nonfinite} non-finite outputs"] if nonfinite else []
        if not cosine >= self.cosine:
            failed.append(f"cosine {cosine:.6f} < {self.cosine}")
        if not abs(norm_ratio - 1.0) <= self.norm_band:
            failed.append(f"norm ratio {norm_ratio:.4f} outside 1±{self.norm_band}")
        if not sqnr_db >= self.sqnr_db:
            failed.append(f"SQNR {sqnr_db:.1f} dB < {self.sqnr_db} dB")
        return failed


def _most_specific(keys: Iterable[str], names: tuple[str, ...], layer: str | None, lowest: str) -> str | None:
    """The key that applies most specifically to a call, or None (``thresholds`` and ``shadow_compare`` alike).

    ``TARGET_GLOB@LAYER_GLOB`` (on a call in a matching layer) wins over a target
    glob, which wins over ``lowest`` (a format name, or ``*``); a target glob
    matches any of ``names`` (the target's path, and for ``shadow_compare`` its
    bare function name).  Of equally specific keys, the first wins.
    """
    best: str | None = None
    best_rank = 0
    for key in keys:
        if "@" in key:
            target_glob, _, layer_glob = key.partition("@")
            on_layer = layer is not None and fnmatch.fnmatchcase(layer, layer_glob)
            rank = 3 if on_layer and any(fnmatch.fnmatchcase(name, target_glob) for name in names) else 0
        elif key == lowest:
            rank = 1
        else:
            rank = 2 if any(fnmatch.fnmatchcase(name, key) for name in names) else 0
        if rank > best_rank:
            best, best_rank = key, rank
    return best


def _override(overrides: Mapping[str, float], target: str, layer: str | None, family: str) -> tuple[float, str] | None:
    key = _most_specific(overrides, (target.replace(":", "."),), layer, family)
    return (overrides[key], f"thresholds[{key!r}]") if key is not None else None


def tolerance_for(kind: str, family: str, target: str, layer: str | None, overrides: Mapping[str, float]) -> Tolerance:
    """The tolerance for one comparison (``kind`` is ``matched`` or ``chain``)."""
    if kind == "matched":
        cosine, band, sqnr, source = MATCHED_COSINE, MATCHED_NORM_BAND, MATCHED_SQNR_DB, "precision-matched default"
        override = _override({k: v for k, v in overrides.items() if k not in CHAIN_COSINE}, target, layer, family)
    else:
        cosine = CHAIN_COSINE.get(family, 0.99)
        band = CHAIN_NORM_BAND.get(family, 0.1)
        sqnr = CHAIN_SQNR_DB.get(family, 10.0)
        source = f"{family} chain default"
        override = _override(overrides, target, layer, family)
    if override is not None:
        cosine, source = override
    return Tolerance(cosine, band, sqnr, source)


# -- exact / allclose comparison of bit-reproducible references ----------------------------

#: ``allclose`` per output dtype: ``(rtol, atol)``, atol in units of the reference's RMS so one
#: setting fits layers of any magnitude.  One unit of rounding of the dtype (2^-7 bf16, 2^-10
#: fp16: an output rounded the other way); fp32 outputs are never rounded by the cast, so their
#: bound is the accumulation-order noise of an fp32 dot product (~sqrt(K) ulps at K = 64K: 2^-15).
ALLCLOSE_DEFAULTS: Mapping[str, tuple[float, float]] = {
    "bfloat16": (2.0**-7, 2.0**-7),
    "float16": (2.0**-10, 2.0**-10),
    "float32": (2.0**-15, 2.0**-15),
}
_ALLCLOSE_FALLBACK = ALLCLOSE_DEFAULTS["bfloat16"]
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass(frozen=True)
class Comparison:
    """The comparison mode chosen for one call, with where it came from and its allclose bounds."""

    mode: str
    source: str
    rtol: float = 0.0
    atol: float = 0.0

    @property
    def strict(self) -> bool:
        """Whether anything beyond cosine/norm/SQNR is measured (``exact`` or ``allclose``)."""
        return self.mode != "cosine"

    def fields(self, values: Sequence[float]) -> dict[str, Any]:
        """Event fields from the host values of :func:`compare_tensors`: counts and a max, never tensor values."""
        fields: dict[str, Any] = {
            "compare": self.mode,
            "compare_source": self.source,
            "mismatches": int(values[0]),
            "compared": int(values[2]),
            "max_abs_diff": float(values[1]),
        }
        if self.mode == "allclose":
            fields.update(rtol=self.rtol, atol=self.atol)
        return fields

    def failures(self, values: Sequence[float]) -> list[str]:
        """The compare failure, if any, with the mismatch count and the largest difference."""
        mismatches, max_diff, count = int(values[0]), float(values[1]), int(values[2])
        if not mismatches:
            return []
        if self.mode == "exact":
            return [f"{mismatches} of {count} outputs not bit-identical (max |diff| {max_diff:.3g})"]
        return [
            f"{mismatches} of {count} outputs outside allclose(rtol={self.rtol:g}, atol={self.atol:g} x rms) "
            f"(max |diff| {max_diff:.3g})"
        ]


_COSINE = Comparison("cosine", "default")


def comparison_for(
    modes: Mapping[str, str],
    target: str,
    layer: str | None,
    out_dtype: torch.dtype | None = None,
    allclose: Mapping[str, tuple[float, float]] | None = None,
) -> Comparison:
    """The comparison for one call: the most specific ``modes`` key wins (``TARGET@LAYER`` over a target
    glob over ``*``); ``allclose`` bounds come from ``allclose`` or :data:`ALLCLOSE_DEFAULTS` by ``out_dtype``."""
    if not modes:
        return _COSINE
    plain = target.replace(":", ".")
    key = _most_specific(modes, (plain, plain.rsplit(".", 1)[-1]), layer, "*")
    if key is None:
        return _COSINE
    mode, source = modes[key], f"shadow_compare[{key!r}]"
    if mode != "allclose":
        return Comparison(mode, source)
    dtype = str(out_dtype).replace("torch.", "") if out_dtype is not None else "bfloat16"
    rtol, atol = (allclose or {}).get(dtype) or ALLCLOSE_DEFAULTS.get(dtype, _ALLCLOSE_FALLBACK)
    return Comparison(mode, source, rtol, atol)


def compare_tensors(out: torch.Tensor, ref: torch.Tensor, comparison: Comparison, prefix: str = "") -> dict[str, Any]:
    """``(mismatches, max |out - ref| over finite entries, count)`` on the device (no host sync), one vector.

    ``exact`` compares the stored bits in ``out``'s dtype (so -0 vs +0 and NaN payloads count);
    ``allclose`` counts entries outside ``atol * rms(ref) + rtol * |ref|`` (equal infinities and
    NaN against NaN agree).
    """
    o = out.detach()
    r = ref.detach().to(o.dtype)
    od, rd = o.to(torch.float64), r.to(torch.float64)
    if comparison.mode == "exact" and o.element_size() in _BITS:
        bits = _BITS[o.element_size()]
        differ = o.contiguous().view(bits) != r.contiguous().view(bits)
    else:
        finite = torch.where(torch.isfinite(rd), rd, 0.0)
        rms = finite.square().mean().sqrt() if finite.numel() else finite.new_zeros(())
        close = (od - rd).abs() <= comparison.atol * rms + comparison.rtol * rd.abs()
        differ = ~(close | (od == rd) | (torch.isnan(od) & torch.isnan(rd)))
    diff = (od - rd).abs()
    diff = torch.where(torch.isfinite(diff), diff, 0.0)
    vector = torch.stack(
        (
            differ.sum().to(torch.float64),
            diff.amax() if diff.numel() else diff.new_zeros(()),
            diff.new_full((), float(diff.numel())),
        )
    )
    return {prefix + "compare": vector}
