"""Simulated ``aiter`` (installed by ``quantguard.sim.install``).

Like the real package, it star-imports its op modules, so ``aiter.X is
aiter.ops.<module>.X`` for every exported entry point.
"""

from .jit import core as core
from .ops import enum as _enum
from .ops import gemm_op_a4w4 as _gemm_op_a4w4
from .ops import gemm_op_a8w8 as _gemm_op_a8w8
from .ops import quant as _quant
from .ops import topk as _topk
from .ops.enum import *  # noqa: F403
from .ops.gemm_op_a4w4 import *  # noqa: F403
from .ops.gemm_op_a8w8 import *  # noqa: F403
from .ops.quant import *  # noqa: F403
from .ops.topk import *  # noqa: F403
from .utility import dtypes as dtypes

__all__ = [
    "core",
    "dtypes",
    *_enum.__all__,
    *_quant.__all__,
    *_gemm_op_a8w8.__all__,
    *_gemm_op_a4w4.__all__,
    *_topk.__all__,
]
