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
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Tolerance", "tolerance_for", "CHAIN_COSINE", "MATCHED_COSINE"]

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


def _override(overrides: Mapping[str, float], target: str, layer: str | None, family: str) -> tuple[float, str] | None:
    plain = target.replace(":", ".")
    best: tuple[int, float, str] | None = None
    for key, value in overrides.items():
        if "@" in key:
            target_glob, _, layer_glob = key.partition("@")
            if layer is not None and fnmatch.fnmatchcase(plain, target_glob) and fnmatch.fnmatchcase(layer, layer_glob):
                rank = 3
            else:
                continue
        elif key == family:
            rank = 1
        elif fnmatch.fnmatchcase(plain, key):
            rank = 2
        else:
            continue
        if best is None or rank > best[0]:
            best = (rank, value, key)
    return (best[1], f"thresholds[{best[2]!r}]") if best else None


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
