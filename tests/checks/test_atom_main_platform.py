"""CK-free detection follows AITER itself; ATOM_CK_FREE only counts where ATOM has it (its CK-free branch)."""

from __future__ import annotations

import sys
import types

import pytest

from quantguard.hardware import detect_platform


@pytest.fixture
def loaded(monkeypatch, tmp_path):
    """Stand-ins for an imported ``aiter.jit.core`` and ``atom.utils.envs``; args say which and how."""
    for name in ("aiter.jit.core", "atom.utils.envs", "aiter.jit.utils.chip_info", "aiter.utility.dtypes"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    def load(ck: str | None = None, atom: str | None = None) -> None:
        if ck is not None:
            directory = tmp_path / "composable_kernel"
            if ck == "present":
                directory.mkdir()
            monkeypatch.setitem(sys.modules, "aiter.jit.core", types.SimpleNamespace(CK_3RDPARTY_DIR=str(directory)))
        if atom is not None:
            known = {"ATOM_USE_TRITON_GEMM": bool}
            if atom == "ck_free_branch":
                known["ATOM_CK_FREE"] = bool
            monkeypatch.setitem(sys.modules, "atom.utils.envs", types.SimpleNamespace(environment_variables=known))

    return load


@pytest.mark.parametrize(
    "ck, atom, environ, ck_free, source",
    [
        # AITER decides: CK sources missing means a CK-free build (-DAITER_CK_FREE=1).
        ("missing", "main", {}, True, "-DAITER_CK_FREE=1"),
        ("present", "main", {}, False, "a directory: CK build"),
        # ATOM main has no ATOM_CK_FREE: setting it changes nothing and the source says so.
        ("present", "main", {"ATOM_CK_FREE": "1"}, False, "ATOM_CK_FREE=1 ignored"),
        ("missing", "main", {"ATOM_CK_FREE": "1"}, True, "ATOM_CK_FREE=1 ignored"),
        # On the CK-free branch the switch is an override that can only turn CK-free on.
        ("present", "ck_free_branch", {"ATOM_CK_FREE": "1"}, True, "overrides aiter.jit.core.CK_3RDPARTY_DIR"),
        ("missing", "ck_free_branch", {"ATOM_CK_FREE": "0"}, True, "not a directory"),
        # Neither loaded yet: CK_DIR (what AITER will read), else the switch, else the default.
        (None, None, {"CK_DIR": "/nonexistent/ck"}, True, "CK_DIR=/nonexistent/ck (not a directory"),
        (None, None, {"ATOM_CK_FREE": "1"}, True, "AITER not loaded, CK_DIR unset"),
        (None, None, {}, False, "default: not CK-free"),
    ],
)
def test_ck_free_decision_and_its_source(loaded, ck, atom, environ, ck_free, source):
    loaded(ck, atom)
    platform = detect_platform(environ=environ)
    assert platform.ck_free is ck_free
    assert source in platform.ck_free_source
    assert platform.as_dict()["ck_free_source"] == platform.ck_free_source


def test_explicit_setting_wins_over_aiter(loaded):
    loaded("missing", "main")
    platform = detect_platform(ck_free_override=False, environ={})
    assert platform.ck_free is False and platform.ck_free_source.startswith("QUANTGUARD_CK_FREE")


def test_ck_dir_that_exists_is_a_ck_build_before_aiter_loads(loaded, tmp_path):
    loaded()
    platform = detect_platform(environ={"CK_DIR": str(tmp_path)})
    assert platform.ck_free is False and "a directory: CK build" in platform.ck_free_source


@pytest.mark.parametrize(
    "ck_free, phrase",
    [(True, "not a directory: modules build with -DAITER_CK_FREE=1"), (False, "a directory: CK build")],
)
def test_info_and_enabled_event_say_where_ck_free_came_from(monkeypatch, ck_free, phrase):
    import quantguard
    import quantguard.sim as sim
    from quantguard.cli.info_cmd import collect_info
    from quantguard.testing import capture_events

    monkeypatch.delenv("ATOM_CK_FREE", raising=False)
    sim.install("gfx950", ck_free=ck_free, atom=True)  # the root conftest uninstalls it
    assert collect_info()["platform"]["ck_free"] is ck_free
    assert phrase in collect_info()["platform"]["ck_free_source"]
    with capture_events() as events:
        quantguard.enable(log="/dev/null")
    [enabled] = events.named("enabled")
    assert phrase in enabled["platform"]["ck_free_source"]
