"""Fixtures for the simulator tests: installs that are always undone."""

from __future__ import annotations

import pytest

import quantguard.sim as sim


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
