"""Simulated ``aiter.ops.triton.gemm.batched``: batched Triton GEMMs."""
