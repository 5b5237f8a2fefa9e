"""ATOM's promises around AITER: weight loading, FP8 normalization, backend selection.

ATOM (ROCm/ATOM) is the caller: it picks backends (``use_triton_gemm()``),
normalizes e4m3fn checkpoints for gfx942 (``normalize_e4m3fn_to_e4m3fnuz``)
and post-processes loaded weights (``process_weights_after_loading``).
Bugs there reach AITER's kernels as well-formed but wrong tensors, so they
are checked where ATOM produces them.
"""

from __future__ import annotations

from quantguard.contracts.base import Contract

__all__ = ["CONTRACTS"]

CONTRACTS: list[Contract] = [
    Contract(target="atom.model_ops.utils.normalize_e4m3fn_to_e4m3fnuz", kind="loader", backend="atom",
             checks=("fp8_normalization",), key=("weight", "weight_scale?", "input_scale?"),
             params=("weight", "weight_scale", "input_scale"),
             description="gfx942 load path: e4m3fn bytes as e4m3fnuz, 0x80 → 0, scales doubled"),
    Contract(target="atom.model_ops.linear.use_triton_gemm", kind="selector", backend="atom",
             checks=("selector_result",), description="ATOM's GEMM backend selector (must be True in CK-free mode)"),
    Contract(target="atom.model_ops.linear:LinearBase.process_weights_after_loading", kind="loader", backend="atom",
             checks=("weight_scan",), key=("self@",), description="scan a linear layer's weights after loading"),
    Contract(target="atom.model_ops.moe:FusedMoE.process_weights_after_loading", kind="loader", backend="atom",
             checks=("weight_scan",), key=("self@",), description="scan an MoE layer's weights after loading"),
]
