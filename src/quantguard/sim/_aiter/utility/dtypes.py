"""Simulated ``aiter.utility.dtypes``: AITER's dtype aliases.

``fp8`` is fixed at import from the arch, as in AITER: e4m3fnuz on gfx942,
e4m3fn on gfx950.
"""

import torch

from ..jit.utils.chip_info import get_gfx_runtime

__all__ = [
    "bf16",
    "d_dtypes",
    "defaultDtypes",
    "fp16",
    "fp32",
    "fp4x2",
    "fp8",
    "fp8_e8m0",
    "get_dtype_fp8",
    "i16",
    "i32",
    "i4x2",
    "i64",
    "i8",
    "u32",
    "u64",
    "u8",
]

defaultDtypes = {
    "gfx942": {"fp8": torch.float8_e4m3fnuz},
    "gfx950": {"fp8": torch.float8_e4m3fn},
}


def get_dtype_fp8():
    return defaultDtypes[get_gfx_runtime()]["fp8"]


i4x2 = getattr(torch, "int4", torch.uint8)
fp4x2 = torch.float4_e2m1fn_x2
fp8 = get_dtype_fp8()
fp8_e8m0 = torch.float8_e8m0fnu
fp16 = torch.float16
bf16 = torch.bfloat16
fp32 = torch.float32
u32 = torch.uint32
i32 = torch.int32
i16 = torch.int16
i8 = torch.int8
u8 = torch.uint8
i64 = torch.int64
u64 = torch.uint64

d_dtypes = {name: value for name, value in dict(globals()).items() if isinstance(value, torch.dtype)}
