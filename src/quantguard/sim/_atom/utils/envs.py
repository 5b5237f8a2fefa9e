"""Simulated ``atom.utils.envs``: ATOM's environment switches, read lazily on access.

Two ATOM lines are modelled (``CK_FREE_BRANCH``, fixed when this module is
imported):

* ATOM main (the default): no ``ATOM_CK_FREE``; ``use_triton_gemm()`` is
  ``ATOM_USE_TRITON_GEMM`` and each MoE layer's quant method picks Triton itself.
* the CK-free branch the incidents came from, chosen by setting
  ``ATOM_CK_FREE`` (to any value) before ATOM is imported: the switch exists
  there (default 0) and ``ATOM_CK_FREE=1`` forces Triton in linear,
  attention_mla and MoE.
"""

import os

__all__ = ["CK_FREE_BRANCH", "environment_variables", "is_set"]

#: Simulator option: model ATOM's CK-free branch instead of ATOM main.
CK_FREE_BRANCH = "ATOM_CK_FREE" in os.environ

environment_variables = {
    "ATOM_USE_TRITON_GEMM": lambda: os.getenv("ATOM_USE_TRITON_GEMM", "0") == "1",
    "ATOM_USE_TRITON_MOE": lambda: os.getenv("ATOM_USE_TRITON_MOE", "0") == "1",
    "ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE": lambda: os.getenv("ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE", "1") == "1",
    "ATOM_FP8_BLOCKSCALE_USE_E8M0_SCALE": lambda: os.getenv("ATOM_FP8_BLOCKSCALE_USE_E8M0_SCALE", "0") == "1",
    "ATOM_USE_FP4_NON_SHUFFLE_TRITON_GEMM": lambda: os.getenv("ATOM_USE_FP4_NON_SHUFFLE_TRITON_GEMM", "0") == "1",
}
if CK_FREE_BRANCH:
    environment_variables["ATOM_CK_FREE"] = lambda: os.getenv("ATOM_CK_FREE", "0") == "1"


def is_set(name: str) -> bool:
    """Whether switch ``name`` is given in the environment (not just defaulted)."""
    return name in environment_variables and name in os.environ


def __getattr__(name):
    if name in environment_variables:
        return environment_variables[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
