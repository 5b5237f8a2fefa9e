"""Every quantized-linear path through AITER, as one table: scheme x backend -> entry points and layouts.

A path is what one linear layer does on one backend: an AITER quant entry point
turns the 16-bit activation into values plus scales, the checkpoint weight is
laid out the way the GEMM reads it (preshuffled, scales swizzled), and an AITER
GEMM multiplies them. Each :class:`AiterPath` says which entry points, called
with which flags, which scale layouts the GEMM reads, where the path exists
(arch, CK, ASM) and which shapes it takes. :data:`SCHEMES` holds what a scheme
fixes for every backend (the quantized dtype, ATOM's ``QuantType``, the scale
granularities).

Three users read it, so a path is declared once:

* ``quantguard validate quant`` runs every row as a chain (:mod:`quantguard.validate.quant`);
* ``quantguard validate accuracy`` picks the row ATOM would run for a scheme,
  backend and weight layout (:func:`quantguard.validate.quantize_kernels.kernel_path`);
* the simulator's ATOM workload takes its layer quant types, checkpoint scale
  granularities and tuned-config routes from it (:mod:`quantguard.sim.workload`).

Entry points are dotted paths into AITER's defining modules (``aiter.X`` is a
re-export of the same function), resolved by the users when a path runs: this
module imports neither torch nor AITER. ``tests/contracts/test_aiter_paths.py``
checks every path and keyword against the real AITER tree and the simulator.

Left out on purpose: ``flatmm_a8w8_blockscale_ASM`` (its weight and scales use
a transposed flat layout of its own that ATOM never produces). AITER has no
INT4 linear GEMM: the ``int4`` row runs a torch W4A16 stand-in and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ARCHS",
    "ATOM_BACKENDS",
    "BACKENDS",
    "PATHS",
    "SCHEMES",
    "SCHEME_NAMES",
    "W_SCALE_LAYOUTS",
    "X_SCALE_LAYOUTS",
    "AiterPath",
    "Call",
    "DType",
    "MinRows",
    "Scheme",
    "atom_preshuffles",
    "call",
    "scheme_archs",
]

#: Archs AITER's quantized GEMMs target (gfx942 = MI300X, gfx950 = MI355X).
ARCHS: tuple[str, ...] = ("gfx942", "gfx950")
#: Every backend a path can run on, in report order ("torch": AITER has no kernel for the scheme).
BACKENDS: tuple[str, ...] = ("asm", "ck", "cktile", "triton", "hipblaslt", "torch")
#: Backends an ATOM deployment can prefer: CK, Triton (``ATOM_USE_TRITON_GEMM``), ASM (through tuned configs).
ATOM_BACKENDS: tuple[str, ...] = ("ck", "triton", "asm")

#: How a GEMM reads ``x_scale`` (the names :mod:`quantguard.numerics.layouts` reads scales in).
X_SCALE_LAYOUTS: dict[str, str] = {
    "logical": "as the tensor's shape and strides say: (M, 1) per token, one per-tensor scalar, (M, G)",
    "row_major": "(M, G) groups, row-major bytes",
    "transposed": "(M, G) tensor whose bytes are (G, M): per_group_quant_hip(transpose_scale=True)",
    "mx_swizzle": "e8m0 bytes in AITER's MX swizzle (pad256(M), pad8(G))",
    "none": "no activation scales (16-bit activations)",
}
#: How a GEMM reads ``w_scale``.
W_SCALE_LAYOUTS: dict[str, str] = {
    "per_channel": "(N, 1) fp32 (a per-tensor scale repeated)",
    "per_channel_row": "(1, N) fp32 (a per-tensor scale repeated)",
    "per_tensor": "the checkpoint's one fp32 scale, as is",
    "blocks": "(N/128, K/128) fp32, row-major",
    "e8m0": "(N, K/32) e8m0 bytes, row-major",
    "e8m0_mx_swizzle": "e8m0 bytes MX-swizzled by aiter.utility.fp4_utils.e8m0_shuffle",
    "none": "no weight scale (folded into a 16-bit weight)",
}


@dataclass(frozen=True)
class DType:
    """An ``aiter.dtypes`` attribute passed as an argument (the arch decides which FP8 ``fp8`` is)."""

    name: str

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class MinRows:
    """A flag that holds for activations of at least ``rows`` rows (ATOM swizzles MXFP4 scales from 32 on)."""

    rows: int

    def holds(self, m: int) -> bool:
        return m >= self.rows

    def __repr__(self) -> str:
        return f"M>={self.rows}"


@dataclass(frozen=True)
class Call:
    """One AITER entry point and the keyword arguments it is called with.

    ``arguments`` holds the flags that decide what the call writes or reads
    (``transpose_scale``, ``shuffle``, ``isBpreshuffled``...); operands and the
    output dtype are passed by the caller. ``dispatches_to`` names the kernel
    the entry point reaches internally, when that is the point of the path.
    Build one with :func:`call`.
    """

    path: str
    arguments: tuple[tuple[str, object], ...] = ()
    dispatches_to: str | None = None

    @property
    def kwargs(self) -> dict[str, object]:
        return dict(self.arguments)

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]

    def __str__(self) -> str:
        # The quantized dtype follows from the scheme; the flags are what tells two rows apart.
        flags = ", ".join(f"{key}={value!r}" for key, value in self.arguments if key != "quant_dtype")
        text = f"{self.path}({flags})" if flags else self.path
        return text + (f" -> {self.dispatches_to.rpartition('.')[2]}" if self.dispatches_to else "")


def call(path: str, dispatches_to: str | None = None, **kwargs: object) -> Call:
    """``Call(path, kwargs)``, the keywords in the order written."""
    return Call(path, tuple(kwargs.items()), dispatches_to)


@dataclass(frozen=True)
class Scheme:
    """What a quantization scheme fixes on every backend.

    ``quant_type``: the ``aiter.QuantType`` member ATOM builds the layer with
    (``None``: not an AITER scheme). ``quant_dtype``: the ``aiter.dtypes``
    attribute of the quantized values. ``activation_group``: elements per
    activation scale, ``None`` per token, ``0`` per tensor. ``x_scale_dtype``:
    ``"fp32"``, ``"e8m0"`` or ``"none"``. ``weight_scale``: the checkpoint's
    weight-scale granularity (``per_channel``, ``per_tensor``,
    ``block_128x128``, ``mx_1x32``, ``int4_1x128``).
    """

    name: str
    quant_type: str | None
    quant_dtype: str | None
    activation_group: int | None
    x_scale_dtype: str
    weight_scale: str


@dataclass(frozen=True)
class AiterPath:
    """One quant -> GEMM path: entry points, weight preparation, the scale layouts its GEMM reads.

    ``quant`` is ``None`` where activations stay 16-bit and ``gemm`` where
    AITER has no GEMM (``note`` says what runs instead). ``weight_prep`` and
    ``w_scale_prep`` turn the checkpoint weight and its scale into what the
    GEMM reads (``None``: as loaded). ``x_scale_below_32_rows``: the layout
    read under 32 rows where it differs. ``x_scale_rounding``: the e8m0
    rounding AITER declares for the quant entry point. ``ck``: CK or CK-Tile
    code, absent from CK-free builds; ``asm``: a prebuilt ASM kernel, which a
    CK-free build must not run on gfx950. ``reached_by``: the entry point ATOM
    calls that reaches this GEMM when AITER's tuned config for the shape names
    it. Shapes: N and K multiples, minimum M and K.
    """

    scheme: str
    backend: str
    variant: str
    quant: Call | None
    gemm: Call | None
    x_scale: str
    w_scale: str
    weight_prep: Call | None = None
    w_scale_prep: Call | None = None
    x_scale_below_32_rows: str | None = None
    x_scale_rounding: str | None = None
    archs: tuple[str, ...] = ARCHS
    ck: bool = False
    asm: bool = False
    reached_by: str | None = None
    n_multiple: int = 1
    k_multiple: int = 1
    m_min: int = 1
    k_min: int = 1
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.scheme}/{self.backend}" + (f" ({self.variant})" if self.variant else "")

    @property
    def preshuffled(self) -> bool:
        """Whether the GEMM reads a preshuffled weight."""
        return self.weight_prep is not None

    @property
    def quant_label(self) -> str:
        return str(self.quant) if self.quant is not None else "none (16-bit activations)"

    @property
    def gemm_label(self) -> str:
        return str(self.gemm) if self.gemm is not None else self.note

    def calls(self) -> tuple[Call, ...]:
        """The entry points the path calls, weight preparation included."""
        return tuple(c for c in (self.weight_prep, self.w_scale_prep, self.quant, self.gemm) if c is not None)

    def entry_points(self) -> tuple[str, ...]:
        """Every AITER dotted path the row names."""
        named = [c.path for c in self.calls()] + [c.dispatches_to for c in self.calls() if c.dispatches_to]
        return tuple(named + ([self.reached_by] if self.reached_by else []))


_FP8, _I8, _FP4X2 = DType("fp8"), DType("i8"), DType("fp4x2")
_GFX950_ONLY = ("gfx950",)
_BLOCK = 128

#: Per scheme, in report order.
SCHEMES: dict[str, Scheme] = {
    scheme.name: scheme
    for scheme in (
        Scheme("fp8_per_token", "per_Token", "fp8", None, "fp32", "per_channel"),
        Scheme("fp8_blockscale", "per_1x128", "fp8", _BLOCK, "fp32", "block_128x128"),
        Scheme("fp8_per_tensor", "per_Tensor", "fp8", 0, "fp32", "per_tensor"),
        Scheme("mxfp4", "per_1x32", "fp4x2", 32, "e8m0", "mx_1x32"),  # HIP producer (RoundUp)
        Scheme("fp4", "per_1x32", "fp4x2", 32, "e8m0", "mx_1x32"),  # fp4-only and Triton producers
        Scheme("int8", "per_Token", "i8", None, "fp32", "per_channel"),
        Scheme("int4", None, None, None, "none", "int4_1x128"),  # W4A16: no AITER linear kernel
    )
}
SCHEME_NAMES: tuple[str, ...] = tuple(SCHEMES)

# -- entry points ---------------------------------------------------------------------------------

_Q = "aiter.ops.quant."
_TQ = "aiter.ops.triton.quant."
_G8 = "aiter.ops.gemm_op_a8w8."
_G4 = "aiter.ops.gemm_op_a4w4."
_TG = "aiter.ops.triton.gemm.basic."

_SHUFFLE = call("aiter.ops.shuffle.shuffle_weight", layout=(16, 16))
_SHUFFLE_32X16 = call("aiter.ops.shuffle.shuffle_weight", layout=(32, 16))
_E8M0_SHUFFLE = call("aiter.utility.fp4_utils.e8m0_shuffle")


def _per_token(dtype: DType) -> Call:
    return call(_Q + "per_token_quant_hip", quant_dtype=dtype)


def _groups(transpose_scale: bool) -> Call:
    return call(_Q + "per_group_quant_hip", quant_dtype=_FP8, group_size=_BLOCK, transpose_scale=transpose_scale)


def _mx(entry: str, shuffle: bool | MinRows) -> Call:
    return call(_Q + entry, quant_dtype=_FP4X2, shuffle=shuffle)


_TRITON_PER_TOKEN = call(_TQ + "dynamic_per_token_quant_fp8_i8")
_HIP_PER_TENSOR = call(_Q + "dynamic_per_tensor_quant")
_TRITON_PER_TENSOR = call(_TQ + "dynamic_per_tensor_quant_fp8_i8")
_TRITON_MX = call(_TQ + "dynamic_mxfp4_quant")

_A8W8_CK = call(_G8 + "gemm_a8w8_CK")
_A8W8_TRITON = call(_TG + "gemm_a8w8.gemm_a8w8")
_BLOCKSCALE_BPRESHUFFLE = call(_G8 + "gemm_a8w8_blockscale_bpreshuffle")
_A4W4 = call(_G4 + "gemm_a4w4", dispatches_to=_G4 + "gemm_a4w4_asm")  # untuned shapes run the ASM kernel
_AFP4WFP4 = call(_TG + "gemm_afp4wfp4.gemm_afp4wfp4")

_BLOCK_SHAPES = {"n_multiple": _BLOCK, "k_multiple": _BLOCK}
# Preshuffled fp4 bytes need N % 16 and (K/2) % 32; plain fp4 needs whole e8m0 groups.
_FP4_SHUFFLED = {"archs": _GFX950_ONLY, "n_multiple": 16, "k_multiple": 64}
_FP4_PLAIN = {"archs": _GFX950_ONLY, "k_multiple": 32}

# -- the table ------------------------------------------------------------------------------------
# Where rows share scheme, backend and weight layout, ATOM's pairing comes first (validate accuracy
# takes the first match).

#: Every path, in report order.
PATHS: tuple[AiterPath, ...] = (
    # FP8 per-token activations x per-channel weights. ATOM: gemm_a8w8_bpreshuffle, Triton gemm_a8w8.
    AiterPath("fp8_per_token", "ck", "", _per_token(_FP8), _A8W8_CK, "logical", "per_channel", ck=True),
    AiterPath(
        "fp8_per_token",
        "ck",
        "bpreshuffle",
        _per_token(_FP8),
        call(_G8 + "gemm_a8w8_bpreshuffle"),
        "logical",
        "per_channel",
        weight_prep=_SHUFFLE,
        ck=True,
        n_multiple=16,
        k_multiple=32,
    ),
    AiterPath(
        "fp8_per_token",
        "cktile",
        "bpreshuffle",
        _per_token(_FP8),
        call(_G8 + "gemm_a8w8_bpreshuffle_cktile"),
        "logical",
        "per_channel",
        weight_prep=_SHUFFLE,
        ck=True,
        n_multiple=16,
        k_multiple=32,
    ),
    # ATOM quantizes per-token layers with the HIP producer whatever the GEMM, so its Triton pairing is a path.
    AiterPath("fp8_per_token", "triton", "hip quant", _per_token(_FP8), _A8W8_TRITON, "logical", "per_channel_row"),
    AiterPath("fp8_per_token", "triton", "", _TRITON_PER_TOKEN, _A8W8_TRITON, "logical", "per_channel_row"),
    # FP8 1x128 activation groups x 128x128 weight blocks. ATOM: transpose_scale = weight preshuffle.
    AiterPath(
        "fp8_blockscale",
        "ck",
        "",
        _groups(False),
        call(_G8 + "gemm_a8w8_blockscale"),
        "row_major",
        "blocks",
        ck=True,
        **_BLOCK_SHAPES,
    ),
    AiterPath(
        "fp8_blockscale",
        "ck",
        "bpreshuffle",
        _groups(True),
        _BLOCKSCALE_BPRESHUFFLE,
        "transposed",
        "blocks",
        weight_prep=_SHUFFLE,
        ck=True,
        **_BLOCK_SHAPES,
    ),
    AiterPath(
        "fp8_blockscale",
        "cktile",
        "",
        _groups(False),
        call(_G8 + "gemm_a8w8_blockscale_cktile"),
        "row_major",
        "blocks",
        ck=True,
        **_BLOCK_SHAPES,
    ),
    AiterPath(
        "fp8_blockscale",
        "triton",
        "",
        _groups(False),
        call(_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale"),
        "logical",
        "blocks",
        **_BLOCK_SHAPES,
    ),
    AiterPath(
        "fp8_blockscale",
        "triton",
        "preshuffle",
        _groups(True),
        call(_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle", is_x_scale_tranposed=True),
        "transposed",
        "blocks",
        weight_prep=_SHUFFLE,
        **_BLOCK_SHAPES,
    ),
    AiterPath(
        "fp8_blockscale",
        "asm",
        "bpreshuffle",
        _groups(True),
        call(_G8 + "gemm_a8w8_blockscale_bpreshuffle_asm"),
        "transposed",
        "blocks",
        weight_prep=_SHUFFLE,
        asm=True,
        reached_by=_BLOCKSCALE_BPRESHUFFLE.path,
        **_BLOCK_SHAPES,
    ),
    AiterPath(
        "fp8_blockscale",
        "asm",
        "gfx950",
        _groups(False),
        call(_G8 + "gemm_a8w8_blockscale", dispatches_to=_G8 + "gfx950_a8w8_blockscale_ASM", isBpreshuffled=True),
        "row_major",
        "blocks",
        weight_prep=_SHUFFLE,
        archs=_GFX950_ONLY,
        asm=True,
        m_min=16,
        k_min=512,
        **_BLOCK_SHAPES,
    ),
    # FP8 per-tensor. ATOM: hipBLASLt tgemm.mm, Triton gemm_a8w8.
    AiterPath(
        "fp8_per_tensor", "hipblaslt", "", _HIP_PER_TENSOR, call("aiter.tuned_gemm.tgemm.mm"), "logical", "per_tensor"
    ),
    AiterPath("fp8_per_tensor", "ck", "", _HIP_PER_TENSOR, _A8W8_CK, "logical", "per_channel", ck=True),
    AiterPath("fp8_per_tensor", "triton", "", _TRITON_PER_TENSOR, _A8W8_TRITON, "logical", "per_channel_row"),
    # MXFP4 (HIP producer, RoundUp e8m0). ATOM: gemm_a4w4 (CK where tuned), Triton preshuffle GEMM.
    AiterPath(
        "mxfp4",
        "asm",
        "",
        _mx("per_1x32_mx_quant_hip", True),
        _A4W4,
        "mx_swizzle",
        "e8m0_mx_swizzle",
        weight_prep=_SHUFFLE,
        w_scale_prep=_E8M0_SHUFFLE,
        x_scale_rounding="up",
        asm=True,
        **_FP4_SHUFFLED,
    ),
    AiterPath(
        "mxfp4",
        "ck",
        "",
        _mx("per_1x32_mx_quant_hip", True),
        call(_G4 + "gemm_a4w4_blockscale"),
        "mx_swizzle",
        "e8m0_mx_swizzle",
        weight_prep=_SHUFFLE,
        w_scale_prep=_E8M0_SHUFFLE,
        x_scale_rounding="up",
        ck=True,
        reached_by=_A4W4.path,
        **_FP4_SHUFFLED,
    ),
    AiterPath(
        "mxfp4",
        "triton",
        "",
        _mx("per_1x32_mx_quant_hip", False),
        _AFP4WFP4,
        "logical",
        "e8m0",
        x_scale_rounding="up",
        **_FP4_PLAIN,
    ),
    AiterPath(
        "mxfp4",
        "triton",
        "preshuffle",
        _mx("per_1x32_mx_quant_hip", MinRows(32)),
        call(_TG + "gemm_afp4wfp4.gemm_afp4wfp4_preshuffle"),
        "mx_swizzle",
        "e8m0_mx_swizzle",
        weight_prep=_SHUFFLE,
        w_scale_prep=_E8M0_SHUFFLE,
        x_scale_below_32_rows="row_major",
        x_scale_rounding="up",
        **_FP4_SHUFFLED,
    ),
    # FP4 from the fp4-only HIP wrapper and from Triton (Even e8m0).
    AiterPath(
        "fp4",
        "asm",
        "",
        _mx("per_1x32_f4_quant_hip", True),
        _A4W4,
        "mx_swizzle",
        "e8m0_mx_swizzle",
        weight_prep=_SHUFFLE,
        w_scale_prep=_E8M0_SHUFFLE,
        x_scale_rounding="up",
        asm=True,
        **_FP4_SHUFFLED,
    ),
    AiterPath("fp4", "triton", "", _TRITON_MX, _AFP4WFP4, "logical", "e8m0", x_scale_rounding="even", **_FP4_PLAIN),
    # INT8 per-token x per-channel. ATOM: gemm_a8w8 (its ASM GEMMs are INT8-only).
    AiterPath(
        "int8",
        "asm",
        "",
        _per_token(_I8),
        call(_G8 + "gemm_a8w8_ASM"),
        "logical",
        "per_channel_row",
        weight_prep=_SHUFFLE_32X16,
        asm=True,
        n_multiple=32,
        k_multiple=32,
    ),
    AiterPath("int8", "ck", "", _per_token(_I8), _A8W8_CK, "logical", "per_channel", ck=True),
    AiterPath("int8", "triton", "", _TRITON_PER_TOKEN, _A8W8_TRITON, "logical", "per_channel_row"),
    # INT4 weight-only, group 128: no AITER linear GEMM.
    AiterPath(
        "int4",
        "torch",
        "W4A16",
        None,
        None,
        "none",
        "none",
        k_multiple=128,
        note="torch W4A16 (AITER has no INT4 linear GEMM)",
    ),
)


def scheme_archs(scheme: str) -> tuple[str, ...]:
    """The archs on which AITER has some path for ``scheme``."""
    return tuple(arch for arch in ARCHS if any(arch in path.archs for path in PATHS if path.scheme == scheme))


def atom_preshuffles(backend: str, ck_free: bool = False) -> bool:
    """ATOM's default weight layout: preshuffled unless the GEMMs run on Triton (which CK-free forces)."""
    return backend != "triton" and not ck_free
