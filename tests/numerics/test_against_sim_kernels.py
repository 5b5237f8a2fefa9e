"""quantguard.numerics against the simulator's own kernels, byte for byte, over every layout and rounding option.

The checks and validations judge AITER's producers with
:mod:`quantguard.numerics` (expected scales, e8m0 modes, which layout was
written, the weight preshuffle).  The simulator implements the same AITER
semantics independently (``quantguard.sim._kernels``: its own e8m0 encoder,
swizzle, quant bodies and scale stores).  Quantizing through the simulated
entry points under each shuffle/transpose/rounding option and asking numerics
what was written must give the option back; a disagreement is a bug in one of
the two.  The negative cases show the comparison can fail: a wrong rounding
mode, and the simulator's own faults (an ignored ``shuffle_scale``, a ceil
rounding declared as Even), are seen as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

import quantguard.sim as sim
from quantguard.numerics.formats import (
    FP4_E2M1,
    FP8_E4M3FN,
    FP8_E4M3FNUZ,
    ROUNDING_MODES,
    ElementFormat,
    e8m0_encode,
    element_format,
)
from quantguard.numerics.layouts import shuffle_weight, unshuffle_weight
from quantguard.numerics.scales import expected_scales, group_amax
from quantguard.numerics.written_layout import written_layout
from quantguard.sim._kernels import e8m0 as sim_e8m0
from quantguard.sim._kernels import layout as sim_layout

#: numerics' mode names -> the simulator's.
_SIM_MODES = {"up": "round_up", "down": "round_down", "even": "even", "ceil": "ceil"}
#: the simulator's e8m0 format keys -> numerics' formats.
_SIM_FORMATS = {"fp4": FP4_E2M1, "e4m3fn": FP8_E4M3FN, "e4m3fnuz": FP8_E4M3FNUZ}
#: Every memory layout a raw scale buffer can be read in.
_CANDIDATES = ("row_major", "transposed", "mx_swizzle")
_ROWS, _K = 40, 256


# -- e8m0 rounding modes ------------------------------------------------------------------------------


def _amaxes(fmt: ElementFormat) -> torch.Tensor:
    """Random amaxes over 80 binades, plus every rounding boundary of each mode and its float32 neighbours."""
    gen = torch.Generator().manual_seed(0)
    random = torch.rand(4096, generator=gen) * torch.exp2(torch.randint(-40, 40, (4096,), generator=gen).float())
    powers = torch.exp2(torch.arange(-40, 41).float())
    # powers of two (Down/Ceil), the format max (Up), mantissas where Even rounds up (fp4: 1.75, fp8: 1.9375)
    edges = torch.cat([powers, fmt.max * powers, 1.75 * powers, 1.9375 * powers])
    up, down = (
        torch.nextafter(edges, torch.full_like(edges, torch.inf)),
        torch.nextafter(edges, torch.zeros_like(edges)),
    )
    return torch.cat([torch.zeros(1), random, edges, up, down])


def _sim_encode(amax: torch.Tensor, mode: str, fmt: str) -> torch.Tensor:
    return sim_e8m0.encode(amax, sim_e8m0.MODES[_SIM_MODES[mode]], fmt).to(torch.int64)


@pytest.mark.parametrize("fmt", list(_SIM_FORMATS))
@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_e8m0_encode_matches_the_simulators_encoder(mode, fmt):
    amax = _amaxes(_SIM_FORMATS[fmt])
    assert torch.equal(e8m0_encode(amax, mode, _SIM_FORMATS[fmt]), _sim_encode(amax, mode, fmt))


@pytest.mark.parametrize("fmt", list(_SIM_FORMATS))
@pytest.mark.parametrize(
    ("mode", "wrong"), [(mode, wrong) for mode in ROUNDING_MODES for wrong in ROUNDING_MODES if wrong != mode]
)
def test_the_comparison_catches_a_wrong_rounding_mode(mode, wrong, fmt):
    """Negative control: the same comparison, with numerics asked for another mode, must see the difference."""
    amax = _amaxes(_SIM_FORMATS[fmt])
    assert not torch.equal(e8m0_encode(amax, wrong, _SIM_FORMATS[fmt]), _sim_encode(amax, mode, fmt))


# -- quantizing through the simulated entry points ----------------------------------------------------


@dataclass(frozen=True)
class Producer:
    """One simulated producer call and what it writes: the group, encoding, memory layout and e8m0 mode."""

    name: str
    call: Callable[[Any, torch.Tensor], tuple[torch.Tensor, ElementFormat]]  # (aiter, x) -> (scales, element)
    group: int
    layout: str
    mode: str = "fp32"  # "fp32", or the e8m0 rounding the producer uses
    arch: str = "gfx950"
    ck_free: bool = False
    faults: tuple[str, ...] = ()

    @property
    def encoding(self) -> str:
        return "fp32" if self.mode == "fp32" else "e8m0"


def _fp8(aiter: Any) -> ElementFormat:
    return element_format(aiter.dtypes.fp8)


def _per_group_hip(group: int, transpose: bool, e8m0: bool = False) -> Callable:
    def call(aiter, x):
        extra = {"scale_type": aiter.dtypes.fp8_e8m0} if e8m0 else {}
        _, scales = aiter.per_group_quant_hip(
            x, quant_dtype=aiter.dtypes.fp8, group_size=group, transpose_scale=transpose, **extra
        )
        return scales, _fp8(aiter)

    return call


def _per_token_grouped(group: int, shuffle: bool) -> Callable:
    """``dynamic_per_token_scaled_quant(out, x.view(-1, gs), ...)``: the grouped regime."""

    def call(aiter, x):
        out = torch.empty(x.shape, dtype=aiter.dtypes.fp8)
        scales = torch.empty(x.shape[0], x.shape[1] // group)
        aiter.dynamic_per_token_scaled_quant(out, x.view(-1, group), scales, shuffle_scale=shuffle)
        return scales, _fp8(aiter)

    return call


def _per_token_fp4_into_fp32(shuffle: bool) -> Callable:
    """fp4 output: the kernel writes e8m0 bytes whatever the dtype of ``scales`` (here fp32)."""

    def call(aiter, x):
        rows, groups = x.shape[0], x.shape[1] // 32
        padded = sim_layout.mx_swizzled_shape(rows, groups) if shuffle else (rows, groups)
        scales = torch.zeros(padded[0] * padded[1] // 4)
        out = torch.empty(rows, x.shape[1] // 2, dtype=aiter.dtypes.fp4x2)
        aiter.dynamic_per_token_scaled_quant(out, x.view(-1, 32), scales, shuffle_scale=shuffle)
        return scales, FP4_E2M1

    return call


def _mx_hip(fp4: bool, shuffle: bool) -> Callable:
    def call(aiter, x):
        if fp4:
            _, scales = aiter.per_1x32_mx_quant_hip(x, quant_dtype=aiter.dtypes.fp4x2, shuffle=shuffle)
            return scales, FP4_E2M1
        _, scales = aiter.per_1x32_mx_quant_hip(
            x, quant_dtype=aiter.dtypes.fp8, shuffle=shuffle, scale_type=aiter.dtypes.fp8_e8m0
        )
        return scales, _fp8(aiter)

    return call


def _per_group_e8m0_swizzled(aiter, x):
    """``dynamic_per_group_scaled_quant`` into a caller's padded buffer: group 32 + shuffle is the MX swizzle."""
    rows, groups = x.shape[0], x.shape[1] // 32
    scales = torch.zeros(sim_layout.mx_swizzled_shape(rows, groups), dtype=torch.uint8)
    aiter.dynamic_per_group_scaled_quant(
        torch.empty(rows, x.shape[1] // 2, dtype=aiter.dtypes.fp4x2), x, scales, 32, shuffle_scale=True
    )
    return scales, FP4_E2M1


def _triton_mxfp4(mode: str) -> Callable:
    """Triton ``dynamic_mxfp4_quant``: e8m0 written through a column-major (M, G) view of a (G, M) buffer."""

    def call(aiter, x):
        from aiter.ops.triton.quant import dynamic_mxfp4_quant

        return dynamic_mxfp4_quant(x, scaling_mode=_SIM_MODES[mode])[1], FP4_E2M1

    return call


def _triton_mxfp4_shuffled(aiter, x):
    from aiter.ops.quant import per_1x32_f4_quant_triton

    return per_1x32_f4_quant_triton(x, shuffle=True)[1], FP4_E2M1


def _shuffle_scale_front_end(aiter, x):
    from aiter.ops.shuffle import shuffle_scale

    return shuffle_scale(aiter.per_1x32_mx_quant_hip(x, quant_dtype=aiter.dtypes.fp4x2)[1]), FP4_E2M1


_PRODUCERS = [
    *(
        Producer(
            f"per_group_quant_hip-g{group}-{'T' if transpose else 'N'}-{arch}",
            _per_group_hip(group, transpose),
            group,
            "transposed" if transpose else "row_major",
            arch=arch,
        )
        for group in (32, 64, 128)
        for transpose in (False, True)
        for arch in sim.ARCHS
    ),
    *(
        Producer(
            f"per_group_quant_hip-e8m0-g{group}-{'T' if transpose else 'N'}-{arch}",
            _per_group_hip(group, transpose, e8m0=True),
            group,
            "transposed" if transpose else "row_major",
            "up",
            arch=arch,
        )
        for group, transpose in ((32, False), (64, False), (64, True), (128, True))
        for arch in sim.ARCHS
    ),
    *(
        Producer(
            f"dynamic_per_token_scaled_quant-g{group}-{'shuffle' if shuffle else 'plain'}-"
            f"{'ckfree' if ck_free else 'ck'}",
            _per_token_grouped(group, shuffle),
            group,
            "transposed" if shuffle else "row_major",
            ck_free=ck_free,
        )
        for group in (64, 128)
        for shuffle in (False, True)
        for ck_free in (False, True)
    ),
    *(
        Producer(
            f"dynamic_per_token_scaled_quant-fp4-into-fp32-{'shuffle' if shuffle else 'plain'}",
            _per_token_fp4_into_fp32(shuffle),
            32,
            "mx_swizzle" if shuffle else "row_major",
            "up",
        )
        for shuffle in (False, True)
    ),
    *(
        Producer(
            f"per_1x32_mx_quant_hip-{'fp4' if fp4 else 'fp8'}-{'shuffle' if shuffle else 'plain'}-{arch}",
            _mx_hip(fp4, shuffle),
            32,
            "mx_swizzle" if shuffle else "row_major",
            "up",
            arch=arch,
        )
        for fp4 in (True, False)
        for shuffle in (False, True)
        for arch in sim.ARCHS
    ),
    Producer("dynamic_per_group_scaled_quant-e8m0-swizzled", _per_group_e8m0_swizzled, 32, "mx_swizzle", "up"),
    *(Producer(f"dynamic_mxfp4_quant-{mode}", _triton_mxfp4(mode), 32, "transposed", mode) for mode in ROUNDING_MODES),
    Producer("per_1x32_f4_quant_triton-shuffle", _triton_mxfp4_shuffled, 32, "mx_swizzle", "even"),
    Producer("shuffle_scale", _shuffle_scale_front_end, 32, "mx_swizzle", "up"),
]


def _input(group: int) -> torch.Tensor:
    """``(40, 256)`` bf16 whose groups' amaxes span 16 binades: every layout permutation and mode shows."""
    gen = torch.Generator().manual_seed(group)
    values = torch.randn(_ROWS, _K // group, group, generator=gen)
    magnitude = torch.exp2(torch.randint(-8, 8, (_ROWS, _K // group, 1), generator=gen).float())
    return (values * magnitude).reshape(_ROWS, _K).to(torch.bfloat16)


def _sim_read(scales: torch.Tensor, encoding: str, layout: str, rows: int, groups: int) -> torch.Tensor:
    """The scales read back by the simulator's own readers (not numerics.read_scales); e8m0 as bytes."""
    raw = scales.view(torch.uint8) if encoding == "e8m0" else scales
    if layout == "row_major":
        return sim_layout.read_row_major(raw, rows, groups)
    if layout == "transposed":
        return sim_layout.read_col_major(raw, rows, groups)
    return sim_layout.mx_unswizzle(raw, rows, groups, sim_layout.round_up(groups, 8))


@pytest.fixture
def simulated():
    """Install the simulator (a release build: Triton MXFP4 honours ``scaling_mode``); uninstalled afterwards."""

    def install(arch: str = "gfx950", ck_free: bool = False, faults: tuple[str, ...] = ()) -> Any:
        sim.install(arch, ck_free=ck_free, faults=faults, release_build=True)
        import aiter

        return aiter

    yield install
    sim.uninstall()


def _quantize(simulated, producer: Producer) -> tuple[torch.Tensor, torch.Tensor, ElementFormat]:
    aiter = simulated(producer.arch, producer.ck_free, producer.faults)
    x = _input(producer.group)
    scales, element = producer.call(aiter, x)
    return x, scales, element


@pytest.mark.parametrize("producer", _PRODUCERS, ids=lambda producer: producer.name)
def test_expected_scales_are_the_simulated_kernels_bytes(simulated, producer):
    x, scales, element = _quantize(simulated, producer)
    amax = group_amax(x, producer.group)
    ours = expected_scales(amax, producer.encoding, element)[producer.mode]
    theirs = _sim_read(scales, producer.encoding, producer.layout, *amax.shape)
    if producer.encoding == "e8m0":
        assert torch.equal(theirs.to(torch.int64), ours)
    else:
        assert torch.equal(theirs.view(torch.int32), ours.view(torch.int32))


@pytest.mark.parametrize("producer", _PRODUCERS, ids=lambda producer: producer.name)
def test_written_layout_names_the_option_the_simulated_kernel_used(simulated, producer):
    x, scales, element = _quantize(simulated, producer)
    result = written_layout(x, scales, producer.group, producer.encoding, element, _CANDIDATES)
    assert result.compared == x.shape[0] * (x.shape[1] // producer.group)
    assert result.layouts == (producer.layout,)
    assert result.best(producer.mode) == (producer.layout, producer.mode)


def test_written_layout_sees_a_fallback_ignore_shuffle_scale(simulated):
    """The CK-free incident: ``shuffle_scale=True`` requested, the Triton fallback wrote row-major."""
    producer = Producer(
        "ignored",
        _per_token_grouped(128, True),
        128,
        "transposed",
        ck_free=True,
        faults=("triton_quant_ignores_shuffle_scale",),
    )
    x, scales, element = _quantize(simulated, producer)
    result = written_layout(x, scales, producer.group, "fp32", element, _CANDIDATES)
    assert result.layouts == ("row_major",)


def test_written_layout_sees_a_ceil_rounding_declared_even(simulated):
    """DeepSeek-V4: the Triton MXFP4 producer declares Even and rounds ceil(log2)."""
    producer = Producer("ceil", _triton_mxfp4("even"), 32, "transposed", "even", faults=("e8m0_ceil_rounding",))
    x, scales, element = _quantize(simulated, producer)
    result = written_layout(x, scales, 32, "e8m0", element, _CANDIDATES)
    assert result.layouts == ("transposed",)
    assert "ceil" in result.encodings("transposed") and "even" not in result.encodings("transposed")
    assert result.best("even") == ("transposed", "ceil")


# -- the weight preshuffle ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((64, 256), torch.float8_e4m3fn),
        ((64, 256), torch.bfloat16),
        ((64, 256), torch.int32),
        ((3, 32, 128), torch.bfloat16),
        ((3, 32, 256), torch.float8_e4m3fnuz),
        ((32, 128), torch.uint8),
        ((32, 128), torch.float4_e2m1fn_x2),
    ],
    ids=lambda v: str(v).replace("torch.", "").replace(" ", ""),
)
@pytest.mark.parametrize("layout", [(16, 16), (32, 16)])
def test_weight_preshuffle_is_the_simulated_shuffle_weight(simulated, shape, dtype, layout):
    """AITER packs 16 bytes of K (8 bf16, 4 int32 values; fp4x2 as bytes), through ``aiter.ops.shuffle``."""
    simulated()
    from aiter.ops.shuffle import shuffle_weight as simulated_shuffle

    gen = torch.Generator().manual_seed(0)
    if dtype.is_floating_point and dtype != torch.float4_e2m1fn_x2:
        weight = (torch.randn(*shape, generator=gen) * 8).to(dtype)
    else:
        weight = torch.randint(0, 100, shape, generator=gen, dtype=torch.int32 if dtype == torch.int32 else torch.uint8)
        weight = weight.view(dtype)
    shuffled = shuffle_weight(weight, layout)
    assert torch.equal(shuffled.view(torch.uint8), simulated_shuffle(weight, layout).view(torch.uint8))
    assert torch.equal(unshuffle_weight(shuffled, layout).view(torch.uint8), weight.view(torch.uint8))
