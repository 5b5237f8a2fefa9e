"""``torch._scaled_mm``: a real FP8 GEMM on NVIDIA GPUs, so the whole path runs on real hardware.

``out = (a * scale_a) @ (b * scale_b)`` with ``a`` (M, K) row-major fp8,
``b`` (K, N) column-major fp8, ``scale_a`` one value or (M, 1), ``scale_b``
one value or (1, N).  ``b.t()`` is the (N, K) weight the shared GEMM checks
read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantguard.contracts.base import Contract, identity, optional, tensor, value
from quantguard.contracts.views import GemmView

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["CONTRACTS"]


def _scaled_mm_signature(
    self: Any,
    mat2: Any,
    scale_a: Any,
    scale_b: Any,
    bias: Any = None,
    scale_result: Any = None,
    out_dtype: Any = None,
    use_fast_accum: bool = False,
) -> Any:  # pragma: no cover - signature only
    """Signature of ``torch._scaled_mm`` (a builtin that ``inspect`` cannot read)."""


def _interpret_scaled_mm(call: CallRecord) -> GemmView | None:
    from quantguard.numerics.formats import element_format

    a, b = call["self"], call["mat2"]
    if a.dim() != 2 or b.dim() != 2 or element_format(a.dtype) is None:
        return None
    out = call.result
    return GemmView(
        call.target,
        a,
        b.t(),
        call["scale_a"],
        call["scale_b"],
        out=out,
        bias=call.get("bias"),
        out_dtype=call.get("out_dtype") or a.dtype,
        scheme="per_token",
        element=element_format(a.dtype),
        m=int(a.shape[0]),
        n=int(b.shape[1]),
        k=int(a.shape[1]),
    )


CONTRACTS: list[Contract] = [
    Contract(
        target="torch._scaled_mm",
        kind="gemm",
        backend="torch",
        checks=("scale_tensors", "fp8_variant", "scale_values", "gemm_numerics", "nonfinite"),
        key=(
            tensor("self"),
            identity("mat2"),
            tensor("scale_a"),
            identity("scale_b"),
            optional("bias"),
            value("out_dtype"),
        ),
        interpret=_interpret_scaled_mm,
        signature_of=_scaled_mm_signature,
        params=("self", "mat2", "scale_a", "scale_b", "bias", "scale_result", "out_dtype", "use_fast_accum"),
        description="PyTorch FP8 GEMM with per-tensor or row-wise scales",
    ),
]
