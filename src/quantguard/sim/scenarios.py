"""Deployments that expose each incident fault in the ATOM-like workload.

A fault only shows where the workload reaches the faulty code: the CK-free
Triton fallbacks need a CK-free build, the gfx950 ASM garbage needs ATOM to
keep the preshuffled (ASM-tuned) blockscale path in a CK-free build, the JIT
``SystemExit`` needs a CK module to be built where there is no CK.  Each
scenario names the deployment (arch, build, ATOM backend switches) and the
quantguard options that make the incident happen as it did in production.
Each also carries the checks that must report it (``expected``, ``"blocked"``
for a blocked kernel) and the exception the host sees, if any (``raises``):
``quantguard demo`` verifies exactly those, and the incident tests
(``tests/checks/test_incidents.py``, on CPU and on CUDA) run the same list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quantguard.errors import QuantGuardBlocked
from quantguard.sim.faults import FAULTS

__all__ = ["Scenario", "SCENARIOS", "scenario"]


@dataclass(frozen=True)
class Scenario:
    """One run of the workload: which faults, under which deployment and quantguard options."""

    name: str
    faults: tuple[str, ...]
    deploy: Mapping[str, Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    late_enable: bool = False  # build the model first, enable quantguard after (stored references)
    about: str = ""
    expected: tuple[str, ...] = ()  # checks (or "blocked") that must report the fault
    raises: type[BaseException] | None = None  # what the host's call raises (a blocked kernel, a failing build)

    @property
    def incident(self) -> str:
        if self.about:
            return self.about
        return "; ".join(FAULTS[name.split("@")[0]].incident for name in self.faults)

    @property
    def deployment(self) -> dict[str, Any]:
        """``workload.deploy`` arguments: a release build unless the scenario is about AITER HEAD.

        The incidents happened on builds whose kernels otherwise worked (a
        working gfx950 ASM kernel is needed to return garbage); HEAD e4048607's
        own breakage is a scenario of its own.
        """
        return {"release_build": True, **self.deploy}

    @property
    def setting(self) -> str:
        deploy = self.deployment
        parts = [deploy.get("arch", "gfx942"), deploy.get("backend", "ck")]
        if not deploy["release_build"]:
            parts.append("AITER HEAD")
        if deploy.get("ck_free"):
            parts.append("CK-free")
        if deploy.get("preshuffle"):
            parts.append("preshuffle")
        parts += [f"{k}={v}" for k, v in self.options.items()]
        if self.late_enable:
            parts.append("late enable")
        return " ".join(parts)


_CK_FREE_TRITON = {"arch": "gfx942", "backend": "triton", "ck_free": True}
_ASM_GFX950 = {"arch": "gfx950", "backend": "asm", "ck_free": True, "preshuffle": True}

_SHUFFLE = ("kwarg_ignored", "ignored_parameter")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "triton_quant_ignores_shuffle_scale",
        ("triton_quant_ignores_shuffle_scale",),
        _CK_FREE_TRITON,
        expected=(*_SHUFFLE, "scale_layout", "numerics"),
    ),
    Scenario(
        "triton_quant_ignores_shuffle_scale (gfx950)",
        ("triton_quant_ignores_shuffle_scale",),
        {"arch": "gfx950", "backend": "triton", "ck_free": True},
        expected=_SHUFFLE,
    ),
    Scenario(
        "asm_gemm_garbage_gfx950",
        ("asm_gemm_garbage_gfx950",),
        _ASM_GFX950,
        expected=("blocked", "backend_selection"),
        raises=QuantGuardBlocked,
    ),
    Scenario(
        "asm_gemm_garbage_gfx950 (on_block=log)",
        ("asm_gemm_garbage_gfx950",),
        _ASM_GFX950,
        {"on_block": "log"},
        expected=("blocked", "numerics"),
        about="the ASM kernel runs (blocking set to log): its garbage output is measured",
    ),
    Scenario(
        "partial_transpose_noop",
        ("partial_transpose_noop",),
        _CK_FREE_TRITON,
        expected=("noop_transform", "ignored_parameter"),
    ),
    Scenario(
        "missing_e4m3fnuz_normalization",
        ("missing_e4m3fnuz_normalization",),
        {"arch": "gfx942", "backend": "triton"},
        expected=("fp8_variant",),
    ),
    Scenario(
        "missing_e4m3fnuz_normalization (ck)",
        ("missing_e4m3fnuz_normalization",),
        {"arch": "gfx942", "backend": "ck"},
        expected=("fp8_variant",),
        raises=AssertionError,
    ),
    Scenario(
        "jit_build_systemexit",
        ("jit_build_systemexit", "atom_ignores_ck_free"),
        _CK_FREE_TRITON,
        about="the JIT build of a CK module raised SystemExit, so except-RuntimeError fallbacks never ran "
        "(reached because ATOM's MoE path kept CK in a CK-free build)",
        expected=("jit_exit", "backend_selection"),
        raises=RuntimeError,
    ),
    Scenario(
        "fp8_copy_drops_scale",
        ("fp8_copy_drops_scale",),
        {"arch": "gfx942", "backend": "ck"},
        expected=("weight_magnitude",),
    ),
    Scenario(
        "e8m0_copy_zero_fill", ("e8m0_copy_zero_fill",), {"arch": "gfx950", "backend": "ck"}, expected=("scale_values",)
    ),
    Scenario(
        "gemm_reads_scale_wrong_major",
        ("gemm_reads_scale_wrong_major",),
        {"arch": "gfx942", "backend": "ck"},
        expected=("numerics",),
    ),
    Scenario(
        "gemm_reads_scale_wrong_major (triton)",
        ("gemm_reads_scale_wrong_major@triton",),
        {"arch": "gfx942", "backend": "triton"},
        expected=("numerics",),
    ),
    Scenario(
        "gemm_reads_scale_wrong_major (asm)",
        ("gemm_reads_scale_wrong_major@asm",),
        {"arch": "gfx942", "backend": "asm"},
        expected=("numerics",),
    ),
    Scenario(
        "e8m0_ceil_rounding",
        ("e8m0_ceil_rounding@hip",),
        {"arch": "gfx950", "backend": "ck"},
        expected=("e8m0_rounding",),
    ),
    Scenario(
        "moe_missing_routed_scaling",
        ("moe_missing_routed_scaling",),
        {"arch": "gfx942", "backend": "ck"},
        expected=_SHUFFLE,
    ),
    Scenario(
        "atom_ignores_ck_free",
        ("atom_ignores_ck_free",),
        {"arch": "gfx950", "backend": "triton", "ck_free": True},
        expected=("backend_selection",),
        raises=RuntimeError,
    ),
    Scenario(
        "magnitude_only: hipblaslt_drops_scale_b",
        ("hipblaslt_drops_scale_b",),
        {"arch": "gfx942", "backend": "ck"},
        about="a dropped per-tensor scale: cosine stays 1.0, only the norm ratio shows it",
        expected=("numerics", "ignored_parameter"),
    ),
    Scenario(
        "aiter_head: dynamic_mxfp4_quant ignores scaling_mode",
        (),
        {"arch": "gfx950", "backend": "triton", "release_build": False},
        about="AITER HEAD e4048607 as shipped: Triton dynamic_mxfp4_quant accepts scaling_mode and never "
        "reads it (its e8m0 scales are always Even)",
        expected=("ignored_parameter",),
    ),
    Scenario(
        "late_enable: triton_quant_ignores_shuffle_scale",
        ("triton_quant_ignores_shuffle_scale",),
        _CK_FREE_TRITON,
        late_enable=True,
        about="quantguard enabled after the model was built: layers hold get_hip_quant() partials",
        expected=_SHUFFLE,
    ),
)


def scenario(name: str) -> Scenario:
    for candidate in SCENARIOS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown scenario {name!r}; known: {', '.join(s.name for s in SCENARIOS)}")
