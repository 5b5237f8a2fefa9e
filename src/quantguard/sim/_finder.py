"""Import hook that serves the simulated ``aiter``/``atom`` trees under their real names.

Modules are loaded from source files with ``spec_from_file_location`` so that
``aiter.ops.quant.__name__ == "aiter.ops.quant"``, functions carry the real
``__module__``, relative imports resolve, and ``from aiter import X`` behaves
exactly as in ATOM.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["SimFinder", "purge"]

_HERE = Path(__file__).resolve().parent

#: Top-level package name -> directory holding its simulated sources.
ROOTS: Mapping[str, Path] = {"aiter": _HERE / "_aiter", "atom": _HERE / "_atom"}

#: Old flat Triton module paths that AITER keeps importable (ATOM still uses
#: some of them) -> the module that now holds the code.
ALIASES: Mapping[str, str] = {
    f"aiter.ops.triton.{old}": f"aiter.ops.triton.{new}"
    for old, new in {
        "batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant": (
            "gemm.batched.batched_gemm_a8w8_a_per_token_group_prequant_w_per_batched_tensor_quant"
        ),
        "gemm_a8w8": "gemm.basic.gemm_a8w8",
        "gemm_a8w8_blockscale": "gemm.basic.gemm_a8w8_blockscale",
        "gemm_afp4wfp4": "gemm.basic.gemm_afp4wfp4",
        "fused_fp8_quant": "quant.fused_fp8_quant",
    }.items()
}


class _AliasLoader(importlib.abc.Loader):
    """Makes an old module path name the module object of its new path."""

    def __init__(self, target: str) -> None:
        self._target = target
        self._target_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self._target)
        self._target_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the alias spec on the shared module; give
        # the module back its own identity.
        module.__spec__ = self._target_spec


class SimFinder(importlib.abc.MetaPathFinder):
    """Finds ``aiter``/``aiter.*`` (and optionally ``atom``/``atom.*``) in the sim tree."""

    def __init__(self, packages: Sequence[str]) -> None:
        self.packages = tuple(packages)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        top = fullname.partition(".")[0]
        if top not in self.packages:
            return None
        if fullname in ALIASES:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(ALIASES[fullname]))
        base = ROOTS[top].joinpath(*fullname.split(".")[1:])
        if (base / "__init__.py").is_file():
            return importlib.util.spec_from_file_location(
                fullname, base / "__init__.py", submodule_search_locations=[str(base)]
            )
        if base.with_suffix(".py").is_file():
            return importlib.util.spec_from_file_location(fullname, base.with_suffix(".py"))
        return None


def purge(packages: Sequence[str]) -> None:
    """Drop ``pkg`` and ``pkg.*`` for every package from ``sys.modules``."""
    for name in list(sys.modules):
        if name.partition(".")[0] in packages:
            del sys.modules[name]
