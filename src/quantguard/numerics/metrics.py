"""Comparison metrics between a kernel's output and a reference.

Split like the checks: :func:`comparison_tensors` enqueues float64 reductions
on the device (no host sync), :func:`summarize` turns their host values into
cosine, norm ratio, SQNR and error statistics.  Cosine is accumulated in
float64 and clamped, so rounding never reports a value above 1; non-finite
outputs are counted, not silently averaged away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch

__all__ = ["Metrics", "comparison_tensors", "summarize", "METRIC_KEYS"]

METRIC_KEYS = ("dot", "out_sq", "ref_sq", "err_sq", "max_abs", "sum_abs", "nan", "inf", "count")


def comparison_tensors(out: torch.Tensor, ref: torch.Tensor, prefix: str = "") -> dict[str, torch.Tensor]:
    """0-d float64 device tensors summarizing ``out`` vs ``ref`` (same shape)."""
    out64 = out.detach().to(torch.float64).reshape(-1)
    ref64 = ref.detach().to(torch.float64).reshape(-1)
    finite = torch.isfinite(out64) & torch.isfinite(ref64)
    zero = torch.zeros((), dtype=torch.float64, device=out64.device)
    o = torch.where(finite, out64, zero)
    r = torch.where(finite, ref64, zero)
    err = o - r
    return {
        prefix + "dot": (o * r).sum(),
        prefix + "out_sq": (o * o).sum(),
        prefix + "ref_sq": (r * r).sum(),
        prefix + "err_sq": (err * err).sum(),
        prefix + "max_abs": err.abs().max() if err.numel() else zero,
        prefix + "sum_abs": err.abs().sum(),
        prefix + "nan": torch.isnan(out64).sum().to(torch.float64),
        prefix + "inf": torch.isinf(out64).sum().to(torch.float64),
        prefix + "count": out64.new_full((), float(out64.numel())),
    }


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
        return {"cosine": self.cosine, "norm_ratio": self.norm_ratio, "sqnr_db": self.sqnr_db,
                "max_abs_err": self.max_abs_err, "mean_abs_err": self.mean_abs_err,
                "nan": self.nan, "inf": self.inf}


def summarize(values: Mapping[str, float], prefix: str = "") -> Metrics:
    dot, out_sq, ref_sq = (values[prefix + k] for k in ("dot", "out_sq", "ref_sq"))
    err_sq = values[prefix + "err_sq"]
    count = int(values[prefix + "count"])
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
    nan, inf = int(values[prefix + "nan"]), int(values[prefix + "inf"])
    if nan or inf:
        cosine = min(cosine, 0.0) if nan + inf == count else cosine
    return Metrics(cosine, norm_ratio, sqnr, values[prefix + "max_abs"],
                   values[prefix + "sum_abs"] / max(count, 1), nan, inf, count)
