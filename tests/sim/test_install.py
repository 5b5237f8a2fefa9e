"""install()/uninstall(): module identity, refusal to shadow a real aiter, purging."""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

import quantguard.sim as sim


def _sim_modules():
    return [name for name in sys.modules if name.partition(".")[0] in ("aiter", "atom")]


def test_modules_load_under_their_real_names(install):
    install("gfx950", atom=True)
    import aiter
    import aiter.ops.quant
    from aiter import gemm_a8w8_blockscale
    from atom.model_ops import linear

    assert aiter.ops.quant.__name__ == "aiter.ops.quant"
    assert aiter.per_1x32_mx_quant_hip.__module__ == "aiter.ops.quant"
    # Custom-op entry points are AITER's opaque wrapper, defined in torch_guard (as in AITER).
    assert aiter.dynamic_per_token_scaled_quant.__module__ == "aiter.jit.utils.torch_guard"
    assert gemm_a8w8_blockscale is aiter.ops.gemm_op_a8w8.gemm_a8w8_blockscale
    assert aiter.per_group_quant_hip is aiter.ops.quant.per_group_quant_hip
    assert linear.__name__ == "atom.model_ops.linear"
    assert aiter.__file__.startswith(os.path.dirname(sim.__file__))


def test_old_triton_paths_alias_the_new_modules(install):
    install()
    from aiter.ops.triton.gemm_afp4wfp4 import gemm_afp4wfp4_preshuffle

    new = importlib.import_module("aiter.ops.triton.gemm.basic.gemm_afp4wfp4")
    assert sys.modules["aiter.ops.triton.gemm_afp4wfp4"] is new
    assert gemm_afp4wfp4_preshuffle.__module__ == new.__name__
    assert new.__spec__.name == new.__name__


@pytest.mark.parametrize(("arch", "fp8"), [("gfx942", torch.float8_e4m3fnuz), ("gfx950", torch.float8_e4m3fn)])
def test_arch_fixes_gfx_and_fp8_dtype(install, arch, fp8):
    install(arch)
    import aiter
    from aiter.jit.utils.chip_info import get_gfx, get_gfx_runtime

    assert get_gfx() == get_gfx_runtime() == arch
    assert aiter.dtypes.fp8 is fp8
    assert aiter.dtypes.fp8_e8m0 is torch.float8_e8m0fnu
    assert aiter.dtypes.fp4x2 is torch.float4_e2m1fn_x2


@pytest.mark.parametrize("ck_free", [False, True])
def test_ck_dir_exists_unless_ck_free(install, ck_free):
    settings = install(ck_free=ck_free)
    import aiter.jit.core as core

    assert settings.ck_dir == core.CK_3RDPARTY_DIR
    assert os.path.isdir(core.CK_3RDPARTY_DIR) is not ck_free
    assert core.is_ck_free() is ck_free


def test_current_reports_settings_and_uninstall_purges(install):
    settings = install("gfx950", ck_free=True, faults=["e8m0_ceil_rounding"], atom=True)
    assert sim.is_installed()
    assert sim.current() == settings
    assert (settings.arch, settings.ck_free, settings.atom) == ("gfx950", True, True)
    assert settings.device == torch.device("cpu")
    assert settings.faults.active("e8m0_ceil_rounding", "triton")
    assert _sim_modules()
    assert sim.uninstall() is True
    assert not sim.is_installed() and sim.current() is None
    assert _sim_modules() == []
    assert not any(isinstance(finder, sim._finder.SimFinder) for finder in sys.meta_path)
    assert sim.uninstall() is False
    with pytest.raises(ModuleNotFoundError):
        import aiter  # noqa: F401


def test_reinstall_replaces_the_previous_install(install):
    install("gfx942")
    import aiter

    first = aiter
    install("gfx950")
    import aiter

    assert aiter is not first
    assert aiter.dtypes.fp8 is torch.float8_e4m3fn
    assert sum(isinstance(f, sim._finder.SimFinder) for f in sys.meta_path) == 1


@pytest.mark.parametrize("release_build", [False, True])
def test_release_build_is_a_setting_read_at_import(install, release_build):
    settings = install("gfx950", release_build=release_build)
    import aiter.ops.gemm_op_a8w8 as a8w8

    assert settings.release_build is release_build and sim.current().release_build is release_build
    assert hasattr(a8w8, "gfx950_a8w8_blockscale_asm") is release_build


def test_release_build_defaults_to_head(install, monkeypatch):
    monkeypatch.delenv("QUANTGUARD_SIM_BUILD")
    assert install().release_build is False


def test_sim_build_variable_rejects_unknown_values(monkeypatch):
    monkeypatch.setenv("QUANTGUARD_SIM_BUILD", "nightly")
    with pytest.raises(ValueError, match="QUANTGUARD_SIM_BUILD='nightly'.*'head'.*'release'"):
        sim.install("gfx942")


def test_unknown_arch_is_rejected(install):
    with pytest.raises(ValueError, match="gfx942, gfx950"):
        install("gfx1201")


@pytest.fixture
def real_aiter(tmp_path, monkeypatch):
    package = tmp_path / "aiter"
    package.mkdir()
    (package / "__init__.py").write_text("REAL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield package
    sys.modules.pop("aiter", None)


def test_refuses_to_shadow_an_importable_aiter(install, real_aiter):
    with pytest.raises(RuntimeError, match="real 'aiter' is importable"):
        install()
    assert not sim.is_installed()


def test_refuses_to_shadow_an_imported_aiter(install, real_aiter):
    import aiter

    assert aiter.REAL
    with pytest.raises(RuntimeError, match="force=True"):
        install()


def test_force_installs_over_a_real_aiter(install, real_aiter):
    import aiter

    assert aiter.REAL
    install(force=True)
    import aiter

    assert not hasattr(aiter, "REAL")
    assert hasattr(aiter, "gemm_a8w8_blockscale")


def test_fault_requirements_are_checked_at_install(install):
    with pytest.raises(ValueError, match="arch='gfx950'"):
        install("gfx942", ck_free=True, faults=["asm_gemm_garbage_gfx950"])
    with pytest.raises(ValueError, match="ck_free=True"):
        install("gfx950", faults=["asm_gemm_garbage_gfx950"])
    assert not sim.is_installed()
