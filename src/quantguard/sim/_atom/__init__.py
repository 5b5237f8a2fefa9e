"""Simulated ``atom`` (ATOM serving engine), installed by ``quantguard.sim.install(atom=True)``.

Only the model ops that call AITER's quant/GEMM kernels are modelled, with
ATOM's by-name imports and per-quant-type dispatch.
"""
