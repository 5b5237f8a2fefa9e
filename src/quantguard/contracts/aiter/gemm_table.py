"""AITER's scaled GEMMs (CK, ASM, Triton, hipBLASLt) and its JIT builder, as contracts.

Each GEMM entry: path, backend, adapter (:mod:`.gemm_adapters`), expected
parameters, signature key; ASM kernels carry ``asm=True``, the safe Triton
``alternative`` named when they are blocked, and the ``reroute`` that calls it
with converted arguments (:mod:`quantguard.contracts.reroutes`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from quantguard.contracts.aiter import gemm_adapters as gemm
from quantguard.contracts.base import Contract, KeyParam, identity, optional, strided, tensor, value

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["CONTRACTS"]

#: ``scale_pairing`` precedes ``scale_provenance`` (which spends the records) and every numerics check.
_GEMM_CHECKS = (
    "asm_policy",
    "ck_free_backend",
    "scale_tensors",
    "fp8_variant",
    "scale_pairing",
    "scale_values",
    "scale_provenance",
    "gemm_numerics",
    "scale_plausibility",
    "weight_scales",
    "nonfinite",
    "ignored_parameter",
)


def _gemm(
    target: str,
    backend: str,
    interpret: Callable[..., Any],
    params: tuple[str, ...],
    key: tuple[KeyParam, ...],
    asm: bool = False,
    alternative: str | None = None,
    reroute: Callable[..., Any] | None = None,
    depends_on: tuple[str, ...] = (),
    honored: tuple[str, ...] = (),
    description: str = "",
    options: Mapping[str, Any] | None = None,
) -> Contract:
    depends = (
        {name: depends_on for name in ("scale_tensors", "scale_provenance", "gemm_numerics")} if depends_on else {}
    )
    return Contract(
        target=target,
        kind="gemm",
        backend=backend,
        checks=_GEMM_CHECKS,
        key=key,
        interpret=interpret,
        params=params,
        depends=depends,
        asm=asm,
        alternative=alternative,
        reroute=reroute,
        honored=honored,
        description=description,
        options=dict(options or {}),
    )


def _reroute(name: str) -> Callable[..., Any]:
    def reroute(call: CallRecord) -> Any:
        from quantguard.contracts import reroutes

        return getattr(reroutes, name)(call)

    reroute.__name__ = name
    return reroute


_G8 = "aiter.ops.gemm_op_a8w8."
_G4 = "aiter.ops.gemm_op_a4w4."
_TG = "aiter.ops.triton.gemm.basic."

CONTRACTS: list[Contract] = [
    # -- a8w8 GEMMs --
    _gemm(
        _G8 + "gemm_a8w8",
        "ck",
        gemm.a8w8("plain"),
        ("XQ", "WQ", "x_scale", "w_scale", "bias", "dtype", "splitK"),
        (tensor("XQ"), identity("WQ"), strided("x_scale"), identity("w_scale"), optional("bias"), value("dtype")),
        description="per-token a8w8 GEMM (CK; may dispatch internally)",
    ),
    _gemm(
        _G8 + "gemm_a8w8_CK",
        "ck",
        gemm.a8w8("plain"),
        ("XQ", "WQ", "x_scale", "w_scale", "bias", "dtype", "splitK"),
        (tensor("XQ"), identity("WQ"), strided("x_scale"), identity("w_scale"), optional("bias"), value("dtype")),
        description="per-token a8w8 GEMM (CK)",
    ),
    _gemm(
        _G8 + "gemm_a8w8_ASM",
        "asm",
        gemm.a8w8("preshuffle_32x16"),
        ("XQ", "WQ", "x_scale", "w_scale", "bias", "dtype", "check"),
        (tensor("XQ"), identity("WQ"), strided("x_scale"), identity("w_scale"), optional("bias"), value("dtype")),
        asm=True,
        alternative=_TG + "gemm_a8w8.gemm_a8w8",
        reroute=_reroute("a8w8_asm_to_triton"),
        description="per-token a8w8 GEMM (ASM, weight preshuffled with layout (32, 16))",
    ),
    _gemm(
        _G8 + "gemm_a8w8_bpreshuffle",
        "ck",
        gemm.a8w8("preshuffle_16x16"),
        ("XQ", "WQ", "x_scale", "w_scale", "bias", "dtype", "check"),
        (tensor("XQ"), identity("WQ"), strided("x_scale"), identity("w_scale"), optional("bias"), value("dtype")),
        alternative=_TG + "gemm_a8w8.gemm_a8w8",
        description="per-token a8w8 GEMM, preshuffled weight (CK)",
    ),
    _gemm(
        _G8 + "gemm_a8w8_blockscale",
        "ck",
        gemm.blockscale,
        ("XQ", "WQ", "x_scale", "w_scale", "dtype", "isBpreshuffled"),
        (
            tensor("XQ"),
            identity("WQ"),
            strided("x_scale"),
            identity("w_scale"),
            value("dtype"),
            value("isBpreshuffled"),
        ),
        depends_on=("isBpreshuffled",),
        alternative=_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale",
        description="1x128/128x128 blockscale GEMM, row-major x_scale",
        # isBpreshuffled=True dispatches to gfx950_a8w8_blockscale_ASM (guarded by its own contract), not CK.
        options={"not_ck_when": ("isBpreshuffled",)},
    ),
    _gemm(
        _G8 + "gemm_a8w8_blockscale_bpreshuffle",
        "ck",
        gemm.blockscale_bpreshuffle,
        ("XQ", "WQ", "x_scale", "w_scale", "dtype", "out"),
        (tensor("XQ"), identity("WQ"), strided("x_scale"), identity("w_scale"), value("dtype"), optional("out")),
        alternative=_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle",
        description="blockscale GEMM with preshuffled weight and transposed x_scale",
    ),
    _gemm(
        _G8 + "flatmm_a8w8_blockscale_ASM",
        "asm",
        gemm.flatmm_asm,
        ("XQ", "WQ", "x_scale", "w_scale", "dtype"),
        (tensor("XQ"), identity("WQ"), strided("x_scale"), identity("w_scale"), value("dtype")),
        asm=True,
        alternative=_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale",
        reroute=_reroute("flatmm_asm_to_triton"),
        description="blockscale flat GEMM (ASM, fp16 out; scales (K/128, M)/(K/128, N/128), weight shuffled (16, 32))",
    ),
    _gemm(
        _G8 + "gemm_a8w8_blockscale_bpreshuffle_asm",
        "asm",
        gemm.blockscale_bpreshuffle_asm,
        ("A", "B", "out", "A_scale", "B_scale", "bias", "splitK", "kernelName", "bpreshuffle", "zero_bias_buf"),
        (tensor("A"), identity("B"), tensor("out"), strided("A_scale"), identity("B_scale"), optional("bias")),
        asm=True,
        alternative=_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle",
        reroute=_reroute("blockscale_bpreshuffle_asm_to_triton"),
        description="blockscale GEMM (ASM; reached by tuned config from the bpreshuffle entry)",
    ),
    _gemm(
        _G8 + "gfx950_a8w8_blockscale_ASM",
        "asm",
        gemm.gfx950_blockscale_asm,
        ("XQ", "WQ", "x_scale", "w_scale", "Y", "dtype"),
        (tensor("XQ"), identity("WQ"), strided("x_scale"), identity("w_scale"), tensor("Y")),
        asm=True,
        alternative=_TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle",
        reroute=_reroute("gfx950_blockscale_asm_to_triton"),
        description="gfx950 blockscale ASM reached from gemm_a8w8_blockscale(isBpreshuffled=True)",
    ),
    # -- a4w4 GEMMs --
    _gemm(
        _G4 + "gemm_a4w4",
        "asm",
        gemm.a4w4,
        (
            "A",
            "B",
            "A_scale",
            "B_scale",
            "bias",
            "dtype",
            "alpha",
            "beta",
            "bpreshuffle",
            "apreshuffle",
            "global_A_scale",
            "global_B_scale",
        ),
        (
            tensor("A"),
            identity("B"),
            strided("A_scale"),
            identity("B_scale"),
            optional("bias"),
            value("dtype"),
            value("alpha"),
            value("beta"),
            value("bpreshuffle"),
        ),
        alternative=_TG + "gemm_afp4wfp4.gemm_afp4wfp4_preshuffle",
        description="MXFP4 GEMM; dispatches to ASM gemm_a4w4_asm unless a CK config exists",
    ),
    _gemm(
        _G4 + "gemm_a4w4_asm",
        "asm",
        gemm.a4w4_asm,
        ("A", "B", "A_scale", "B_scale", "out", "kernelName", "bias", "alpha", "beta", "bpreshuffle", "log2_k_split"),
        (
            tensor("A"),
            identity("B"),
            strided("A_scale"),
            identity("B_scale"),
            tensor("out"),
            optional("bias"),
            value("alpha"),
            value("beta"),
            value("bpreshuffle"),
        ),
        asm=True,
        alternative=_TG + "gemm_afp4wfp4.gemm_afp4wfp4_preshuffle",
        description="MXFP4 GEMM (ASM)",
    ),
    # -- Triton GEMMs --
    _gemm(
        _TG + "gemm_a8w8.gemm_a8w8",
        "triton",
        gemm.triton_a8w8,
        ("x", "w", "x_scale", "w_scale", "bias", "dtype", "y", "config", "skip_reduce"),
        (
            tensor("x"),
            identity("w"),
            strided("x_scale"),
            identity("w_scale"),
            optional("bias"),
            value("dtype"),
            optional("y"),
        ),
        description="Triton per-token a8w8 GEMM",
    ),
    _gemm(
        _TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale",
        "triton",
        gemm.triton_blockscale,
        ("x", "w", "x_scale", "w_scale", "dtype", "y", "config", "skip_reduce", "kernel_type", "backend"),
        (tensor("x"), identity("w"), strided("x_scale"), identity("w_scale"), value("dtype"), optional("y")),
        description="Triton blockscale GEMM",
    ),
    _gemm(
        _TG + "gemm_a8w8_blockscale.gemm_a8w8_blockscale_preshuffle",
        "triton",
        gemm.triton_blockscale_preshuffle,
        (
            "x",
            "w",
            "x_scale",
            "w_scale",
            "dtype",
            "y",
            "config",
            "skip_reduce",
            "is_x_scale_tranposed",
            "kernel_type",
            "backend",
        ),
        (
            tensor("x"),
            identity("w"),
            strided("x_scale"),
            identity("w_scale"),
            value("dtype"),
            optional("y"),
            value("is_x_scale_tranposed"),
        ),
        depends_on=("is_x_scale_tranposed",),
        honored=("is_x_scale_tranposed",),
        description="Triton blockscale GEMM on a preshuffled (N/16, K*16) weight",
    ),
    _gemm(
        _TG + "gemm_afp4wfp4.gemm_afp4wfp4",
        "triton",
        gemm.afp4wfp4,
        ("x", "w", "x_scales", "w_scales", "dtype", "y", "config", "skip_reduce"),
        (tensor("x"), identity("w"), strided("x_scales"), identity("w_scales"), value("dtype"), optional("y")),
        description="Triton MXFP4 GEMM",
    ),
    _gemm(
        _TG + "gemm_afp4wfp4.gemm_afp4wfp4_preshuffle",
        "triton",
        gemm.afp4wfp4_preshuffle,
        ("x_fp4", "w_preshuf", "x_scales", "w_scales", "dtype", "y", "config", "skip_reduce"),
        (
            tensor("x_fp4"),
            identity("w_preshuf"),
            strided("x_scales"),
            identity("w_scales"),
            value("dtype"),
            optional("y"),
        ),
        description="Triton MXFP4 GEMM on preshuffled weight and scales",
    ),
    _gemm(
        "aiter.ops.triton.gemm.batched.batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant"
        ".batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant",
        "triton",
        gemm.batched_prequant,
        (
            "X",
            "WQ",
            "w_scale",
            "group_size",
            "bias",
            "dtype",
            "splitK",
            "YQ",
            "transpose_bm",
            "transpose_bm_in",
            "config",
        ),
        (
            tensor("X"),
            identity("WQ"),
            identity("w_scale"),
            value("group_size"),
            optional("bias"),
            value("dtype"),
            optional("YQ"),
            value("transpose_bm"),
            value("transpose_bm_in"),
        ),
        honored=("group_size", "transpose_bm", "transpose_bm_in"),
        description="MLA batched GEMM quantizing X per token-group inside the kernel",
    ),
    _gemm(
        "aiter.tuned_gemm:tgemm.mm",
        "hipblaslt",
        gemm.tgemm,
        ("inp", "weights", "bias", "otype", "scale_a", "scale_b", "scale_c"),
        (
            tensor("inp"),
            identity("weights"),
            optional("bias"),
            value("otype"),
            optional("scale_a"),
            optional("scale_b"),
        ),
        honored=("scale_a", "scale_b", "bias"),
        description="hipBLASLt GEMM (per-tensor scaled when given fp8 inputs)",
    ),
    # -- the JIT builder (where CK modules are built) --
    Contract(
        target="aiter.jit.core.build_module",
        kind="jit",
        backend="hip",
        checks=("jit_exit",),
        description="JIT module builder: a SystemExit here must become RuntimeError",
    ),
]
