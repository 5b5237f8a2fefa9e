"""AITER's promises, as data (ROCm/aiter, facts as of HEAD e4048607; see ``docs/contracts.md``).

Each entry point is one :class:`~quantguard.contracts.base.Contract`: its
path, the checks that hold it to its promises, the parameters forming its
metadata signature, and an ``interpret`` adapter that says what a call means
(which tensor is the input, which kwarg requests which scale layout, which
e8m0 rounding the producer uses, what x_scale layout a GEMM reads).  The
adapters encode AITER's real semantics, including the ones a naive guard gets
wrong; the tables say which checks apply.  One module per responsibility:

``names``               ASM/CK kernel names, the ASM naming rule, the quant factories, AITER's library facts
``quant_adapters``      plain quant producers            ``quant_table``   their contracts, and the layout transforms'
``fused_adapters``      fused norm/activation + quant    ``fused_table``   their contracts
``gemm_adapters``       scaled GEMMs                     ``gemm_table``    their contracts, and the JIT builder's
``moe_adapters``        fused MoE and top-k routing      ``moe_table``     their contracts
``kernel_adapters``     metadata-only kernels' operands  ``kernel_table``  their contracts (MoE, GEMMs, scale helpers)
                                                         ``attention_table``  MLA/DeepSeek attention-side kernels
``transform_adapters``  weight/scale layout transforms

Nothing here imports torch at module import: adapters run only when a
guarded call is interpreted.
"""

from __future__ import annotations

from quantguard.contracts.aiter import (
    attention_table,
    fused_table,
    gemm_table,
    kernel_table,
    moe_table,
    quant_table,
)
from quantguard.contracts.aiter.names import ASM_KERNELS, CK_KERNELS, FACTORIES, is_asm_name
from quantguard.contracts.base import Contract

__all__ = ["CONTRACTS", "ASM_KERNELS", "CK_KERNELS", "is_asm_name", "FACTORIES"]

#: Every AITER contract: plain quant producers and transforms, GEMMs, MoE and routing, fused
#: producers, and the kernels checked for metadata only.
CONTRACTS: list[Contract] = [
    *quant_table.CONTRACTS,
    *gemm_table.CONTRACTS,
    *moe_table.CONTRACTS,
    *fused_table.CONTRACTS,
    *kernel_table.CONTRACTS,
    *attention_table.CONTRACTS,
]
