"""Declarative contracts: what each guarded library's functions promise.

``builtin_contracts()`` returns AITER's (:mod:`quantguard.contracts.aiter`, the
fused producers of :mod:`quantguard.contracts.aiter_fused` and the metadata-only
kernels of :mod:`quantguard.contracts.aiter_kernels`), ATOM's
(:mod:`quantguard.contracts.atom`) and ``torch._scaled_mm``'s
(:mod:`quantguard.contracts.torch_ops`).  Loading them imports no GPU
library: adapters import torch only when a guarded call is interpreted.
"""

from __future__ import annotations

from quantguard.contracts.base import Contract, KeyParam, split_target, target_matches

__all__ = ["Contract", "KeyParam", "builtin_contracts", "split_target", "target_matches"]


def builtin_contracts() -> list[Contract]:
    contracts: list[Contract] = []
    for module_name in (
        "quantguard.contracts.aiter",
        "quantguard.contracts.aiter_fused",
        "quantguard.contracts.aiter_kernels",
        "quantguard.contracts.atom",
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
