"""What AITER's kernel names say, and the AITER facts generic code needs (:class:`~quantguard.contracts.libraries.Library`).

ASM kernels follow a naming rule (``..._ASM``/``..._asm``) with a few listed
exceptions; the CK entry points run JIT-built CK code (in a CK-free build they
must not be reached); the quant factories hand out kernels that ATOM stores on
its layers.  Checks and the engine read these only through
:mod:`quantguard.contracts` (``is_asm``, ``runs_ck``, ``kernel_factories``, ...).
"""

from __future__ import annotations

from quantguard.contracts.libraries import Library

__all__ = ["ASM_KERNELS", "CK_KERNELS", "FACTORIES", "LIBRARY", "is_asm_name"]

#: Kernels classified as ASM by name in this list *and* by the ``_ASM``/``_asm`` naming rule.
ASM_KERNELS = (
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_ASM",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_asm",
    "aiter.ops.gemm_op_a8w8.flatmm_a8w8_blockscale_ASM",
    "aiter.ops.gemm_op_a8w8.flatmm_a8w8_blockscale_asm",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_bpreshuffle_asm",
    "aiter.ops.gemm_op_a8w8.gfx950_a8w8_blockscale_ASM",
    "aiter.ops.gemm_op_a4w4.gemm_a4w4_asm",
    "aiter.fused_moe_bf16_asm.asm_moe",
)
#: Entry points that run CK (JIT-built) code: in a CK-free build they must not be reached.
CK_KERNELS = (
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_CK",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_bpreshuffle",
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_bpreshuffle",
)
#: Factories whose results ATOM stores on layers at construction (stale-reference scan).
FACTORIES = ("aiter.ops.quant.get_hip_quant", "aiter.ops.quant.get_triton_quant", "aiter.ops.quant.get_torch_quant")


def is_asm_name(name: str) -> bool:
    """An ASM kernel by AITER's naming rule (``..._ASM``/``..._asm``) or by the explicit list."""
    return name.rsplit(".", 1)[-1].endswith(("_ASM", "_asm")) or name in ASM_KERNELS


#: AITER is the library called: its frames are never the user's call site, and importing it
#: (``aiter.jit.core``, ``aiter.utility.dtypes``, chip info) can change the detected platform.
LIBRARY = Library(
    name="aiter",
    packages=("aiter",),
    asm_name=is_asm_name,
    ck_kernels=CK_KERNELS,
    factories=FACTORIES,
    platform_modules=("aiter",),
    frames_internal=True,
    op_namespaces=("aiter",),  # torch.ops.aiter.<name> (aiter.jit.utils.torch_guard)
    op_name_cell="loadName",  # wrapper_custom's closure variable holding the op name
)
