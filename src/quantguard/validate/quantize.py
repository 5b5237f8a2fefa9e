"""Quantize any torch model's linear layers onto AITER kernels, reversibly.

``validate accuracy`` must run a user's model "with the chosen backend"
without a serving engine, so this module swaps every ``nn.Linear`` (except the
ones matched by ``skip``) for a :class:`QuantizedLinear` whose forward calls
AITER's real quant and GEMM entry points (the row of
:mod:`quantguard.contracts.aiter_paths` that :mod:`quantize_kernels` picks).
The swap happens in place and is undone on exit, so the reference model and
its quantized variants never coexist in memory::

    config = QuantConfig("fp8_blockscale", backend="triton")
    with quantized(model, config, arch="gfx950") as swap:
        logits = model(input_ids)      # every swapped linear runs on AITER
    swap.swapped                        # layer names, and swap.kept: name -> why not
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from quantguard.validate.quantize_kernels import (
    BACKENDS,
    SCHEMES,
    KernelPath,
    UnsupportedPath,
    kernel_path,
    quantize_weight,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_SKIP",
    "SCHEMES",
    "QuantConfig",
    "QuantizedLinear",
    "Swap",
    "UnsupportedPath",
    "quantized",
]

#: Layers kept in their original precision by default: the LM head, as quantized checkpoints ship it.
DEFAULT_SKIP: tuple[str, ...] = ("lm_head", "*.lm_head")

_GEMM_DTYPES = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class QuantConfig:
    """One target configuration: a scheme, a GEMM backend and (optionally) the weight layout.

    ``preshuffle=None`` follows ATOM: preshuffled weights unless the backend is Triton.
    """

    scheme: str
    backend: str = "ck"
    preshuffle: bool | None = None


@dataclass
class Swap:
    """What :func:`quantized` did: the kernel path, the swapped layers, the layers kept and why."""

    path: KernelPath
    swapped: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)


class QuantizedLinear(nn.Module):
    """A linear layer whose weight is quantized once and whose forward runs on AITER.

    Activations are flattened to (M, K), quantized and multiplied by the AITER
    GEMM of the path; the bias (if any) is added in the activation dtype.
    """

    def __init__(self, linear: nn.Linear, path: KernelPath):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.path = path
        self.operands = path.prepare(quantize_weight(path.scheme, linear.weight.detach()))
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).contiguous()
        gemm_dtype = x.dtype if x.dtype in _GEMM_DTYPES else torch.bfloat16
        y = self.path.run(rows.to(gemm_dtype), self.operands, gemm_dtype).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.path.description}"


def _skipped(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _plan(model: nn.Module, path: KernelPath, skip: Sequence[str]) -> tuple[dict[str, nn.Linear], dict[str, str]]:
    chosen: dict[str, nn.Linear] = {}
    kept: dict[str, str] = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if _skipped(name, skip):
            kept[name] = "skipped (--skip)"
        elif not path.supports(module.out_features, module.in_features):
            kept[name] = (
                f"N={module.out_features}, K={module.in_features}: {path.gemm} needs N a multiple of "
                f"{path.spec.n_multiple} and K of {path.spec.k_multiple}"
            )
        else:
            chosen[name] = module
    return chosen, kept


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


@contextmanager
def quantized(model: nn.Module, config: QuantConfig, arch: str, skip: Sequence[str] = DEFAULT_SKIP) -> Iterator[Swap]:
    """Swap ``model``'s linears for AITER-quantized ones for the duration of the block.

    ``skip`` holds fnmatch patterns of layer names kept in their original
    precision (:data:`DEFAULT_SKIP`).
    Layers whose shape the kernel cannot take are kept too, with the reason.
    Raises :class:`UnsupportedPath` before touching the model when AITER has
    no kernel for the configuration on ``arch``.
    """
    path = kernel_path(config.scheme, config.backend, config.preshuffle, arch)
    chosen, kept = _plan(model, path, skip)
    swap = Swap(path, kept=kept)
    try:
        with torch.no_grad():
            for name, linear in chosen.items():
                _replace(model, name, QuantizedLinear(linear, path))
                swap.swapped.append(name)
        yield swap
    finally:
        for name in swap.swapped:
            _replace(model, name, chosen[name])
