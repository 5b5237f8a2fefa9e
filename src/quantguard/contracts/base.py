"""What a guarded function promises, as data.

A :class:`Contract` names an entry point by its fully qualified path and lists
the checks that apply to it, the parameters that form its metadata signature,
and the expectations the checks need.  The engine applies every contract
through one wrap path and removes it through one unwrap path; AITER's
contracts live in :mod:`quantguard.contracts.aiter`, and users register their
own with :func:`quantguard.register`.

Target paths: ``"pkg.module.function"`` (the last dot separates module and
attribute) or, for attributes of objects, ``"pkg.module:object.attribute"``.

Signature keys (``Contract.key``), one entry per parameter, by name:

``"x"``   tensor: shape and dtype
``"x+"``  tensor: shape, dtype and strides (layouts that strides can reveal)
``"x@"``  long-lived tensor (weights): object identity, metadata re-verified on sampled calls
``"x?"``  tensor or ``None``: shape and dtype, or ``None``
``"x="``  plain value (bool, int, float, str, dtype, None)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = ["Contract", "KeyParam", "parse_key", "split_target", "target_matches"]

KINDS = ("quant", "gemm", "transform", "routing", "moe", "jit", "loader", "selector", "factory", "kernel")
_KEY_KINDS = {"": "tensor", "+": "strided", "@": "identity", "?": "optional", "=": "value"}


@dataclass(frozen=True)
class KeyParam:
    name: str
    kind: str  # tensor | strided | identity | optional | value


def parse_key(entries: tuple[str, ...]) -> tuple[KeyParam, ...]:
    params = []
    for entry in entries:
        suffix = entry[-1] if entry and entry[-1] in "+@?=" else ""
        name = entry[:-1] if suffix else entry
        if not name.isidentifier():
            raise ValueError(f"contract key entry {entry!r}: expected a parameter name with an optional suffix + @ ? =")
        params.append(KeyParam(name, _KEY_KINDS[suffix]))
    return tuple(params)


def split_target(target: str) -> tuple[str, str]:
    """``"a.b.c"`` → ``("a.b", "c")``; ``"a.b:obj.attr"`` → ``("a.b", "obj.attr")``."""
    if ":" in target:
        module, _, attribute = target.partition(":")
    else:
        module, _, attribute = target.rpartition(".")
    if not module or not attribute:
        raise ValueError(f"target {target!r}: expected 'package.module.function' or 'package.module:object.attribute'")
    return module, attribute


def target_matches(target: str, globs: tuple[str, ...]) -> bool:
    plain = target.replace(":", ".")
    return any(fnmatch.fnmatchcase(plain, glob) for glob in globs)


@dataclass(frozen=True)
class Contract:
    """The promises of one entry point, and which checks hold it to them.

    Args:
        target: fully qualified path of the function (see module docstring).
        kind: what the function is (``quant``, ``gemm``, ``transform``, ...).
        backend: which implementation family it belongs to (``hip``, ``ck``,
            ``cktile``, ``asm``, ``triton``, ``hipblaslt``, ``torch``, ``atom``...).
        checks: ids of the checks that apply (see ``quantguard.checks``).
        key: parameters forming the metadata signature that plan verdicts are cached by.
        interpret: adapter turning a bound call into the normalized view checks read
            (a ``QuantView``, ``GemmView``...); it encodes the library's semantics.
        params: expected parameter names in order, for version-drift detection.
        relied_defaults: defaults (by source text) that checks rely on.
        depends: check id → parameters it needs; a drifted parameter disables only those checks.
        asm: the function is an ASM kernel (subject to the CK-free ASM policy).
        alternative: path of the safe equivalent named when the kernel is blocked.
        reroute: adapter calling the alternative with converted arguments (``on_block="reroute"``).
        honored: parameters the function must read (statically checked, with its fallbacks).
        options: per-contract expectations (thresholds, rounding modes, ...).
        signature_of: a Python function with the target's signature, for builtins
            ``inspect`` cannot read (``torch._scaled_mm``).
        op: the torch custom op (``"namespace::name"``) the entry point dispatches to; the
            guard then sits at the op's dispatch and binds by its schema.  Found
            automatically for AITER's ``torch_compile_guard``/``compile_ops`` wrappers.
        description: one line for reports and ``quantguard info``.
    """

    target: str
    kind: str
    backend: str
    checks: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    interpret: Callable[[CallRecord], Any] | None = None
    params: tuple[str, ...] | None = None
    relied_defaults: Mapping[str, str] = field(default_factory=dict)
    depends: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    asm: bool = False
    alternative: str | None = None
    reroute: Callable[..., Any] | None = None
    honored: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    signature_of: Callable[..., Any] | None = None
    op: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        split_target(self.target)
        if self.kind not in KINDS:
            raise ValueError(f"contract {self.target}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        parse_key(self.key)

    @property
    def module(self) -> str:
        return split_target(self.target)[0]

    @property
    def attribute(self) -> str:
        return split_target(self.target)[1]

    @property
    def key_params(self) -> tuple[KeyParam, ...]:
        return parse_key(self.key)

    @property
    def name(self) -> str:
        return self.attribute.rsplit(".", 1)[-1]
