"""The active simulator settings, read by the simulated ``aiter``/``atom`` modules.

Real AITER fixes some things when it is imported (``dtypes.fp8`` from the GPU
arch, ``CK_3RDPARTY_DIR``) and decides others per call; the simulated modules
read this state at the same moments, so tests can reason about both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from quantguard.sim.faults import FaultSet

__all__ = ["SimSettings", "activate", "current", "deactivate", "fault_active", "settings"]


@dataclass(frozen=True)
class SimSettings:
    """What :func:`quantguard.sim.install` was asked to simulate.

    ``ck_dir`` is the value the simulated ``aiter.jit.core.CK_3RDPARTY_DIR``
    takes: an existing directory, or (CK-free) a path that does not exist.
    ``release_build`` swaps the kernels that are broken at AITER HEAD
    e4048607 for working ones (see :func:`quantguard.sim.install`).
    """

    arch: str
    ck_free: bool
    faults: FaultSet
    device: torch.device
    atom: bool
    ck_dir: str
    release_build: bool = False


_active: SimSettings | None = None


def activate(new: SimSettings) -> None:
    global _active
    _active = new


def deactivate() -> None:
    global _active
    _active = None


def current() -> SimSettings | None:
    return _active


def settings() -> SimSettings:
    """The active settings; the simulated modules cannot run without them."""
    if _active is None:
        raise RuntimeError("the AITER simulator is not installed; call quantguard.sim.install() first")
    return _active


def fault_active(name: str, backend: str) -> bool:
    """Whether fault ``name`` is injected into ``backend`` in the active settings."""
    return settings().faults.active(name, backend)
