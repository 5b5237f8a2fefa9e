"""Choosing backends the way a deployment does: ATOM env switches and AITER tuned configs."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import nn

import quantguard.sim as sim
from quantguard.contracts import aiter_paths
from quantguard.sim.faults import FaultSpec

__all__ = ["BACKENDS", "Deployment", "deploy", "register_tuned_configs"]

#: Backend preferences: CK kernels, Triton kernels (ATOM_USE_TRITON_GEMM), or
#: ASM kernels where AITER has an ASM route (tuned blockscale bpreshuffle
#: shapes; MXFP4 ``gemm_a4w4`` runs ASM unless a CK kernel is tuned).
BACKENDS = aiter_paths.ATOM_BACKENDS

_CK_A4W4_KERNEL = "a4w4_blockscale_256x32x128x128_16x16_16x16_8x32x1_8x32x1_1x16x1x16_8_2x2_intrawave_v3"
#: Per GEMM that ATOM reaches through a tuned config (the path table's ``reached_by``): the simulated
#: tuned-config table in the module of the entry point ATOM calls, and the config that names the kernel.
#: Real AITER reads the same choice from its tuned CSVs.
_TUNED_ROUTES: dict[str, tuple[str, Callable[[ModuleType], dict]]] = {
    "aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale_bpreshuffle_asm": (
        "TUNED_A8W8_BLOCKSCALE_BPRESHUFFLE",
        lambda module: {"libtype": "asm", "splitK": 1, "kernelName": module.BLOCKSCALE_ASM_KERNELS[0]},
    ),
    "aiter.ops.gemm_op_a4w4.gemm_a4w4_blockscale": (
        "TUNED_A4W4",
        lambda module: {"kernelName": _CK_A4W4_KERNEL, "splitK": 0},
    ),
}


@dataclass(frozen=True)
class Deployment:
    """An installed simulator plus the ATOM environment a model is built under."""

    arch: str
    ck_free: bool
    backend: str
    preshuffle: bool
    device: torch.device
    env: Mapping[str, str]


@contextmanager
def deploy(
    arch: str = "gfx942",
    ck_free: bool = False,
    backend: str = "ck",
    preshuffle: bool | None = None,
    faults: FaultSpec = (),
    device: str | torch.device = "cpu",
    release_build: bool | None = None,
) -> Iterator[Deployment]:
    """Install the simulator with ATOM for one deployment; undo everything on exit.

    ATOM reads its switches at import, so they are set before ``atom`` is
    imported: ``ATOM_USE_TRITON_GEMM`` for the Triton backend, ``ATOM_CK_FREE``
    for a CK-free build (which forces Triton in ATOM), and
    ``ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE`` (default on unless Triton).
    ``release_build`` is passed to :func:`quantguard.sim.install` (AITER as a
    working release instead of HEAD e4048607).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; accepted: {', '.join(BACKENDS)}")
    if preshuffle is None:
        preshuffle = aiter_paths.atom_preshuffles(backend, ck_free)
    env = {
        "ATOM_USE_TRITON_GEMM": "1" if backend == "triton" else "0",
        "ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE": "1" if preshuffle else "0",
    }
    if ck_free:  # the CK-free branch of ATOM (where the incidents came from); ATOM main otherwise
        env["ATOM_CK_FREE"] = "1"
    saved = {name: os.environ.get(name) for name in (*env, "ATOM_CK_FREE")}
    os.environ.pop("ATOM_CK_FREE", None)
    os.environ.update(env)
    try:
        settings = sim.install(
            arch=arch,
            ck_free=ck_free,
            faults=faults,
            device=device,
            atom=True,
            release_build=release_build,
        )
        yield Deployment(arch, ck_free, backend, preshuffle, settings.device, env)
    finally:
        sim.uninstall()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def register_tuned_configs(backend: str, model: nn.Module) -> None:
    """Add AITER tuned configs that steer the model's linear shapes to ``backend``.

    Where the AITER path table says a backend's GEMM is reached through a
    tuned config of the entry point ATOM calls (``AiterPath.reached_by``), each
    linear layer of that scheme's ``QuantType`` gets one: ASM for FP8
    blockscale bpreshuffle shapes, CK for MXFP4 (untuned MXFP4 already runs ASM).
    """
    from atom.model_ops.linear import LinearBase

    routes = [
        (aiter_paths.SCHEMES[path.scheme].quant_type, path.reached_by, *_TUNED_ROUTES[path.gemm.path])
        for path in aiter_paths.PATHS
        if path.backend == backend and path.reached_by is not None and path.gemm is not None
    ]
    for layer in model.modules():
        if not isinstance(layer, LinearBase):
            continue
        key = (None, layer.output_size, layer.input_size)
        for quant_type, called, table, config in routes:
            if layer.quant_type.name == quant_type:
                module = importlib.import_module(called.rpartition(".")[0])
                getattr(module, table)[key] = config(module)
