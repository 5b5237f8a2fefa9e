"""Simulated ``aiter.ops.triton.gemm.basic``: single-matrix Triton GEMMs."""
