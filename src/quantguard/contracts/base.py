"""What a guarded function promises, as data.

A :class:`Contract` names an entry point by its fully qualified path and lists
the checks that apply to it, the parameters that form its metadata signature,
and the expectations the checks need.  The engine applies every contract
through one wrap path and removes it through one unwrap path; AITER's
contracts live in :mod:`quantguard.contracts.aiter`, and users register their
own with :func:`quantguard.register`.

Target paths: ``"pkg.module.function"`` (the last dot separates module and
attribute) or, for attributes of objects, ``"pkg.module:object.attribute"``.

Signature keys (``Contract.key``) say, per parameter, what of an argument the
cached plan verdict depends on; each entry is built by one named constructor:

``tensor("x")``      shape and dtype: what plan checks read of most tensors
``strided("x")``     shape, dtype and strides: for scale layouts that only strides reveal
``identity("w")``    object identity: long-lived tensors (weights), whose metadata is
                     re-verified on sampled calls instead of read on every call
``optional("x")``    a tensor or ``None``: shape and dtype, or ``None``
``value("x")``       a plain value (bool, int, float, str, dtype, None) used as is

Users' own contracts may still spell keys in the older string form, converted
when the contract is built: ``"x"``, ``"x+"``, ``"x@"``, ``"x?"``, ``"x="``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord

__all__ = [
    "Contract",
    "KeyParam",
    "identity",
    "optional",
    "parse_key",
    "split_target",
    "strided",
    "target_matches",
    "tensor",
    "value",
]

KINDS = ("quant", "gemm", "transform", "routing", "moe", "jit", "loader", "selector", "factory", "kernel")
_KEY_KINDS = {"": "tensor", "+": "strided", "@": "identity", "?": "optional", "=": "value"}


@dataclass(frozen=True)
class KeyParam:
    """One parameter of a contract's metadata signature; build it with :func:`tensor`, :func:`value`, ...."""

    name: str
    kind: str  # tensor | strided | identity | optional | value

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"contract key parameter {self.name!r}: expected a parameter name")
        if self.kind not in _KEY_KINDS.values():
            raise ValueError(
                f"contract key parameter {self.name!r}: kind {self.kind!r} is not one of {', '.join(_KEY_KINDS.values())}"
            )


def tensor(name: str) -> KeyParam:
    """A tensor keyed by shape and dtype: enough for the plan checks of most operands."""
    return KeyParam(name, "tensor")


def strided(name: str) -> KeyParam:
    """A tensor keyed by shape, dtype and strides: a scale whose layout only its strides reveal."""
    return KeyParam(name, "strided")


def identity(name: str) -> KeyParam:
    """A long-lived object (a weight, a layer) keyed by identity: one ``id()`` per call instead of its
    metadata; a tensor's metadata is re-verified on sampled calls, so an in-place change is still seen."""
    return KeyParam(name, "identity")


def optional(name: str) -> KeyParam:
    """A tensor or ``None`` (an optional bias or scale): shape and dtype, or ``None``."""
    return KeyParam(name, "optional")


def value(name: str) -> KeyParam:
    """A plain value (bool, int, float, str, dtype, None) that selects behaviour: keyed as is."""
    return KeyParam(name, "value")


def parse_key(entries: tuple[KeyParam | str, ...]) -> tuple[KeyParam, ...]:
    """Key entries as :class:`KeyParam`; strings in the older form (``"x"``, ``"x+"``, ``"x@"``,
    ``"x?"``, ``"x="``) are converted, so users' existing contracts keep working."""
    params = []
    for entry in entries:
        if isinstance(entry, KeyParam):
            params.append(entry)
            continue
        suffix = entry[-1] if isinstance(entry, str) and entry and entry[-1] in "+@?=" else ""
        name = entry[:-1] if suffix else entry
        if not isinstance(name, str) or not name.isidentifier():
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
        key: parameters forming the metadata signature that plan verdicts are cached by, built with
            :func:`tensor`, :func:`strided`, :func:`identity`, :func:`optional`, :func:`value`
            (strings in the older form are converted when the contract is built).
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
    key: tuple[KeyParam | str, ...] = ()
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
        object.__setattr__(self, "key", parse_key(self.key))  # frozen: the one normalization, at build time

    @property
    def module(self) -> str:
        return split_target(self.target)[0]

    @property
    def attribute(self) -> str:
        return split_target(self.target)[1]

    @property
    def key_params(self) -> tuple[KeyParam, ...]:
        """``key`` as :class:`KeyParam` entries (always, once the contract is built)."""
        return cast("tuple[KeyParam, ...]", self.key)  # normalized in __post_init__

    @property
    def name(self) -> str:
        return self.attribute.rsplit(".", 1)[-1]
