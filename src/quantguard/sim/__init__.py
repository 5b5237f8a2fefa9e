"""A simulated AITER (and a small ATOM) in plain torch, for testing quantguard.

``install()`` makes ``import aiter`` (and optionally ``import atom``) load
simulated modules with the real module paths, function names and signatures.
Kernels run on CPU or CUDA with plain torch ops and reproduce AITER's
numerics and layouts; named faults (:mod:`quantguard.sim.faults`) reproduce
real incidents. The quantguard engine never imports this package, and this
package imports nothing from quantguard outside ``quantguard.sim``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile

import torch

from quantguard.sim import _custom_ops, _finder, _state, faults
from quantguard.sim._state import SimSettings
from quantguard.sim.faults import FaultSpec
from quantguard.sim.faults import parse as _parse_faults

__all__ = [
    "ARCHS",
    "SimSettings",
    "current",
    "faults",
    "install",
    "is_installed",
    "uninstall",
]

#: The GPU architectures the simulator models (MI300X, MI355X).
ARCHS: tuple[str, ...] = ("gfx942", "gfx950")

_installed: dict[str, object] = {}


def _real_package_origin(name: str) -> str | None:
    """Where an importable, non-simulated ``name`` comes from, if anywhere."""
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__file__", None) or repr(module)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return None if spec is None else (spec.origin or str(spec.submodule_search_locations))


def _path_finder_index() -> int:
    """Where a real package would be found: just before the standard path finder.

    Post-import hooks (wrapt's, quantguard's) sit at the front of
    ``sys.meta_path`` and must see the simulated modules load, exactly as they
    see a real AITER found by the path finder.
    """
    for index, finder in enumerate(sys.meta_path):
        if finder is importlib.machinery.PathFinder:
            return index
    return len(sys.meta_path)


def install(
    arch: str = "gfx942",
    ck_free: bool = False,
    faults: FaultSpec = (),
    device: str | torch.device = "cpu",
    atom: bool = False,
    force: bool = False,
    release_build: bool | None = None,
) -> SimSettings:
    """Put the simulated ``aiter`` (and ``atom`` when ``atom=True``) on the import path.

    Refuses with ``RuntimeError`` when a real ``aiter``/``atom`` is importable,
    unless ``force=True`` (which also drops already-imported copies). A second
    call first uninstalls the previous simulator. The packages are imported
    eagerly so the module tree exists when this returns.

    By default the kernels behave as at AITER HEAD e4048607, including what
    is broken there. ``release_build=True`` simulates a build whose kernels
    work as documented instead: ``gfx950_a8w8_blockscale_ASM`` has its ASM
    kernel (HEAD: ``NameError``) and Triton ``dynamic_mxfp4_quant`` rounds
    its e8m0 scales with ``scaling_mode`` (HEAD: always Even).
    ``release_build=None`` reads ``QUANTGUARD_SIM_BUILD`` (``head``, the
    default, or ``release``): the test suite runs its clean baselines on a
    release build and pins HEAD's behaviour in tests of its own.
    """
    if release_build is None:
        release_build = default_release_build()
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; the simulator models: {', '.join(ARCHS)}")
    packages = ("aiter", "atom") if atom else ("aiter",)
    uninstall()
    fault_set = _parse_faults(faults)
    fault_set.check_reachable(arch=arch, ck_free=ck_free, atom=atom)
    for package in packages:
        origin = _real_package_origin(package)
        if origin is not None and not force:
            raise RuntimeError(
                f"a real {package!r} is importable ({origin}); refusing to shadow it with "
                "the simulator. Pass force=True to install the simulator anyway."
            )
    _finder.purge(packages)

    scratch = tempfile.mkdtemp(prefix="quantguard-sim-")
    ck_dir = os.path.join(scratch, "3rdparty", "composable_kernel")
    if not ck_free:
        for headers in ("include", os.path.join("library", "include")):
            os.makedirs(os.path.join(ck_dir, headers))
    settings = SimSettings(arch, ck_free, fault_set, torch.device(device), atom, ck_dir, release_build)
    finder = _finder.SimFinder(packages)
    _state.activate(settings)
    sys.meta_path.insert(_path_finder_index(), finder)
    _installed.update(finder=finder, scratch=scratch)
    importlib.invalidate_caches()
    try:
        for package in packages:
            importlib.import_module(package)
    except BaseException:
        uninstall()
        raise
    return settings


#: Environment variable choosing the build ``install`` simulates when not told.
BUILD_VARIABLE = "QUANTGUARD_SIM_BUILD"


def default_release_build() -> bool:
    """``QUANTGUARD_SIM_BUILD``: ``head`` (default) or ``release``; anything else is an error."""
    value = os.environ.get(BUILD_VARIABLE, "head").strip().lower() or "head"
    if value not in ("head", "release"):
        raise ValueError(
            f"{BUILD_VARIABLE}={value!r}: accepted values are 'head' (AITER HEAD e4048607, "
            "the default) and 'release' (kernels that work as documented)"
        )
    return value == "release"


def uninstall() -> bool:
    """Remove the simulator and forget every ``aiter``/``atom`` module; idempotent.

    Returns whether a simulator was installed.
    """
    if not _installed:
        return False
    finder = _installed["finder"]
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)
    _finder.purge(("aiter", "atom"))
    shutil.rmtree(str(_installed["scratch"]), ignore_errors=True)
    _installed.clear()
    _custom_ops.forget()
    _state.deactivate()
    return True


def is_installed() -> bool:
    """Whether :func:`install` is in effect."""
    return bool(_installed)


def current() -> SimSettings | None:
    """The settings of the installed simulator, or ``None``."""
    return _state.current()
