"""The configurations ``validate accuracy`` compares with the reference: a scheme on a backend.

A :class:`Configuration` is what one ATOM deployment setting amounts to for a
model's linear layers: a quantization scheme, the GEMM backend ATOM sends it to
and whether the AITER build is CK-free. ``--configs`` names them either as a
scheme (``fp8_per_token``, run on ``--backend``) or as a named setting from
:data:`NAMED` (``fp8-triton``, ``fp8-hipblaslt``, ``fp4-ck``, ``ckfree``...),
which fixes its backend. Several run in one validation.

The ``*-torch`` configurations are the pure-torch CPU mode: the same scheme
(checkpoint weight formats, activation scale granularity, FP8/FP4 rounding)
computed with plain torch, no AITER and no simulator. They show what the scheme
itself costs in accuracy, so an AITER configuration that falls far below its
torch twin points at the kernels.

:func:`swapped` puts a configuration's linears in place of a model's
``nn.Linear`` layers for the duration of a ``with`` block and restores them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from quantguard.contracts import aiter_paths
from quantguard.hardware import fp8_name
from quantguard.numerics.dequant import quantize_dequantize
from quantguard.numerics.formats import E2M1_VALUES, FP4_E2M1, e8m0_decode, e8m0_encode
from quantguard.validate import quantize_weights as qw
from quantguard.validate.quantize import SCHEMES, QuantizedLinear, UnsupportedPath
from quantguard.validate.quantize_kernels import KernelPath, kernel_path, unsupported_arch

__all__ = [
    "FAMILIES",
    "NAMED",
    "Configuration",
    "Swap",
    "TorchQuantLinear",
    "accepted_names",
    "aiter_path",
    "parse_configurations",
    "swapped",
    "torch_fp8_dtype",
]

#: Threshold family of each scheme.
FAMILIES = {"fp8_per_token": "fp8", "fp8_blockscale": "fp8", "fp8_per_tensor": "fp8", "mxfp4": "fp4", "int4": "int4"}


@dataclass(frozen=True)
class Configuration:
    """One configuration: ``scheme`` on ``backend`` (``torch``: plain torch), optionally in a CK-free build.

    ``setting`` says which ATOM/AITER setting the configuration stands for (reports print it).
    """

    name: str
    scheme: str
    backend: str
    preshuffle: bool | None = None
    ck_free: bool = False
    setting: str = ""

    @property
    def family(self) -> str:
        return FAMILIES[self.scheme]

    @property
    def pure_torch(self) -> bool:
        """Computed with plain torch: needs neither AITER nor the simulator."""
        return self.backend == "torch"


_TRITON = "ATOM_USE_TRITON_GEMM=1"
_TORCH = "pure torch on the CPU (no AITER, no simulator)"

#: Named configurations: name -> (scheme, backend, CK-free build, the setting it stands for).
NAMED: dict[str, tuple[str, str, bool, str]] = {
    "fp8-ck": ("fp8_per_token", "ck", False, "ATOM default (CK GEMMs), per-token FP8"),
    "fp8-triton": ("fp8_per_token", "triton", False, f"{_TRITON}, per-token FP8"),
    "fp8-hipblaslt": ("fp8_per_tensor", "hipblaslt", False, "per-tensor FP8 checkpoint: ATOM's tgemm.mm (hipBLASLt)"),
    "fp8block-ck": ("fp8_blockscale", "ck", False, "ATOM default (CK GEMMs), FP8 128x128 blockscale"),
    "fp8block-triton": ("fp8_blockscale", "triton", False, f"{_TRITON}, FP8 128x128 blockscale"),
    "fp8block-asm": ("fp8_blockscale", "asm", False, "tuned config naming the ASM blockscale kernel"),
    "fp4-ck": ("mxfp4", "ck", False, "ATOM default: gemm_a4w4 (ASM unless a tuned CK kernel), gfx950"),
    "fp4-triton": ("mxfp4", "triton", False, f"{_TRITON}, MXFP4, gfx950"),
    "ckfree": ("fp8_blockscale", "triton", True, "CK-free AITER build (ATOM_CK_FREE=1: Triton GEMMs), FP8 blockscale"),
    "fp8-torch": ("fp8_per_token", "torch", False, f"{_TORCH}, per-token FP8"),
    "fp8block-torch": ("fp8_blockscale", "torch", False, f"{_TORCH}, FP8 128x128 blockscale"),
    "fp4-torch": ("mxfp4", "torch", False, f"{_TORCH}, MXFP4"),
}


def accepted_names() -> tuple[str, ...]:
    """Everything ``--configs`` accepts: the scheme names (run on ``--backend``), then :data:`NAMED`."""
    return (*SCHEMES, *NAMED)


def parse_configurations(text: str, backend: str, preshuffle: bool | None) -> list[Configuration]:
    """``--configs`` -> configurations, in order, duplicates dropped; ValueError names what is accepted."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in accepted_names()]
    if unknown or not names:
        raise ValueError(
            f"--configs {text!r}: {'unknown ' + ', '.join(unknown) + '; ' if unknown else ''}"
            f"accepted: {', '.join(SCHEMES)} (on --backend) or {', '.join(NAMED)}"
        )
    configurations = []
    for name in names:
        if name in NAMED:
            scheme, fixed_backend, ck_free, setting = NAMED[name]
            configurations.append(Configuration(name, scheme, fixed_backend, preshuffle, ck_free, setting))
        else:
            configurations.append(Configuration(name, name, backend, preshuffle, False, f"--backend {backend}"))
    return configurations


def aiter_path(config: Configuration, arch: str) -> KernelPath:
    """The AITER path ATOM runs for ``config`` on ``arch``; :class:`UnsupportedPath` where there is none.

    Per-tensor FP8 goes to hipBLASLt (``tgemm.mm``), a row that
    :func:`~quantguard.validate.quantize_kernels.kernel_path` does not pick, so it is taken from the table.
    """
    if config.scheme in SCHEMES:
        return kernel_path(config.scheme, config.backend, config.preshuffle, arch)
    reason = unsupported_arch(config.scheme, arch)
    if reason:
        raise UnsupportedPath(reason)
    rows = [row for row in aiter_paths.PATHS if row.scheme == config.scheme and row.backend == config.backend]
    if not rows:
        raise UnsupportedPath(f"{config.scheme} has no {config.backend} path in AITER")
    path = KernelPath(rows[0])
    path.resolve()
    return path


# -- pure torch -----------------------------------------------------------------------------------

_E2M1 = torch.tensor(E2M1_VALUES)
#: The shape multiples a weight needs, per scheme (torch mode).
_SHAPES = {"fp8_blockscale": (qw.BLOCK, qw.BLOCK), "mxfp4": (1, qw.MX_GROUP), "int4": (1, qw.INT4_GROUP)}


def torch_fp8_dtype(arch: str | None) -> torch.dtype:
    """The FP8 flavour the torch mode rounds to: e4m3fnuz on gfx942 (as AITER there), else OCP e4m3fn."""
    return getattr(torch, fp8_name(arch))


def _round_e2m1(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to the nearest FP4 e2m1 value (ties to the even code), saturating at ±6."""
    grid = _E2M1.to(x.device)
    magnitude = x.abs().clamp(max=FP4_E2M1.max)
    low = (torch.bucketize(magnitude, grid, right=True) - 1).clamp(0, len(grid) - 2)
    high = low + 1
    to_high = (grid[high] - magnitude < magnitude - grid[low]) | (
        (grid[high] - magnitude == magnitude - grid[low]) & (high % 2 == 0)
    )
    return torch.where(to_high, grid[high], grid[low]) * x.sign()


def _mx_dequantized(x: torch.Tensor) -> torch.Tensor:
    """MXFP4 of an (M, K) tensor in groups of 32 with round-to-even e8m0 scales, back in fp32."""
    groups = x.float().unflatten(-1, (-1, qw.MX_GROUP))
    scale = e8m0_decode(e8m0_encode(groups.abs().amax(-1), "even", FP4_E2M1).to(torch.uint8)).unsqueeze(-1)
    return (_round_e2m1(groups / scale) * scale).flatten(-2)


def _torch_weight(scheme: str, weight: torch.Tensor, fp8: torch.dtype) -> torch.Tensor:
    """The fp32 weight a checkpoint of ``scheme`` stands for (same torch references as the AITER paths)."""
    if scheme == "fp8_per_token":
        values, scale = qw.fp8_per_channel(weight, fp8)
        return values.float() * scale
    if scheme == "fp8_per_tensor":
        values, scale = qw.fp8_per_tensor(weight, fp8)
        return values.float() * scale
    if scheme == "fp8_blockscale":
        values, scale = qw.fp8_blocks(weight, fp8)
        return values.float() * scale.repeat_interleave(qw.BLOCK, 0).repeat_interleave(qw.BLOCK, 1)
    if scheme == "mxfp4":
        return _mx_dequantized(weight)
    codes, scale = qw.int4_groups(weight)
    return qw.dequantize_int4(codes, scale, weight.dtype).float()


class TorchQuantLinear(nn.Module):
    """A linear layer quantized in plain torch: dequantized weight once, activations quantized per call.

    The product accumulates in fp32 (as the GEMMs do) and is rounded once to the activation dtype.
    """

    def __init__(self, linear: nn.Linear, scheme: str, fp8: torch.dtype):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.scheme, self.fp8 = scheme, fp8
        self.register_buffer("weight", _torch_weight(scheme, linear.weight.detach(), fp8), persistent=False)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if self.scheme == "mxfp4":
            rows = _mx_dequantized(rows)
        elif self.scheme != "int4":  # W4A16: 16-bit activations
            rows = quantize_dequantize(rows, aiter_paths.SCHEMES[self.scheme].activation_group, self.fp8)
        y = (rows.float() @ self.weight.T).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.scheme} in torch"


# -- swapping -------------------------------------------------------------------------------------


@dataclass
class Swap:
    """What :func:`swapped` did: what computes the linears, the swapped layers, the layers kept and why."""

    kernels: str
    swapped: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)


def _torch_fits(scheme: str, out_features: int, in_features: int) -> str | None:
    rows, cols = _SHAPES.get(scheme, (1, 1))
    if out_features % rows or in_features % cols:
        return f"N={out_features}, K={in_features}: {scheme} needs N a multiple of {rows} and K of {cols}"
    return None


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


@contextmanager
def swapped(model: nn.Module, config: Configuration, arch: str | None, skip: Sequence[str]) -> Iterator[Swap]:
    """Swap ``model``'s ``nn.Linear`` layers for ``config``'s for the block, then restore them.

    ``skip`` holds fnmatch patterns of layer names kept in reference precision;
    layers whose shape the path cannot take are kept too, with the reason.
    Raises :class:`UnsupportedPath` before touching the model when there is no path.
    """
    build: Callable[[nn.Linear], nn.Module]
    if config.pure_torch:
        fp8 = torch_fp8_dtype(arch)
        fp8_name = str(fp8).replace("torch.", "")
        swap = Swap(
            f"torch {config.scheme} ({fp8_name if config.family == 'fp8' else config.family}), fp32 accumulation"
        )

        def build(linear: nn.Linear) -> nn.Module:
            return TorchQuantLinear(linear, config.scheme, fp8)

        def fits(linear: nn.Linear) -> str | None:
            return _torch_fits(config.scheme, linear.out_features, linear.in_features)

    else:
        assert arch is not None, "an AITER configuration needs the arch"
        path = aiter_path(config, arch)
        swap = Swap(path.description)

        def build(linear: nn.Linear) -> nn.Module:
            return QuantizedLinear(linear, path)

        def fits(linear: nn.Linear) -> str | None:
            if path.supports(linear.out_features, linear.in_features):
                return None
            return (
                f"N={linear.out_features}, K={linear.in_features}: {path.gemm} needs N a multiple of "
                f"{path.spec.n_multiple} and K of {path.spec.k_multiple}"
            )

    chosen: dict[str, nn.Linear] = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in skip):
            swap.kept[name] = "skipped (--skip)"
        elif (reason := fits(module)) is not None:
            swap.kept[name] = reason
        else:
            chosen[name] = module
    try:
        with torch.no_grad():
            for name, linear in chosen.items():
                _replace(model, name, build(linear))
                swap.swapped.append(name)
        yield swap
    finally:
        for name in swap.swapped:
            _replace(model, name, chosen[name])
