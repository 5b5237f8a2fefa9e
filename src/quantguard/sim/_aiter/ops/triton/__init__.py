"""Simulated ``aiter.ops.triton``: the Triton kernels, run as plain torch.

Old flat module paths (``aiter.ops.triton.gemm_afp4wfp4`` ...) stay importable
as aliases of their new homes, as in AITER.
"""

from . import quant

__all__ = ["quant"]
