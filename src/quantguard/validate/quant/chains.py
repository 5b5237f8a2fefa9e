"""Every quant→GEMM chain ``validate quant`` runs: each row of the AITER path table, runnable.

The rows (scheme x backend x entry points, weight layout, the x_scale layout
the GEMM reads) are declared once in :mod:`quantguard.contracts.aiter_paths`;
:class:`~quantguard.validate.quantize_kernels.KernelPath` calls them on the
simulator or a real AITER. A chain's ``expected_layout`` is what the layout
analysis (:mod:`quantguard.validate.quant.layouts`) compares the producer's
bytes against.
"""

from __future__ import annotations

import torch

from quantguard.contracts.aiter_paths import BACKENDS, PATHS, SCHEME_NAMES
from quantguard.numerics.dequant import dequantize_rows, scale_values
from quantguard.numerics.formats import FP4_E2M1
from quantguard.numerics.layouts import read_scales
from quantguard.validate.quantize_kernels import KernelPath, Quantized, QuantWeight, quantize_weight

__all__ = [
    "BACKENDS",
    "CHAINS",
    "SCHEMES",
    "Chain",
    "QuantWeight",
    "Quantized",
    "chains_for",
    "dequantize_activation",
    "missing_on",
    "quantize_weight",
]

#: Quantization schemes, in report order.
SCHEMES: tuple[str, ...] = SCHEME_NAMES
#: One quant→GEMM chain: a runnable row of the path table.
Chain = KernelPath
#: Every chain, in report order.
CHAINS: tuple[Chain, ...] = tuple(KernelPath(path) for path in PATHS)


def chains_for(schemes: tuple[str, ...] | list[str], backends: tuple[str, ...] | list[str]) -> list[Chain]:
    """The chains of the requested schemes and backends, in table order."""
    return [chain for chain in CHAINS if chain.scheme in schemes and chain.backend in backends]


def missing_on(chain: Chain, arch: str) -> str | None:
    """Why ``chain`` has no kernel on ``arch`` (a case's SKIP reason), or ``None``."""
    if arch in chain.archs:
        return None
    return f"no {chain.scheme} kernel on {arch} (AITER has it on {', '.join(chain.archs)})"


def dequantize_activation(q: Quantized, layout: str) -> torch.Tensor | None:
    """fp32 (M, K) activation as a GEMM reading its scales in ``layout`` sees it; ``None`` if unreadable."""
    if q.encoding == "none":
        return q.values.float()
    m = q.values.shape[0]
    packed = q.element is FP4_E2M1
    k = q.values.shape[1] * (2 if packed else 1)
    if q.group == 0:
        return dequantize_rows(q.values, q.scales.reshape(1, 1).float(), None, packed_fp4=packed)
    groups = 1 if q.group is None else -(-k // q.group)
    grid = read_scales(q.scales.view(torch.uint8) if q.encoding == "e8m0" else q.scales, layout, m, groups)
    if grid is None:
        return None
    return dequantize_rows(q.values, scale_values(grid), q.group, packed_fp4=packed)
