"""Decide whether an AITER call site is guarded: resolve re-exports against the contracts.

ATOM often calls a function through another module than the one defining it
(``from aiter import gemm_a8w8`` is ``aiter.ops.gemm_op_a8w8.gemm_a8w8``).
At run time the engine finds such aliases by object identity; statically the
same question is answered by AITER's three re-export mechanisms, applied to
each contract's module (facts from ``aiter/__init__.py`` and
``aiter/ops/triton/__init__.py`` at e4048607):

1. **exact** — the call resolves to the contract's target;
2. **``aiter`` star re-exports** — ``aiter/__init__.py`` star-imports the
   modules in :data:`STAR_REEXPORTED`, so ``aiter.X`` is ``aiter.ops.<m>.X``
   for those modules only (``aiter.ops.shuffle`` is *not* one of them);
3. **package re-exports** — the packages in :data:`PACKAGE_REEXPORTS` import
   their submodules' functions (``aiter.ops.triton.quant.X`` is
   ``aiter.ops.triton.quant.fused_fp8_quant.X``);
4. **Triton compat names** — AITER keeps every reorganised Triton module
   importable under its old flat name, so ``aiter.ops.triton.<leaf>.X`` is
   ``aiter.ops.triton.<any.path>.<leaf>.X`` (``aiter.ops.triton.gemm_afp4wfp4``
   → ``aiter.ops.triton.gemm.basic.gemm_afp4wfp4``).

The function name must match in every case.  A factory whose products are
contracted (``get_hip_quant``) counts as guarded.  Calls of infrastructure
(distributed groups, the JIT and arch helpers, dtype utilities, types and
enums) are not kernel calls and are not counted.  A kernel call is on a
*quantized path* when a contract covers it or its path names quantization,
a GEMM or MoE (:data:`QUANTIZED_VOCABULARY`); coverage is reported both for
those and for every kernel call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from quantguard.contracts.base import Contract

__all__ = [
    "STAR_REEXPORTED",
    "PACKAGE_REEXPORTS",
    "INFRASTRUCTURE",
    "QUANTIZED_VOCABULARY",
    "Resolution",
    "ContractIndex",
    "reachable_modules",
]

#: Modules whose public names ``aiter/__init__.py`` star-imports (``aiter.X``).
STAR_REEXPORTED = frozenset(
    "aiter.ops." + name
    for name in (
        "enum",
        "norm",
        "quant",
        "gemm_op_a8w8",
        "gemm_op_a16w16",
        "gemm_op_a4w4",
        "gemm_op_a8w4",
        "batched_gemm_op_a8w8",
        "batched_gemm_op_bf16",
        "deepgemm",
        "opus",
        "aiter_operator",
        "activation",
        "attention",
        "custom",
        "custom_all_reduce",
        "quick_all_reduce",
        "moe_op",
        "moe_sorting",
        "moe_sorting_opus",
        "moe_mxfp4_aux",
        "pa_sparse_prefill_opus",
        "pos_encoding",
        "cache",
        "rmsnorm",
        "communication",
        "rope",
        "topk",
        "mha",
        "gradlib",
        "trans_ragged_layout",
        "sample",
        "fused_qk_norm_mrope_cache_quant",
        "fused_qk_norm_rope_cache_quant",
        "fused_qk_rmsnorm_group_quant",
        "inverse_rope_group_quant",
        "groupnorm",
        "mhc",
        "causal_conv1d_update",
        "fused_split_gdr_update",
        "gdr_decode_packed_bf16",
    )
)
#: Packages that re-export the functions of their direct submodules.
PACKAGE_REEXPORTS = frozenset({"aiter.ops.triton.quant"})
_TRITON = "aiter.ops.triton."
#: Module prefixes whose calls are infrastructure, not kernels.
INFRASTRUCTURE = (
    "aiter.dist",
    "aiter.jit",
    "aiter.utility.dtypes",
    "aiter.ops.triton.utils._triton",
    "aiter.ops.triton.utils.device_info",
    "aiter.ops.triton.utils.logger",
)
#: Words in a resolved path that put a kernel call on a quantized path.
QUANTIZED_VOCABULARY = re.compile(
    r"quant|gemm|bmm|moe|mxfp|fp8|fp4|a8w8|a4w4|a8w4|a16w|downcast|scale|shuffle|"
    r"mqa_logits"
)


def reachable_modules(module: str) -> set[str]:
    """Every module path under which ``module``'s functions can be imported (rules 1-4)."""
    names = {module}
    if module in STAR_REEXPORTED:
        names.add("aiter")
    package = module.rpartition(".")[0]
    if package in PACKAGE_REEXPORTS:
        names.add(package)
    if module.startswith(_TRITON) and module.count(".") > 3:
        names.add(_TRITON + module.rpartition(".")[2])
    return names


@dataclass(frozen=True)
class Resolution:
    """What one resolved AITER path is: ``category`` is guarded, unguarded or infrastructure."""

    category: str  # "guarded" | "unguarded" | "infrastructure"
    quantized: bool
    contract: str | None = None  # the guarding contract's target (or the factory's)
    how: str = ""  # which rule matched ("exact", "re-export", "factory")


class ContractIndex:
    """Contract targets indexed by every (module, name) they can be reached through."""

    __slots__ = ("_by_path", "_factories")

    def __init__(self, contracts: Iterable[Contract], factories: Iterable[str] = ()) -> None:
        self._by_path: dict[str, tuple[str, str]] = {}
        for contract in contracts:
            self._add(contract.target.replace(":", "."), contract.target, contract.module, contract.attribute)
        self._factories: dict[str, tuple[str, str]] = {}
        for factory in factories:
            module, _, name = factory.rpartition(".")
            for alias in reachable_modules(module):
                self._factories[f"{alias}.{name}"] = (factory, "factory")

    def _add(self, plain: str, target: str, module: str, attribute: str) -> None:
        self._by_path.setdefault(plain, (target, "exact"))
        for alias in reachable_modules(module) - {module}:
            self._by_path.setdefault(f"{alias}.{attribute}", (target, "re-export"))

    def resolve(self, path: str) -> Resolution:
        hit = self._by_path.get(path) or self._factories.get(path)
        if hit is not None:
            return Resolution("guarded", True, hit[0], hit[1])
        module = path.rpartition(".")[0]
        infrastructure = any(module == prefix or module.startswith(prefix + ".") for prefix in INFRASTRUCTURE)
        if infrastructure or any(part[:1].isupper() for part in path.split(".")):
            return Resolution("infrastructure", False)
        return Resolution("unguarded", bool(QUANTIZED_VOCABULARY.search(path)))
