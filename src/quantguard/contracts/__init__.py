"""Declarative contracts: what each guarded library's functions promise.

``builtin_contracts()`` returns AITER's (the :mod:`quantguard.contracts.aiter`
package: quant producers, GEMMs, MoE, fused producers, metadata-only kernels),
ATOM's (:mod:`quantguard.contracts.atom`, its load-time requantizations
:mod:`quantguard.contracts.atom_requant`) and ``torch._scaled_mm``'s
(:mod:`quantguard.contracts.torch_ops`).  Loading them imports no GPU
library: adapters import torch only when a guarded call is interpreted.

A contract's signature key is built with :func:`tensor`, :func:`strided`,
:func:`identity`, :func:`optional` and :func:`value`.  What generic code must
know about the libraries themselves (ASM and CK kernels, kernel factories,
backend selection) it reads through the functions of
:mod:`quantguard.contracts.libraries`, re-exported here, never from a
library's own modules.
"""

from __future__ import annotations

from quantguard.contracts.base import (
    Contract,
    KeyParam,
    identity,
    optional,
    split_target,
    strided,
    target_matches,
    tensor,
    value,
)
from quantguard.contracts.libraries import (
    BackendSelection,
    InstanceChoice,
    Library,
    asm_functions_loaded,
    backend_selections,
    custom_op_conventions,
    internal_packages,
    is_asm,
    kernel_factories,
    library_of,
    resets_platform,
    runs_ck,
)

__all__ = [
    "BackendSelection",
    "Contract",
    "InstanceChoice",
    "KeyParam",
    "Library",
    "asm_functions_loaded",
    "backend_selections",
    "builtin_contracts",
    "custom_op_conventions",
    "identity",
    "internal_packages",
    "is_asm",
    "kernel_factories",
    "library_of",
    "optional",
    "resets_platform",
    "runs_ck",
    "split_target",
    "strided",
    "target_matches",
    "tensor",
    "value",
]


def builtin_contracts() -> list[Contract]:
    contracts: list[Contract] = []
    for module_name in (
        "quantguard.contracts.aiter",
        "quantguard.contracts.atom",
        "quantguard.contracts.atom_requant",
        "quantguard.contracts.torch_ops",
    ):
        try:
            module = __import__(module_name, fromlist=["CONTRACTS"])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        contracts.extend(module.CONTRACTS)
    return contracts
