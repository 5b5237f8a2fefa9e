"""Independent references for the simulator's numerics, written from the specs.

These deliberately use different algorithms from ``quantguard.sim._kernels``
(python loops, float64, brute-force nearest search) so a shared mistake is
unlikely.
"""

from __future__ import annotations

import dis
import inspect
import math
import types

import torch

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
FP8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e4m3fnuz: 240.0}
# (t, max_pos, mbits) per element format.
MX_FORMATS = {"fp4": (2, 6.0, 1), "e4m3fn": (8, 448.0, 3), "e4m3fnuz": (7, 240.0, 3)}


def fp4_code(value: float) -> int:
    """Nearest e2m1 code by brute force; ties go to the even code."""
    magnitude = abs(value)
    best = min(range(8), key=lambda c: (abs(E2M1[c] - magnitude), c & 1))
    return best | (8 if math.copysign(1.0, value) < 0 else 0)


def fp4_pack(codes: list[list[int]]) -> torch.Tensor:
    return torch.tensor(
        [[row[i] | (row[i + 1] << 4) for i in range(0, len(row), 2)] for row in codes],
        dtype=torch.uint8,
    )


def fp4_value(code: int) -> float:
    return (-1.0 if code & 8 else 1.0) * E2M1[code & 7]


def _f32(x: float) -> float:
    return torch.tensor(x, dtype=torch.float32).item()


def _floor_log2(x: float) -> int:
    return math.frexp(x)[1] - 1


def _ceil_log2(x: float) -> int:
    mantissa, exponent = math.frexp(x)
    return exponent - 1 if mantissa == 0.5 else exponent


def e8m0_byte(amax: float, mode: str, fmt: str) -> int:
    """The e8m0 scale byte for one block, from the mode definitions in aiter_api.md."""
    t, max_pos, mbits = MX_FORMATS[fmt]
    if amax == 0:
        return 0
    if mode == "round_down":
        exponent = _floor_log2(_f32(amax / 2**t))
    elif mode == "round_up":
        exponent = _ceil_log2(_f32(amax / max_pos))
    elif mode == "ceil":
        exponent = _ceil_log2(_f32(amax / 2**t))
    else:  # even: round the mantissa to mbits + 1 bits, then floor
        floor = _floor_log2(amax)
        exponent = floor + (1 if amax / 2.0**floor >= 2 - 2.0 ** -(mbits + 1) else 0) - t
    return max(exponent + 127, 0)


def mx_swizzle_index(x: int, y: int, cols_padded: int) -> int:
    return (
        (x // 32 * cols_padded) * 32
        + (y // 8) * 256
        + (y % 4) * 64
        + (x % 16) * 4
        + ((y % 8) // 4) * 2
        + (x % 32) // 16
    )


def shuffled_index(n: int, k: int, cols: int, layout: tuple[int, int], element_size: int) -> int:
    """Flat position of weight element (n, k) after AITER's shuffle_weight."""
    tile_n, block_k, pack = layout[0], 2 * layout[1], 16 // element_size
    n_tile, n_in = divmod(n, tile_n)
    k_tile, k_rest = divmod(k, block_k)
    k_pack, k_in = divmod(k_rest, pack)
    return (((n_tile * (cols // block_k) + k_tile) * (block_k // pack) + k_pack) * tile_n + n_in) * pack + k_in


def shuffle_weight(weight: torch.Tensor, layout: tuple[int, int] = (16, 16)) -> torch.Tensor:
    rows, cols = weight.shape
    out = torch.empty_like(weight).view(-1)
    for n in range(rows):
        for k in range(cols):
            out[shuffled_index(n, k, cols, layout, weight.element_size())] = weight[n, k]
    return out.view(rows, cols)


def fp8_quantize_groups(x: torch.Tensor, group: int, dtype: torch.dtype):
    """fp32 scale = max(amax, 1e-10) / dtype_max per (row, group); saturated values."""
    rows, cols = x.shape
    xf = x.float()
    scale = torch.empty(rows, cols // group)
    values = torch.empty(rows, cols)
    for g in range(cols // group):
        block = xf[:, g * group : (g + 1) * group]
        scale[:, g] = torch.maximum(block.abs().amax(1), torch.tensor(1e-10)) / FP8_MAX[dtype]
        values[:, g * group : (g + 1) * group] = block / scale[:, g : g + 1]
    limit = FP8_MAX[dtype]
    return values.clamp(-limit, limit).to(dtype), scale


def dequant_fp8(values: torch.Tensor, arch_dtype: torch.dtype) -> torch.Tensor:
    return values.view(torch.uint8).view(arch_dtype).double()


def expand_blocks(scale: torch.Tensor, rows: int, cols: int, block_rows: int, block_cols: int):
    r = torch.arange(rows) // block_rows
    c = torch.arange(cols) // block_cols
    return scale.double()[r][:, c]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


def assert_gemm_close(out: torch.Tensor, reference: torch.Tensor) -> None:
    """Within bf16/fp16 output rounding of an fp64 reference."""
    torch.testing.assert_close(out.double(), reference, rtol=1e-2, atol=1e-2 * float(reference.abs().max()))


def _loaded_names(code: types.CodeType) -> set[str]:
    names = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname.startswith("LOAD_FAST") or instruction.opname in ("LOAD_DEREF", "LOAD_CLOSURE"):
            argval = instruction.argval
            names.update(argval if isinstance(argval, tuple) else (argval,))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _loaded_names(const)
    return names


def op_name(obj) -> str | None:
    """The ``torch.ops.aiter`` op an opaque AITER wrapper calls (``loadName`` in its closure)."""
    code, closure = getattr(obj, "__code__", None), getattr(obj, "__closure__", None)
    if code is None or not closure or "loadName" not in code.co_freevars:
        return None
    return closure[code.co_freevars.index("loadName")].cell_contents


def implementation(obj):
    """The Python function behind an entry point: the decorated function of an opaque wrapper."""
    from quantguard.sim import _custom_ops

    name = op_name(obj)
    return obj if name is None else _custom_ops.entry(name).function


def unread_parameters(obj) -> set[str]:
    """Parameters a function accepts but never loads (what quantguard flags statically)."""
    function = inspect.unwrap(getattr(obj, "__func__", obj))
    return {name for name in inspect.signature(function).parameters if name != "self"} - _loaded_names(
        function.__code__
    )
