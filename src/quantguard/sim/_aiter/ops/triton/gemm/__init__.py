"""Simulated ``aiter.ops.triton.gemm``."""
