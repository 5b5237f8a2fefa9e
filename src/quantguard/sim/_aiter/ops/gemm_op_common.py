"""Simulated ``aiter.ops.gemm_op_common``: helpers shared by the GEMM front ends.

Tuned-config tables decide which backend a shape runs on (as AITER's tuned
CSVs do); the readers below are bound at import, so a fault swaps in a
different function rather than flipping a flag inside a clean one.
"""

from quantguard.sim import _state
from quantguard.sim._kernels import layout as _layout

__all__ = ["asm_weight_reader", "check_kernel_name", "lookup_tuned", "x_scale_readers"]


def lookup_tuned(table, m, n, k, *extra):
    """Tuned config for a shape: exact M first, then an any-M (``None``) entry."""
    return table.get((m, n, k, *extra)) or table.get((None, n, k, *extra))


def check_kernel_name(kernel_name, known):
    """ASM kernels are loaded by name; an unknown name has no code object."""
    if kernel_name and kernel_name not in known:
        raise RuntimeError(f"cannot find asm kernel {kernel_name!r}; known: {', '.join(known)}")


def asm_weight_reader():
    """How ASM GEMMs read a preshuffled weight in this install."""
    if _state.fault_active("asm_gemm_garbage_gfx950", "asm"):
        return _layout.read_scrambled_weight
    return _layout.unshuffle_weight


def x_scale_readers(backend):
    """(row-major reader, column-major reader) for activation scales on ``backend``.

    Under ``gemm_reads_scale_wrong_major`` the two are swapped: each kernel
    reads x_scale in the other major order than its producer wrote.
    """
    if _state.fault_active("gemm_reads_scale_wrong_major", backend):
        return _layout.read_col_major, _layout.read_row_major
    return _layout.read_row_major, _layout.read_col_major
