"""Simulated ``aiter.jit.utils.chip_info``: the GPU the simulator pretends to run on.

Real AITER reads ``GPU_ARCHS`` or rocminfo (``get_gfx``) and the live device
(``get_gfx_runtime``); both answer the installed arch here.
"""

from quantguard.sim import _state

__all__ = ["get_cu_num", "get_gfx", "get_gfx_list", "get_gfx_runtime"]

_CU_COUNT = {"gfx942": 304, "gfx950": 256}


def get_gfx():
    return _state.settings().arch


def get_gfx_runtime():
    return _state.settings().arch


def get_gfx_list():
    return [_state.settings().arch]


def get_cu_num():
    return _CU_COUNT[_state.settings().arch]
