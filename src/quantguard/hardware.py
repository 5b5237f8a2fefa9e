"""What machine and build quantguard is guarding: GPU arch, FP8 variant, CK-free mode.

Each fact records where it came from (an environment override, AITER itself,
torch, ATOM's settings), because "the guard thought this was gfx942" is the
first thing to rule out when a verdict looks wrong.  Detection never imports
AITER or torch: it reads them only if the process already loaded them.

CK-free is AITER's fact: ``aiter.jit.core.CK_3RDPARTY_DIR`` (env ``CK_DIR``)
not a directory, which makes every module compile with ``-DAITER_CK_FREE=1``.
ATOM main has no switch for it; ``ATOM_CK_FREE=1`` belongs to ATOM's CK-free
branch and only counts where the loaded ATOM defines it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["Platform", "detect_platform", "FP8_BY_ARCH", "fp8_name"]

#: The FP8 format AITER's kernels expect per arch (``aiter.utility.dtypes.defaultDtypes``).
FP8_BY_ARCH = {"gfx942": "float8_e4m3fnuz"}
_FP8_DEFAULT = "float8_e4m3fn"  # gfx950 and newer


def fp8_name(arch: str | None) -> str:
    """The FP8 dtype name AITER's kernels on ``arch`` read: OCP e4m3fn unless the arch has its own."""
    return FP8_BY_ARCH.get(arch or "", _FP8_DEFAULT)


@dataclass(frozen=True)
class Platform:
    arch: str | None
    arch_source: str
    ck_free: bool
    ck_free_source: str
    fp8_dtype: str | None
    fp8_source: str

    @property
    def asm_blocked(self) -> bool:
        """ASM kernels must not run: gfx950 with a CK-free build (they return garbage there)."""
        return self.arch == "gfx950" and self.ck_free

    def expected_fp8(self) -> str | None:
        """The FP8 dtype name the arch's kernels read (``float8_e4m3fnuz`` on gfx942)."""
        if self.arch is None:
            return None
        if self.arch in FP8_BY_ARCH or self.arch.startswith(("gfx9", "gfx1")):
            return fp8_name(self.arch)
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "arch_source": self.arch_source,
            "ck_free": self.ck_free,
            "ck_free_source": self.ck_free_source,
            "fp8_dtype": self.fp8_dtype,
            "fp8_source": self.fp8_source,
            "asm_blocked": self.asm_blocked,
        }


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _arch_from_aiter() -> tuple[str | None, str]:
    chip_info = sys.modules.get("aiter.jit.utils.chip_info")
    if chip_info is None:
        return None, ""
    for name in ("get_gfx_runtime", "get_gfx"):
        getter = getattr(chip_info, name, None)
        if getter is None:
            continue
        try:
            arch = str(getter()).strip().lower()
        except Exception:  # no GPU visible, rocminfo missing, ...
            continue
        if arch.startswith("gfx"):
            return arch, f"aiter.jit.utils.chip_info.{name}()"
    return None, ""


def _arch_from_torch() -> tuple[str | None, str]:
    torch = sys.modules.get("torch")
    if torch is None or not getattr(getattr(torch, "version", None), "hip", None):
        return None, ""
    try:
        if torch.cuda.is_available():
            name = torch.cuda.get_device_properties(0).gcnArchName
            return str(name).split(":")[0].strip().lower(), "torch.cuda.get_device_properties(0).gcnArchName"
    except Exception:
        pass
    return None, ""


def _ck_free_from_aiter() -> tuple[bool | None, str]:
    """AITER's own test: ``CK_3RDPARTY_DIR`` missing means every module compiles with ``-DAITER_CK_FREE=1``."""
    core = sys.modules.get("aiter.jit.core")
    directory = getattr(core, "CK_3RDPARTY_DIR", None) if core is not None else None
    if directory is None:
        return None, ""
    if os.path.isdir(str(directory)):
        return False, f"aiter.jit.core.CK_3RDPARTY_DIR={directory} (a directory: CK build)"
    return True, (f"aiter.jit.core.CK_3RDPARTY_DIR={directory} (not a directory: modules build with -DAITER_CK_FREE=1)")


def _ck_free_from_ck_dir(environ: Any) -> tuple[bool | None, str]:
    """Before AITER is imported only ``CK_DIR`` (which AITER reads into ``CK_3RDPARTY_DIR``) can tell."""
    directory = (environ.get("CK_DIR") or "").strip()
    if not directory:
        return None, ""
    state = "a directory: CK build" if os.path.isdir(directory) else "not a directory: CK-free build"
    return not os.path.isdir(directory), f"CK_DIR={directory} ({state}; AITER not loaded yet)"


def _atom_ck_free_switch(environ: Any) -> tuple[bool, str]:
    """Whether ``ATOM_CK_FREE=1`` counts: only ATOM's CK-free branch defines it; ATOM main ignores it.

    Returns (counts, note).  With ATOM not loaded yet the switch is trusted
    (the branch may be what loads); with ATOM loaded, its ``atom.utils.envs``
    says whether the switch exists.
    """
    if not _truthy(environ.get("ATOM_CK_FREE")):
        return False, ""
    envs = sys.modules.get("atom.utils.envs")
    known = getattr(envs, "environment_variables", None) if envs is not None else None
    if isinstance(known, dict) and "ATOM_CK_FREE" not in known:
        return False, "ATOM_CK_FREE=1 ignored: the loaded ATOM (main) has no such switch"
    return True, "ATOM_CK_FREE=1 (ATOM's CK-free branch switch)"


def _detect_ck_free(environ: Any) -> tuple[bool, str]:
    """CK-free from AITER itself first; ``ATOM_CK_FREE=1`` (CK-free branch) can only turn it on."""
    build, build_source = _ck_free_from_aiter()
    if build is None:
        build, build_source = _ck_free_from_ck_dir(environ)
    switch, switch_note = _atom_ck_free_switch(environ)
    if build:
        return True, build_source + (f"; {switch_note}" if switch_note else "")
    if switch:
        note = f" overrides {build_source}" if build is False else " (AITER not loaded, CK_DIR unset)"
        return True, switch_note + note
    if build is False:
        return False, build_source + (f"; {switch_note}" if switch_note else "")
    return False, "default: not CK-free (AITER not loaded, CK_DIR unset" + (
        f"; {switch_note})" if switch_note else ", ATOM_CK_FREE unset)"
    )


def _fp8_from_aiter() -> tuple[str | None, str]:
    dtypes = sys.modules.get("aiter.utility.dtypes")
    fp8 = getattr(dtypes, "fp8", None) if dtypes is not None else None
    if fp8 is None:
        return None, ""
    return str(fp8).replace("torch.", ""), "aiter.utility.dtypes.fp8"


def detect_platform(
    gfx_override: str | None = None, ck_free_override: bool | None = None, environ: Any = None
) -> Platform:
    """Detect arch, CK-free mode and FP8 dtype; overrides (config/env) win and say so."""
    environ = os.environ if environ is None else environ
    if gfx_override:
        arch, arch_source = gfx_override, "QUANTGUARD_GFX / enable(gfx=...)"
    else:
        arch, arch_source = _arch_from_aiter()
        if arch is None:
            arch, arch_source = _arch_from_torch()
        if arch is None:
            arch, arch_source = None, "unknown (no AITER arch, no ROCm device)"

    if ck_free_override is not None:
        ck_free, ck_source = ck_free_override, "QUANTGUARD_CK_FREE / enable(ck_free=...)"
    else:
        ck_free, ck_source = _detect_ck_free(environ)

    fp8, fp8_source = (None, "")
    if not gfx_override:
        fp8, fp8_source = _fp8_from_aiter()
    if fp8 is None and arch is not None:
        fp8 = FP8_BY_ARCH.get(arch, _FP8_DEFAULT)
        fp8_source = f"arch table for {arch}"
    return Platform(arch, arch_source, bool(ck_free), ck_source, fp8, fp8_source or "unknown")
