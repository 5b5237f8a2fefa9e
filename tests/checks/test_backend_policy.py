"""The CK-free policy checks read library facts from the contracts; their messages say what to do."""

from __future__ import annotations

import types

import pytest

from quantguard.checks.backend_policy import AsmPolicy, CkFreeBackend
from quantguard.contracts import Contract
from quantguard.hardware import Platform


def _call(contract, arch="gfx950", ck_free=True, **arguments):
    platform = Platform(arch, "test arch", ck_free, "test CK-free source", "float8_e4m3fn", "test")
    return types.SimpleNamespace(platform=platform, contract=contract, get=arguments.get)


def _contract(target, backend, **fields):
    return Contract(target=target, kind="gemm", backend=backend, **fields)


def test_a_ck_kernel_in_a_ck_free_build_names_how_to_select_triton():
    contract = _contract("aiter.ops.gemm_op_a8w8.gemm_a8w8_CK", "ck", alternative="aiter.ops.triton.gemm.x")
    [finding] = CkFreeBackend().check(_call(contract))
    assert finding.message == (
        "CK kernel called in a CK-free build (test CK-free source); its JIT build fails or a stale module "
        "runs. Select Triton (ATOM: use_triton_gemm()), e.g. aiter.ops.triton.gemm.x"
    )


@pytest.mark.parametrize(
    "target, backend, ck_free, arguments, reported",
    [
        ("mylib.gemm", "triton", True, {}, False),  # not CK
        ("aiter.ops.gemm_op_a8w8.gemm_a8w8_CK", "hip", True, {}, True),  # listed as CK by its library
        ("mylib.gemm", "ck", False, {}, False),  # a CK build may run CK
        ("mylib.gemm", "ck", True, {"isBpreshuffled": True}, False),  # routed to another kernel
    ],
)
def test_ck_free_backend_applies_to_ck_kernels_only(target, backend, ck_free, arguments, reported):
    contract = _contract(target, backend, options={"not_ck_when": ("isBpreshuffled",)})
    assert bool(CkFreeBackend().check(_call(contract, ck_free=ck_free, **arguments))) is reported


@pytest.mark.parametrize(
    "target, asm, arch, blocked",
    [
        ("mylib.gemm", True, "gfx950", True),
        ("aiter.ops.gemm_op_a8w8.gemm_a8w8_asm", False, "gfx950", True),  # by the library's naming rule
        ("mylib.gemm", False, "gfx950", False),
        ("mylib.gemm", True, "gfx942", False),  # ASM is safe there
    ],
)
def test_asm_policy_blocks_asm_kernels_on_gfx950_ck_free(target, asm, arch, blocked):
    [*findings] = AsmPolicy().check(_call(_contract(target, "asm", asm=asm), arch=arch))
    assert bool(findings) is blocked
