"""Fixtures for the simulator tests: installs that are always undone."""

from __future__ import annotations

import pytest
import torch

import quantguard.sim as sim


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """The simulator's tensors are tiny; extra intra-op threads only spin when the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def install():
    """Install the simulator with the given settings; uninstalled after the test."""

    def _install(arch: str = "gfx942", **settings):
        return sim.install(arch=arch, **settings)

    yield _install
    sim.uninstall()


@pytest.fixture(params=sim.ARCHS)
def arch(request) -> str:
    return request.param
