"""Every row's and every K group's scale is checked on a sampled call, not only the sampled rows.

GEMM side (``scale_values``): NaN/Inf/negative fp32 scales, e8m0 NaN bytes and
zero scales on groups that hold data, wherever they are (the last row, the last
K group), with MX-swizzle padding (uninitialized by design) excluded.  Producer
side (``quant_numerics``): every group's written scale against ``amax / format
max`` of the whole input.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.contracts import aiter as aiter_contracts
from quantguard.numerics.layouts import mx_swizzle_index, pad_to
from quantguard.testing import capture_events

M, N, K = 300, 320, 384


def _inputs(aiter):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(M, K, generator=gen)
    x[:, 9] *= 40.0  # an outlier channel
    w = torch.randn(N, K, generator=gen) * 0.05
    fp8 = aiter.dtypes.fp8
    padded = torch.nn.functional.pad(w, (0, 0, 0, -N % 128))
    w_scale = padded.view(-1, 128, K // 128, 128).abs().amax((1, 3)) / torch.finfo(fp8).max
    wq = (w / w_scale.repeat_interleave(128, 0)[:N].repeat_interleave(128, 1)).to(fp8)
    xq, x_scale = aiter.per_group_quant_hip(x.to(torch.bfloat16), quant_dtype=fp8)
    return xq, x_scale, wq, w_scale


def _enable(tmp_path, **options):
    quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0, **options)


def _set(tensor, index, value):
    tensor = tensor.clone()
    tensor[index] = value
    return tensor


GEMM_FAULTS = {
    "x_scale_last_row_zero": (
        lambda xq, xs, wq, ws: (xq, _set(xs, (-1, 1), 0.0), wq, ws),
        "x_scale",
        "row 299, K group 1",
    ),
    "x_scale_last_row_nan": (
        lambda xq, xs, wq, ws: (xq, _set(xs, (-1, 0), float("nan")), wq, ws),
        "x_scale",
        "row 299, K group 0",
    ),
    "x_scale_last_row_negative": (
        lambda xq, xs, wq, ws: (xq, _set(xs, (-1, 2), -xs[-1, 2]), wq, ws),
        "x_scale",
        "row 299, K group 2",
    ),
    "x_scale_last_k_group_zero": (
        lambda xq, xs, wq, ws: (xq, _set(xs, (slice(None), -1), 0.0), wq, ws),
        "x_scale",
        "row 0, K group 2",
    ),
    "w_scale_last_k_group_zero": (
        lambda xq, xs, wq, ws: (xq, xs, wq, _set(ws, (-1, -1), 0.0)),
        "w_scale",
        "row 2, K group 2",
    ),
    "w_scale_last_k_group_inf": (
        lambda xq, xs, wq, ws: (xq, xs, wq, _set(ws, (0, -1), float("inf"))),
        "w_scale",
        "row 0, K group 2",
    ),
}


@pytest.mark.parametrize("fault", sorted(GEMM_FAULTS))
def test_gemm_scale_wrong_only_in_the_last_row_or_k_group(tmp_path, fault):
    sim.install("gfx942")
    import aiter

    mutate, scale, where = GEMM_FAULTS[fault]
    args = mutate(*_inputs(aiter))
    with capture_events() as events:
        _enable(tmp_path)
        aiter.gemm_a8w8_blockscale(*(args[0], args[2], args[1], args[3]))
    found = [e for e in events.violations(check="scale_values") if e["details"].get("scale") == scale]
    assert found and where in found[0]["message"], [e["message"] for e in events.violations()]


def test_zero_scale_of_an_all_zero_group_is_quiet(tmp_path):
    sim.install("gfx942")
    import aiter

    xq, xs, wq, ws = _inputs(aiter)
    xq = _set(xq.view(torch.uint8), (-1, slice(256, None)), 0).view(xq.dtype)  # last row, last K group: all zero
    xs = _set(xs, (-1, -1), 0.0)
    with capture_events() as events:
        _enable(tmp_path)
        aiter.gemm_a8w8_blockscale(xq, wq, xs, ws)
    assert not events.violations(check="scale_values"), [e["message"] for e in events.violations()]


def test_per_token_scale_of_the_last_row(tmp_path):
    sim.install("gfx942")
    import aiter

    gen = torch.Generator().manual_seed(5)
    xq, xs = aiter.per_token_quant_hip(
        torch.randn(M, K, generator=gen).to(torch.bfloat16), quant_dtype=aiter.dtypes.fp8
    )
    w = torch.randn(N, K, generator=gen) * 0.05
    ws = w.abs().amax(1, keepdim=True) / torch.finfo(aiter.dtypes.fp8).max
    wq = (w / ws).to(aiter.dtypes.fp8)
    with capture_events() as events:
        _enable(tmp_path)
        aiter.gemm_a8w8_CK(xq, wq, xs, ws)
        assert not events.violations(), [e["message"] for e in events.violations()]
        aiter.gemm_a8w8_CK(xq, wq, _set(xs, (-1, 0), 0.0), ws)
    [zero] = events.violations(check="scale_values")
    assert "row 299, K group 0" in zero["message"]


@pytest.mark.parametrize(
    "corrupt, expected", [("padding", None), ("last_row", "row 299"), ("last_k_group", "K group 11")]
)
def test_mx_swizzled_scales_every_group_but_not_the_padding(tmp_path, corrupt, expected):
    sim.install("gfx950")
    import aiter
    from aiter.ops.shuffle import shuffle_weight

    gen = torch.Generator().manual_seed(11)
    x = (torch.randn(M, K, generator=gen) * 4).to(torch.bfloat16)
    w = (torch.randn(N, K, generator=gen) * 0.05).to(torch.bfloat16)
    xq, xs = aiter.per_1x32_mx_quant_hip(x, quant_dtype=aiter.dtypes.fp4x2, shuffle=True)
    wq, ws = aiter.per_1x32_mx_quant_hip(w, quant_dtype=aiter.dtypes.fp4x2, shuffle=True)
    groups = K // 32
    raw = xs.view(torch.uint8).reshape(-1).clone()
    valid = mx_swizzle_index(M, groups).reshape(-1)
    if corrupt == "padding":
        keep = raw[valid].clone()
        raw.fill_(0xFF)
        raw[valid] = keep
        assert raw.numel() == pad_to(M, 256) * pad_to(groups, 8)
    elif corrupt == "last_row":
        raw[mx_swizzle_index(M, groups)[-1, 3]] = 0xFF
    else:
        raw[mx_swizzle_index(M, groups)[5, -1]] = 0xFF
    xs = raw.view(xs.dtype).reshape(xs.shape)
    with capture_events() as events:
        _enable(tmp_path)
        aiter.gemm_a4w4(xq, shuffle_weight(wq), xs, ws)
    found = events.violations(check="scale_values")
    if expected is None:
        assert not found, [e["message"] for e in found]
    else:
        assert found and expected in found[0]["message"], [e["message"] for e in found]


# -- producer side: every written scale against the whole input's group amax ----------------------

_PRODUCER = """
import aiter
FAULT = None

def per_group_quant_hip(x, scale=None, quant_dtype=None, group_size=128, transpose_scale=False,
                        num_rows=None, num_rows_factor=1, scale_type=None):
    kwargs = {} if scale_type is None else {"scale_type": scale_type}
    q, s = aiter.per_group_quant_hip(x, quant_dtype=quant_dtype, group_size=group_size,
                                     transpose_scale=transpose_scale, **kwargs)
    if FAULT == "last_row":
        s[-1] *= 2
    elif FAULT == "last_k_group":
        s[:, -1] *= 0.5
    return q, s
"""


@pytest.mark.parametrize("fault, where", [(None, None), ("last_row", "row 299"), ("last_k_group", "K group 2")])
def test_producer_scale_wrong_only_in_the_last_row_or_k_group(tmp_path, make_module, fault, where):
    sim.install("gfx942")
    import aiter

    module = make_module("qgt_producer", _PRODUCER)
    module.FAULT = fault
    template = next(c for c in aiter_contracts.CONTRACTS if c.target.endswith(".per_group_quant_hip"))
    quantguard.register(dataclasses.replace(template, target="qgt_producer.per_group_quant_hip"))
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(M, K, generator=gen)
    x[:, 100] *= 30.0
    with capture_events() as events:
        _enable(tmp_path, targets="qgt_producer.*")
        module.per_group_quant_hip(x.to(torch.bfloat16), quant_dtype=aiter.dtypes.fp8)
    found = [e for e in events.violations(check="scale_values") if e["details"].get("scale") == "producer"]
    if where is None:
        assert not events.violations(), [e["message"] for e in events.violations()]
    else:
        assert found and where in found[0]["message"], [e["message"] for e in events.violations()]
