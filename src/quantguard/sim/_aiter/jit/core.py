"""Simulated ``aiter.jit.core``: JIT builds of kernel modules, and ``compile_ops``.

A kernel module is "built" the first time one of its ops is called. A build
succeeds when every include directory it needs exists; CK-based modules
include ``CK_3RDPARTY_DIR``, so in a CK-free install (that directory is
missing) building them fails the way AITER's compile does, while HIP, ASM
and Triton modules still work. ``compile_ops`` wrappers look ``build_module``
up as a module global at call time, so a wrapper placed on
``aiter.jit.core.build_module`` sees every build.

As in AITER, every ``compile_ops`` kernel is also a torch custom op
(``torch.ops.aiter.<function name>``, through ``torch_compile_guard``): the
module attribute is an opaque ``(*args, **kwargs)`` wrapper.
"""

import functools
import os
from dataclasses import dataclass

from quantguard.sim import _state

from .utils.torch_guard import torch_compile_guard

__all__ = [
    "AITER_ROOT_DIR",
    "CK_3RDPARTY_DIR",
    "CK_DIR",
    "BuiltModule",
    "bd_dir",
    "build_module",
    "compile_ops",
    "get_args_of_build",
    "get_module",
    "is_ck_free",
]

CK_3RDPARTY_DIR = _state.settings().ck_dir
CK_DIR = CK_3RDPARTY_DIR
AITER_ROOT_DIR = os.path.dirname(os.path.dirname(CK_3RDPARTY_DIR))
AITER_CSRC_DIR = f"{AITER_ROOT_DIR}/csrc"
bd_dir = f"{AITER_ROOT_DIR}/build"

#: Kernel module -> the backend its code belongs to (what a fault can target).
MODULE_BACKENDS = {
    "module_quant": "hip",
    "module_moe_asm": "hip",
    "module_moe_topk": "hip",
    "module_gemm_a8w8": "ck",
    "module_gemm_a8w8_bpreshuffle": "ck",
    "module_gemm_a8w8_bpreshuffle_cktile": "cktile",
    "module_gemm_a8w8_blockscale": "ck",
    "module_gemm_a8w8_blockscale_cktile": "cktile",
    "module_gemm_a8w8_blockscale_bpreshuffle": "ck",
    "module_gemm_a4w4_blockscale": "ck",
    "module_moe_ck2stages": "ck",
    "module_gemm_a8w8_asm": "asm",
    "module_gemm_a8w8_blockscale_asm": "asm",
    "module_gemm_a8w8_blockscale_bpreshuffle_asm": "asm",
    "module_gemm_a4w4_asm": "asm",
}


@dataclass(frozen=True)
class BuiltModule:
    """What a successful simulated build produced (stands in for the ``.so``)."""

    name: str
    sources: tuple
    flags: tuple
    blob_gen_cmd: str
    ldflags: tuple
    verbose: bool
    is_python_module: bool
    is_standalone: bool
    torch_exclude: bool
    third_party: tuple
    hipify: bool


_built = {}


def is_ck_free():
    """Whether this install has no Composable Kernel sources, decided as AITER does."""
    return not os.path.isdir(CK_3RDPARTY_DIR)


def get_args_of_build(md_name):
    """Build arguments of a kernel module (AITER keeps them in optCompilerConfig.json)."""
    needs_ck = MODULE_BACKENDS[md_name] in ("ck", "cktile")
    return {
        "srcs": [f"{AITER_CSRC_DIR}/pybind/{md_name.removeprefix('module_')}_pybind.cu"],
        "flags_extra_cc": [],
        "flags_extra_hip": [],
        "blob_gen_cmd": "",
        "extra_include": ([f"{CK_3RDPARTY_DIR}/include", f"{CK_3RDPARTY_DIR}/library/include"] if needs_ck else []),
        "extra_ldflags": None,
        "verbose": False,
        "is_python_module": True,
        "is_standalone": False,
        "torch_exclude": False,
        "third_party": [],
        "hipify": False,
    }


def _raise_build_failed(md_name, op_dir, missing):
    raise RuntimeError(f"[aiter] build [{md_name}] under {op_dir} failed !!!!!!") from (
        FileNotFoundError(f"include directories not found: {', '.join(missing)}")
    )


def _exit_on_build_failure(md_name, op_dir, missing):
    if MODULE_BACKENDS[md_name] in _state.settings().faults["jit_build_systemexit"]:
        raise SystemExit(f"[aiter] build [{md_name}] under {op_dir} failed, exiting")
    _raise_build_failed(md_name, op_dir, missing)


_report_build_failure = (
    _exit_on_build_failure if "jit_build_systemexit" in _state.settings().faults else _raise_build_failed
)


def build_module(
    md_name,
    srcs,
    flags_extra_cc,
    flags_extra_hip,
    blob_gen_cmd,
    extra_include,
    extra_ldflags,
    verbose,
    is_python_module,
    is_standalone,
    torch_exclude,
    third_party,
    hipify=False,
    flags_extra_hip_per_source=None,
):
    """Simulated JIT compile of one kernel module."""
    op_dir = f"{bd_dir}/{md_name}/build"
    missing = [path for path in extra_include if not os.path.isdir(path)]
    if missing:
        _report_build_failure(md_name, op_dir, missing)
    flags = [*flags_extra_cc, *flags_extra_hip]
    for per_source in (flags_extra_hip_per_source or {}).values():
        flags.extend(per_source)
    if is_ck_free():
        flags.append("-DAITER_CK_FREE=1")
    _built[md_name] = BuiltModule(
        md_name,
        tuple(srcs),
        tuple(flags),
        blob_gen_cmd,
        tuple(extra_ldflags or ()),
        verbose,
        is_python_module,
        is_standalone,
        torch_exclude,
        tuple(third_party),
        hipify,
    )


def get_module(md_name):
    """The built module, or ``ModuleNotFoundError`` if it was never built."""
    try:
        return _built[md_name]
    except KeyError:
        raise ModuleNotFoundError(md_name) from None


def _load(md_name):
    try:
        return get_module(md_name)
    except ModuleNotFoundError:
        args = get_args_of_build(md_name)
        build_module(
            md_name,
            args["srcs"],
            args["flags_extra_cc"],
            args["flags_extra_hip"],
            args["blob_gen_cmd"],
            args["extra_include"],
            args["extra_ldflags"],
            args["verbose"],
            args["is_python_module"],
            args["is_standalone"],
            args["torch_exclude"],
            args["third_party"],
            args["hipify"],
        )
        return get_module(md_name)


def _declaration_fake(*args, **kwargs):
    """AITER's kernels are bodiless declarations (``...``): without ``gen_fake`` their fake returns None."""
    return None


def compile_ops(_md_name, gen_fake=None):
    """Bind a kernel function to module ``_md_name`` (built on first call) and make it an op.

    As in AITER, the inner wrapper (``functools.wraps``: it keeps
    ``__wrapped__``) builds the module and runs the kernel, and the returned
    attribute is ``torch_compile_guard(device="cuda", gen_fake=...,
    calling_func_=func)`` of it: opaque, dispatching through
    ``torch.ops.aiter.<func.__name__>``. ``gen_fake`` gives output shapes to
    ``torch.compile``; without it the fake does what AITER's bodiless
    declaration does, nothing.
    """

    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            _load(_md_name)
            return func(*args, **kwargs)

        fake = gen_fake if gen_fake is not None else _declaration_fake

        @torch_compile_guard(device="cuda", gen_fake=fake, calling_func_=func)
        def custom_wrapper(*args, **kwargs):
            return wrapper(*args, **kwargs)

        return custom_wrapper

    return decorator
