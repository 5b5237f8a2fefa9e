"""Comparison metrics between a kernel's output and a reference.

Split like the checks: :func:`comparison_tensors` enqueues float64 reductions
on the device (no host sync) into one vector, :func:`summarize` turns its host values into
cosine, norm ratio, SQNR and error statistics.  Cosine is accumulated in
float64 and clamped, so rounding never reports a value above 1; non-finite
outputs are counted, not silently averaged away.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "Metrics",
    "comparison_tensors",
    "summarize",
    "merge_stats",
    "METRIC_KEYS",
    "slice_tensors",
    "worst_slices",
    "batched_statistics",
]

METRIC_KEYS = ("stats",)

# Layout of the statistics vector: the 3x3 Gram matrix of (out, ref, err), then the extras.
_OO, _OR, _RR, _EE = 0, 1, 4, 8
_MAX_ABS, _SUM_ABS, _NAN, _INF, _COUNT = 9, 10, 11, 12, 13


def _pooled(o: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``(P, 14)`` from ``(P, N)`` float64 pairs: the Gram matrix of (out, ref, err) over the finite
    entries, then max |err|, sum |err|, NaN and Inf counts of ``out``, and N."""
    batch, count = o.shape
    finite = torch.isfinite(o) & torch.isfinite(r)
    clean_o, clean_r = torch.where(finite, o, 0.0), torch.where(finite, r, 0.0)
    err = clean_o - clean_r
    basis = torch.stack((clean_o, clean_r, err), 1)
    gram = (basis @ basis.transpose(1, 2)).reshape(batch, 9)
    abs_err = err.abs()
    extras = torch.stack(
        (
            abs_err.amax(1) if count else abs_err.sum(1),
            abs_err.sum(1),
            torch.isnan(o).sum(1).to(torch.float64),
            torch.isinf(o).sum(1).to(torch.float64),
            o.new_full((batch,), float(count)),
        ),
        1,
    )
    return torch.cat((gram, extras), 1)


def _worst(o: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``(P, 4)`` from ``(P, rows, columns)`` float64 pairs: the worst row's error/energy ratio and its
    position, then the worst column's."""
    finite = torch.isfinite(o) & torch.isfinite(r)
    o, r = torch.where(finite, o, 0.0), torch.where(finite, r, 0.0)
    err_sq, ref_sq = (o - r).square(), r.square()
    values = []
    for dim in (2, 1):  # rows (summed over columns), then columns
        err, energy = err_sq.sum(dim), ref_sq.sum(dim)
        ratio = torch.where(
            energy > 0,
            err / energy.clamp(min=1e-300),
            torch.where(err > 0, torch.full_like(err, math.inf), torch.zeros_like(err)),
        )
        if ratio.shape[1]:
            worst, position = ratio.max(1)
        else:
            worst, position = ratio.sum(1), ratio.new_zeros(ratio.shape[0], dtype=torch.int64)
        values += [worst, position.to(torch.float64)]
    return torch.stack(values, 1)


def comparison_tensors(out: torch.Tensor, ref: torch.Tensor, prefix: str = "") -> dict[str, torch.Tensor]:
    """One float64 device vector summarizing ``out`` vs ``ref`` (same shape), in a dozen kernels.

    Every dot product comes from one 3x3 Gram matrix of (out, ref, out - ref)
    over the finite entries; few launches matter more than flops here, since a
    sampled call's cost on the GPU is launch overhead.
    """
    o = out.detach().reshape(1, -1).to(torch.float64)
    r = ref.detach().reshape(1, -1).to(torch.float64)
    return {prefix + "stats": _pooled(o, r)[0]}


def slice_tensors(out: torch.Tensor, ref: torch.Tensor, prefix: str = "") -> dict[str, torch.Tensor]:
    """The worst row and the worst column of ``out`` vs ``ref`` (``(..., rows, columns)``), one small vector.

    Pooled metrics dilute a fault confined to one tile (one wrong row of 128
    moves the pooled SQNR by 21 dB at most); the error energy relative to the
    reference energy of each row and of each column does not.  The vector is
    ``(worst row ratio, its position, worst column ratio, its position)`` in
    the order the rows and columns were selected; a row whose reference is
    zero and whose output is not has ratio ``inf``.
    """
    columns = out.shape[-1]
    o = out.detach().to(torch.float64).reshape(1, -1, columns)
    r = ref.detach().to(torch.float64).reshape(1, -1, columns)
    return {prefix + "slices": _worst(o, r)[0]}


def batched_statistics(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``(P, 18)``: for each of P ``(rows, columns)`` comparisons, :func:`comparison_tensors`' 14 values then
    :func:`slice_tensors`' 4, in a fixed number of ops whatever P (graph snapshots are judged in batches)."""
    batch, columns = out.shape[0], out.shape[-1]
    o = out.detach().to(torch.float64).reshape(batch, -1, columns)
    r = ref.detach().to(torch.float64).reshape(batch, -1, columns)
    return torch.cat((_pooled(o.reshape(batch, -1), r.reshape(batch, -1)), _worst(o, r)), 1)


def worst_slices(values: Mapping[str, Any], prefix: str = "") -> tuple[float, int, float, int] | None:
    """``(worst row SQNR dB, row position, worst column SQNR dB, column position)`` from host values."""
    slices = values.get(prefix + "slices")
    if slices is None:
        return None

    def sqnr(ratio: float) -> float:
        return math.inf if ratio == 0 else -10.0 * math.log10(ratio) if math.isfinite(ratio) else -math.inf

    return sqnr(slices[0]), int(slices[1]), sqnr(slices[2]), int(slices[3])


def merge_stats(total: list[float] | None, part: list[float]) -> list[float]:
    """Pool two host statistics vectors (sums add up; the max error is a max)."""
    if total is None:
        return list(part)
    merged = [a + b for a, b in zip(total, part)]
    merged[_MAX_ABS] = max(total[_MAX_ABS], part[_MAX_ABS])
    return merged


@dataclass(frozen=True)
class Metrics:
    cosine: float
    norm_ratio: float
    sqnr_db: float
    max_abs_err: float
    mean_abs_err: float
    nan: int
    inf: int
    count: int

    @property
    def nonfinite(self) -> int:
        return self.nan + self.inf

    def as_dict(self) -> dict[str, Any]:
        return {
            "cosine": self.cosine,
            "norm_ratio": self.norm_ratio,
            "sqnr_db": self.sqnr_db,
            "max_abs_err": self.max_abs_err,
            "mean_abs_err": self.mean_abs_err,
            "nan": self.nan,
            "inf": self.inf,
        }


def summarize(values: Mapping[str, Any], prefix: str = "") -> Metrics:
    stats = values[prefix + "stats"]
    dot, out_sq, ref_sq, err_sq = stats[_OR], stats[_OO], stats[_RR], stats[_EE]
    count = int(stats[_COUNT])
    if out_sq == 0.0 and ref_sq == 0.0:
        cosine = 1.0
    elif out_sq == 0.0 or ref_sq == 0.0:
        cosine = 0.0
    else:
        cosine = max(-1.0, min(1.0, dot / math.sqrt(out_sq * ref_sq)))
    norm_ratio = math.sqrt(out_sq / ref_sq) if ref_sq > 0 else (1.0 if out_sq == 0 else math.inf)
    if err_sq == 0.0:
        sqnr = math.inf
    elif ref_sq == 0.0:
        sqnr = -math.inf
    else:
        sqnr = 10.0 * math.log10(ref_sq / err_sq)
    nan, inf = int(stats[_NAN]), int(stats[_INF])
    if nan or inf:
        cosine = min(cosine, 0.0) if nan + inf == count else cosine
    return Metrics(cosine, norm_ratio, sqnr, stats[_MAX_ABS], stats[_SUM_ABS] / max(count, 1), nan, inf, count)
