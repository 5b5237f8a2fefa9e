"""The shadow's device kernels, in Triton: a fused sampled reference and a gated graph snapshot.

Why Triton: a sampled check built from torch ops costs ~60 launches (5-9 us of
host time each); these kernels read the sampled rows and columns straight from
the quantized bytes and their scales, so a check is two launches.  Triton is
optional: :func:`available` says whether these kernels can run (CUDA, or the
CPU interpreter under ``TRITON_INTERPRET=1``); callers fall back to torch.

Element codes (``*_KIND``): 0 = a float or int8 tensor loaded as its own dtype,
1 = fp8 e4m3fn bytes, 2 = fp8 e4m3fnuz bytes, 3 = fp4 e2m1 bytes (two per
byte, low nibble first).  Scale codes: 0 = none, 1 = float, 2 = e8m0 bytes.
Output codes: 0 = bfloat16, 1 = float16, 2 = float32 (the reference is rounded
to the kernel's output dtype before it is compared, like the torch reference).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["available", "gemm_stats_kernels", "snapshot_kernel", "ELEMENT_KINDS", "OUT_KINDS"]

ELEMENT_KINDS = {"float": 0, "e4m3fn": 1, "e4m3fnuz": 2, "fp4": 3}
OUT_KINDS = {"bfloat16": 0, "float16": 1, "float32": 2}


def _import_triton() -> Any:
    try:
        import triton
        import triton.language as tl
    except Exception:  # not installed, or broken: the torch fallback is used
        return None
    return triton, tl


# Triton resolves a kernel's helpers through its module globals, so the kernels live at module
# level; ``TRITON_INTERPRET=1`` must be set before this module is imported to run them on CPU.
_TRITON = _import_triton()


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def available(device: Any) -> bool:
    """Whether the Triton kernels can run on ``device`` (CUDA, or CPU tensors under the interpreter)."""
    if _TRITON is None:
        return False
    kind = getattr(device, "type", device)
    return kind == "cuda" or (kind == "cpu" and interpreting())


if _TRITON is not None:
    triton, tl = _TRITON

    @triton.jit
    def _pow2(exponent):
        """2**exponent for an int32 exponent in [-126, 127], exact (built from the float's bits)."""
        return ((exponent + 127) << 23).to(tl.float32, bitcast=True)

    @triton.jit
    def _decode(raw, KIND: tl.constexpr, HIGH):
        """Float32 values of loaded elements (``HIGH``: which nibble, for fp4)."""
        if KIND == 0:
            return raw.to(tl.float32)
        elif KIND == 3:
            byte = raw.to(tl.int32) & 0xFF
            nibble = tl.where(HIGH, byte >> 4, byte & 0xF)
            code = nibble & 0x7
            exponent = (code >> 1) - 1
            magnitude = tl.where(
                code < 2, code.to(tl.float32) * 0.5, (1.0 + (code & 1).to(tl.float32) * 0.5) * _pow2(exponent)
            )
            return tl.where((nibble & 0x8) != 0, -magnitude, magnitude)
        else:
            byte = raw.to(tl.int32) & 0xFF
            exponent = (byte >> 3) & 0xF
            mantissa = byte & 0x7
            bias = 7 if KIND == 1 else 8
            normal = (mantissa + 8).to(tl.float32) * _pow2(exponent - bias - 3)
            subnormal = mantissa.to(tl.float32) * _pow2(tl.full(exponent.shape, 1 - bias - 3, tl.int32))
            magnitude = tl.where(exponent == 0, subnormal, normal)
            value = tl.where((byte >> 7) != 0, -magnitude, magnitude)
            if KIND == 1:
                is_nan = (exponent == 15) & (mantissa == 7)
            else:
                is_nan = byte == 0x80
            return tl.where(is_nan, float("nan"), value)

    @triton.jit
    def _scale(raw, KIND: tl.constexpr):
        if KIND == 2:
            byte = raw.to(tl.int32) & 0xFF
            value = (byte << 23).to(tl.float32, bitcast=True)
            return tl.where(byte == 255, float("nan"), value)
        else:
            return raw.to(tl.float32)

    @triton.jit
    def _round_out(value, OUT_KIND: tl.constexpr):
        if OUT_KIND == 0:
            # round to nearest even by hand: the interpreter's cast truncates, a GPU's rounds
            bits = value.to(tl.int32, bitcast=True)
            rounded = (bits + (((bits >> 16) & 1) + 0x7FFF)) & -65536
            return tl.where(value != value, value, rounded.to(tl.float32, bitcast=True))
        elif OUT_KIND == 1:
            return value.to(tl.float16, fp_downcast_rounding="rtne").to(tl.float32)
        else:
            return value

    @triton.jit
    def gemm_stats(
        x_ptr,
        sxm,
        sxk,
        xs_ptr,
        xs_sm,
        xs_sg,
        x_group,
        w_ptr,
        swn,
        swk,
        ws_ptr,
        ws_sn,
        ws_sg,
        w_group,
        w_row_div,
        out_ptr,
        som,
        son,
        bias_ptr,
        alpha,
        part_ptr,
        row_part_ptr,
        col_part_ptr,
        M,
        K,
        rows_total,
        cols_total,
        r_start,
        r_step,
        r_count,
        c_size,
        cb_start,
        cb_step,
        cb_count,
        n_blocks,
        X_KIND: tl.constexpr,
        W_KIND: tl.constexpr,
        XS_KIND: tl.constexpr,
        WS_KIND: tl.constexpr,
        OUT_KIND: tl.constexpr,
        HAS_BIAS: tl.constexpr,
        BLOCK_R: tl.constexpr,
        BLOCK_C: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        """One (row block, column block) of the sampled output: reference, then partial statistics.

        Rows ``i``: ``r_start + i * r_step`` for ``i < r_count``, then ``M - 1``.
        Columns ``j``: offset ``j % c_size`` in block ``cb_start + (j // c_size) * cb_step``
        (the last block ``n_blocks - 1`` after ``cb_count`` of them).
        """
        pid_r = tl.program_id(0)
        pid_c = tl.program_id(1)
        i = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
        j = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
        row_ok = i < rows_total
        col_ok = j < cols_total
        rows = tl.where(i < r_count, r_start + i * r_step, M - 1)
        rows = tl.where(row_ok, rows, 0).to(tl.int64)
        block = j // c_size
        block = tl.where(block < cb_count, cb_start + block * cb_step, n_blocks - 1)
        cols = tl.where(col_ok, block * c_size + j % c_size, 0).to(tl.int64)
        acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            k_ok = k < K
            if X_KIND == 3:
                x_k = k // 2
            else:
                x_k = k
            if W_KIND == 3:
                w_k = k // 2
            else:
                w_k = k
            high = (k % 2) == 1
            x_raw = tl.load(
                x_ptr + rows[:, None] * sxm + x_k[None, :] * sxk, mask=row_ok[:, None] & k_ok[None, :], other=0
            )
            x = _decode(x_raw, X_KIND, high[None, :])
            if XS_KIND != 0:
                xs = tl.load(
                    xs_ptr + rows[:, None] * xs_sm + (k // x_group)[None, :] * xs_sg,
                    mask=row_ok[:, None] & k_ok[None, :],
                    other=0,
                )
                x = x * _scale(xs, XS_KIND)
            x = tl.where(row_ok[:, None] & k_ok[None, :], x, 0.0)
            w_raw = tl.load(
                w_ptr + cols[:, None] * swn + w_k[None, :] * swk, mask=col_ok[:, None] & k_ok[None, :], other=0
            )
            w = _decode(w_raw, W_KIND, high[None, :])
            if WS_KIND != 0:
                ws = tl.load(
                    ws_ptr + (cols // w_row_div)[:, None] * ws_sn + (k // w_group)[None, :] * ws_sg,
                    mask=col_ok[:, None] & k_ok[None, :],
                    other=0,
                )
                w = w * _scale(ws, WS_KIND)
            w = tl.where(col_ok[:, None] & k_ok[None, :], w, 0.0)
            acc += tl.dot(x, tl.trans(w), input_precision="ieee")
        ref = acc * alpha
        if HAS_BIAS:
            bias = tl.load(bias_ptr + cols, mask=col_ok, other=0).to(tl.float32)
            ref = ref + bias[None, :]
        ref = _round_out(ref, OUT_KIND).to(tl.float64)
        valid = row_ok[:, None] & col_ok[None, :]
        out = tl.load(out_ptr + rows[:, None] * som + cols[None, :] * son, mask=valid, other=0).to(tl.float64)
        inf = float("inf")
        finite = valid & (out == out) & (tl.abs(out) != inf) & (ref == ref) & (tl.abs(ref) != inf)
        o = tl.where(finite, out, 0.0)
        r = tl.where(finite, ref, 0.0)
        e = o - r
        base = part_ptr + (pid_r * tl.num_programs(1) + pid_c) * 12
        tl.store(base + 0, tl.sum(tl.sum(o * o, 1), 0))
        tl.store(base + 1, tl.sum(tl.sum(o * r, 1), 0))
        tl.store(base + 2, tl.sum(tl.sum(o * e, 1), 0))
        tl.store(base + 3, tl.sum(tl.sum(r * r, 1), 0))
        tl.store(base + 4, tl.sum(tl.sum(r * e, 1), 0))
        tl.store(base + 5, tl.sum(tl.sum(e * e, 1), 0))
        tl.store(base + 6, tl.max(tl.max(tl.abs(e), 1), 0))
        tl.store(base + 7, tl.sum(tl.sum(tl.abs(e), 1), 0))
        tl.store(base + 8, tl.sum(tl.sum((valid & (out != out)).to(tl.float64), 1), 0))
        tl.store(base + 9, tl.sum(tl.sum((valid & (tl.abs(out) == inf)).to(tl.float64), 1), 0))
        tl.store(base + 10, tl.sum(tl.sum(valid.to(tl.float64), 1), 0))
        # per-row and per-column error and reference energy, for the worst-slice statistics
        row_base = row_part_ptr + pid_c * (2 * rows_total)
        tl.store(row_base + i, tl.sum(e * e, 1), mask=row_ok)
        tl.store(row_base + rows_total + i, tl.sum(r * r, 1), mask=row_ok)
        col_base = col_part_ptr + pid_r * (2 * cols_total)
        tl.store(col_base + j, tl.sum(e * e, 0), mask=col_ok)
        tl.store(col_base + cols_total + j, tl.sum(r * r, 0), mask=col_ok)

    @triton.jit
    def _worst(part_ptr, total, programs, BLOCK: tl.constexpr):
        """The largest error/energy ratio over ``total`` slices summed across ``programs``, and where."""
        best = tl.full((), -1.0, tl.float64)
        best_at = tl.full((), 0, tl.int32)
        for start in range(0, total, BLOCK):
            idx = start + tl.arange(0, BLOCK)
            ok = idx < total
            err = tl.zeros((BLOCK,), dtype=tl.float64)
            energy = tl.zeros((BLOCK,), dtype=tl.float64)
            for p in range(0, programs):
                err += tl.load(part_ptr + p * 2 * total + idx, mask=ok, other=0.0)
                energy += tl.load(part_ptr + p * 2 * total + total + idx, mask=ok, other=0.0)
            safe = tl.where(energy > 0, energy, 1.0)
            ratio = tl.where(energy > 0, err / safe, tl.where(err > 0, float("inf"), 0.0))
            ratio = tl.where(ok, ratio, -1.0)
            chunk_best = tl.max(ratio, 0)
            chunk_at = tl.argmax(ratio, 0) + start
            better = chunk_best > best
            best_at = tl.where(better, chunk_at, best_at)
            best = tl.where(better, chunk_best, best)
        return best, best_at

    @triton.jit
    def reduce_stats(
        part_ptr,
        row_part_ptr,
        col_part_ptr,
        result_ptr,
        programs,
        row_programs,
        col_programs,
        rows_total,
        cols_total,
        BLOCK_P: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        """Pool the partials into ``comparison_tensors`` (14 values) + ``slice_tensors`` (4 values) order."""
        sums = tl.zeros((16,), dtype=tl.float64)
        slot = tl.arange(0, 16)
        biggest = tl.full((), 0.0, tl.float64)
        for start in range(0, programs, BLOCK_P):
            p = start + tl.arange(0, BLOCK_P)
            ok = (p < programs)[:, None] & (slot < 11)[None, :]
            block = tl.load(part_ptr + p[:, None] * 12 + slot[None, :], mask=ok, other=0.0)
            sums += tl.sum(block, 0)
            biggest = tl.maximum(biggest, tl.max(tl.where(slot[None, :] == 6, block, 0.0)))
        oo = tl.sum(tl.where(slot == 0, sums, 0.0), 0)
        o_r = tl.sum(tl.where(slot == 1, sums, 0.0), 0)
        oe = tl.sum(tl.where(slot == 2, sums, 0.0), 0)
        rr = tl.sum(tl.where(slot == 3, sums, 0.0), 0)
        re = tl.sum(tl.where(slot == 4, sums, 0.0), 0)
        ee = tl.sum(tl.where(slot == 5, sums, 0.0), 0)
        # the 3x3 Gram matrix of (out, ref, err), then max |err|, sum |err|, NaN, Inf, count
        tl.store(result_ptr + 0, oo)
        tl.store(result_ptr + 1, o_r)
        tl.store(result_ptr + 2, oe)
        tl.store(result_ptr + 3, o_r)
        tl.store(result_ptr + 4, rr)
        tl.store(result_ptr + 5, re)
        tl.store(result_ptr + 6, oe)
        tl.store(result_ptr + 7, re)
        tl.store(result_ptr + 8, ee)
        tl.store(result_ptr + 9, biggest)
        for index in tl.static_range(4):
            tl.store(result_ptr + 10 + index, tl.sum(tl.where(slot == 7 + index, sums, 0.0), 0))
        row_worst, row_at = _worst(row_part_ptr, rows_total, col_programs, BLOCK)
        col_worst, col_at = _worst(col_part_ptr, cols_total, row_programs, BLOCK)
        tl.store(result_ptr + 14, row_worst)
        tl.store(result_ptr + 15, row_at.to(tl.float64))
        tl.store(result_ptr + 16, col_worst)
        tl.store(result_ptr + 17, col_at.to(tl.float64))

    @triton.jit
    def _copy_row(src, stride, width, dst, BLOCK: tl.constexpr):
        for start in range(0, width, BLOCK):
            idx = start + tl.arange(0, BLOCK)
            ok = idx < width
            tl.store(dst + idx, tl.load(src + idx.to(tl.int64) * stride, mask=ok), mask=ok)

    @triton.jit
    def graph_snapshot(
        counter_ptr,
        meta_ptr,
        period,
        phase,
        M,
        N,
        block_step,
        n_blocks,
        x_ptr,
        sxm,
        sxk,
        x_width,
        xs_ptr,
        xs_sm,
        xs_sg,
        xs_width,
        w_ptr,
        swn,
        swk,
        w_width,
        ws_ptr,
        ws_sn,
        ws_sg,
        ws_width,
        w_row_div,
        out_ptr,
        som,
        son,
        x_snap,
        xs_snap,
        w_snap,
        ws_snap,
        out_snap,
        R: tl.constexpr,
        C: tl.constexpr,
        HAS_XS: tl.constexpr,
        HAS_WS: tl.constexpr,
        BLOCK: tl.constexpr,
        BLOCK_C: tl.constexpr,
    ):
        """Count this replay; on one replay in ``period`` copy R rows, C output columns and their scales.

        The rows move through all of M and the C-column block through all of N
        from one hit to the next, so successive snapshots cover every tile.
        ``meta``: sequence number (the replay count, > 0), hit number, first column, the rows.
        """
        count = tl.load(counter_ptr)
        tl.store(counter_ptr, count + 1)
        tick = count + phase
        if tick % period == 0:
            hit = tick // period
            n0 = ((hit * block_step) % n_blocks) * C
            n0 = tl.minimum(n0, N - C)
            for i in tl.static_range(R):
                row = (hit * R + i) % M
                _copy_row(x_ptr + row * sxm, sxk, x_width, x_snap + i * x_width, BLOCK)
                if HAS_XS:
                    _copy_row(xs_ptr + row * xs_sm, xs_sg, xs_width, xs_snap + i * xs_width, BLOCK)
                cols = tl.arange(0, BLOCK_C)
                col_ok = cols < C
                values = tl.load(out_ptr + row * som + (n0 + cols).to(tl.int64) * son, mask=col_ok)
                tl.store(out_snap + i * C + cols, values, mask=col_ok)
                tl.store(meta_ptr + 3 + i, row)
            for c in range(0, C):
                n = n0 + c
                _copy_row(w_ptr + n.to(tl.int64) * swn, swk, w_width, w_snap + c * w_width, BLOCK)
                if HAS_WS:
                    _copy_row(
                        ws_ptr + (n // w_row_div).to(tl.int64) * ws_sn, ws_sg, ws_width, ws_snap + c * ws_width, BLOCK
                    )
            tl.store(meta_ptr + 1, hit)
            tl.store(meta_ptr + 2, n0)
            tl.store(meta_ptr + 0, count + 1)


def gemm_stats_kernels() -> tuple[Any, Any]:
    return gemm_stats, reduce_stats


def snapshot_kernel() -> Any:
    return graph_snapshot
