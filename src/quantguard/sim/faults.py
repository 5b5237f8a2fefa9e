"""Named fault injections that reproduce real AITER/ATOM quantization incidents.

Each fault is declared once, as data: what incident it reproduces, what users saw,
which backends it can be injected into and which settings it needs to be
reachable at all. The simulated modules ask :meth:`FaultSet.active` at import
time and bind a different function object when a fault is on, so a faulty
kernel is a genuinely different implementation (a static "parameter accepted
but never read" check sees the difference), not a flag test inside a clean one.

``triton_quant_ignores_shuffle_scale`` and ``partial_transpose_noop`` are
CK-free-branch behaviour: the functions they break
(``_fallback_dynamic_per_token_scaled_quant``, ``_fallback_partial_transpose``)
exist only on AITER's CK-free branch, where the incidents happened, not on
AITER main (HEAD e4048607); the simulator keeps that branch's routing in a
CK-free install so the incidents stay reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

__all__ = [
    "BACKENDS",
    "FAULTS",
    "Fault",
    "FaultSet",
    "FaultSpec",
    "parse",
]

#: Every backend a fault can be scoped to.
BACKENDS: tuple[str, ...] = ("asm", "ck", "cktile", "hip", "triton", "hipblaslt", "atom")

#: What :func:`parse` accepts: names (``"name"`` or ``"name@backend"``) or a
#: mapping from name to one backend, several, or ``None`` for the defaults.
FaultSpec = Iterable[str] | Mapping[str, str | Iterable[str] | None]


@dataclass(frozen=True)
class Fault:
    """One reproducible incident.

    ``requires`` lists the install settings (``arch``, ``ck_free``, ``atom``)
    without which the faulty code path cannot run; asking for the fault in
    another configuration is an error rather than a silent no-op.
    """

    name: str
    incident: str
    symptom: str
    backends: tuple[str, ...]
    default_backends: tuple[str, ...]
    requires: tuple[tuple[str, object], ...] = ()

    def check_reachable(self, **settings: object) -> None:
        """Raise ``ValueError`` when the install settings cannot reach this fault."""
        for key, wanted in self.requires:
            if settings[key] != wanted:
                raise ValueError(
                    f"fault {self.name!r} needs {key}={wanted!r} to be reachable, "
                    f"but the simulator is being installed with {key}={settings[key]!r}"
                )


def _fault(
    name: str,
    incident: str,
    symptom: str,
    backends: tuple[str, ...],
    default: tuple[str, ...] | None = None,
    **requires: object,
) -> Fault:
    return Fault(name, incident, symptom, backends, default or backends, tuple(requires.items()))


FAULTS: Mapping[str, Fault] = {
    fault.name: fault
    for fault in (
        _fault(
            "triton_quant_ignores_shuffle_scale",
            "CK-free AITER branch: the Triton fallback of dynamic_per_token_scaled_quant "
            "is a separate function that never reads shuffle_scale",
            "per_group_quant_hip(transpose_scale=True) returns (M, G) row-major bytes; the "
            "transposed-scale GEMM reads them as (G, M) and the output is garbage for M > 1",
            ("triton",),
            ck_free=True,
        ),
        _fault(
            "asm_gemm_garbage_gfx950",
            "CK-free build on MI355X (gfx950): the prebuilt ASM GEMMs read the weight with "
            "a layout that does not match the build",
            "every ASM GEMM returns numbers uncorrelated with the reference (cosine < 0.1)",
            ("asm",),
            arch="gfx950",
            ck_free=True,
        ),
        _fault(
            "partial_transpose_noop",
            "CK-free AITER branch: the Triton fallback of partial_transpose returns without writing its output",
            "the transposed activation scales inside MoE stay whatever the buffer held",
            ("triton",),
            ck_free=True,
        ),
        _fault(
            "missing_e4m3fnuz_normalization",
            "ATOM gfx942 load path skipped normalize_e4m3fn_to_e4m3fnuz",
            "OCP e4m3fn checkpoint bytes reach MI300X kernels that read e4m3fnuz: every "
            "weight is half its value and byte 0x80 becomes NaN",
            ("atom",),
            arch="gfx942",
            atom=True,
        ),
        _fault(
            "jit_build_systemexit",
            "the AITER JIT builder exits the process (SystemExit) when a CK module cannot "
            "be built in a CK-free install",
            "the serving process dies instead of raising a catchable RuntimeError",
            ("ck", "cktile"),
            ck_free=True,
        ),
        _fault(
            "fp8_copy_drops_scale",
            "an FP8 checkpoint weight was loaded into a BF16 parameter with copy_, which "
            "converts the values but drops the 128x128 block scale",
            "the layer's output is thousands of times too large (1 / block scale)",
            ("atom",),
            atom=True,
        ),
        _fault(
            "e8m0_copy_zero_fill",
            "copy_ of float8_e8m0fnu scales into a uint8 parameter converts them numerically instead of copying bytes",
            "scales below 1 become byte 0 (2^-127): the MXFP4 layer outputs zeros",
            ("atom",),
            atom=True,
        ),
        _fault(
            "gemm_reads_scale_wrong_major",
            "a blockscale GEMM read x_scale in the other major order than its producer wrote",
            "per-row/per-group activation scales are permuted: wrong output for M > 1",
            ("ck", "triton", "asm"),
            ("ck",),
        ),
        _fault(
            "e8m0_ceil_rounding",
            "DeepSeek-V4: an e8m0 producer used ceil(log2) while its declared mode was round-to-even",
            "block scales one power of two larger than declared on ~half of the blocks",
            ("triton", "hip"),
            ("triton",),
        ),
        _fault(
            "moe_missing_routed_scaling",
            "the routing kernel biased_grouped_topk accepted routed_scaling_factor but never "
            "multiplied it into topk_weights",
            "the routed-expert output is 1/routed_scaling_factor of what it should be",
            ("hip",),
        ),
        _fault(
            "hipblaslt_drops_scale_b",
            "a per-tensor FP8 GEMM through hipBLASLt (tgemm.mm) dropped the weight's per-tensor "
            "scale: a uniform magnitude error",
            "outputs off by 1/scale_b with the direction intact (cosine 1.0): only magnitudes show it",
            ("hipblaslt",),
        ),
        _fault(
            "wo_a_per_tensor_requant",
            "DeepSeek-V4 on ATOM: the wo_a load path requantized the FP8 weight, stored with one scale per "
            "128x128 block, to a single per-tensor scale before its BF16 dequantization",
            "blocks far below the weight's amax fall into the FP8 subnormals and lose their bits while the "
            "global cosine stays near 1: a silent accuracy loss in attention",
            ("atom",),
            atom=True,
        ),
        _fault(
            "atom_ignores_ck_free",
            "ATOM's MoE path kept use_triton_gemm() False in CK-free mode and still called AITER's CK fused_moe",
            "the first MoE forward triggers a JIT build of a CK module, which fails",
            ("atom",),
            ck_free=True,
            atom=True,
        ),
        _fault(
            "custom_routing_ignored",
            "DeepSeek-V4 hash routing: ATOM's FusedMoE.select_experts computed its own top-k from the "
            "gate logits although a custom_routing_function (the hash layer's) was given",
            "hash layers route each token to the experts its logits prefer, not to tid2eid's: "
            "plausible weights, wrong experts",
            ("atom",),
            atom=True,
        ),
        _fault(
            "moe_swiglu_runs_silu",
            "fused_moe(activation=ActivationType.Swiglu) ran a stage-1 kernel that applies plain SiLU "
            "(no alpha=1.702, no clamp at 7, no up + 1)",
            "gpt-oss style experts lose amplitude: the MoE output is a fraction of the Swiglu one",
            ("ck",),
        ),
    )
}


class FaultSet(Mapping[str, frozenset[str]]):
    """Immutable mapping from fault name to the backends it is injected into."""

    __slots__ = ("_backends",)

    def __init__(self, backends: Mapping[str, frozenset[str]] | None = None) -> None:
        self._backends = dict(backends or {})

    def active(self, name: str, backend: str) -> bool:
        """Whether fault ``name`` is injected into ``backend``."""
        return backend in self._backends.get(name, ())

    def check_reachable(self, **settings: object) -> None:
        """Raise ``ValueError`` for any fault these install settings cannot reach."""
        for name in self._backends:
            FAULTS[name].check_reachable(**settings)

    def __getitem__(self, name: str) -> frozenset[str]:
        return self._backends[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._backends)

    def __len__(self) -> int:
        return len(self._backends)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}@{'+'.join(sorted(b))}" for n, b in sorted(self._backends.items()))
        return f"FaultSet({inner})"


def _lookup(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        raise ValueError(f"unknown fault {name!r}; accepted faults: {', '.join(sorted(FAULTS))}") from None


def _scoped(fault: Fault, backends: str | Iterable[str] | None) -> frozenset[str]:
    if backends is None:
        return frozenset(fault.default_backends)
    chosen = {backends} if isinstance(backends, str) else set(backends)
    for backend in chosen:
        if backend not in BACKENDS:
            raise ValueError(
                f"unknown backend {backend!r} for fault {fault.name!r}; accepted backends: {', '.join(BACKENDS)}"
            )
        if backend not in fault.backends:
            raise ValueError(
                f"fault {fault.name!r} cannot be injected into backend {backend!r}; "
                f"it applies to: {', '.join(fault.backends)}"
            )
    if not chosen:
        raise ValueError(f"fault {fault.name!r} was given an empty backend list")
    return frozenset(chosen)


def parse(spec: FaultSpec | FaultSet) -> FaultSet:
    """Turn a user's fault request into a :class:`FaultSet`.

    ``("name", "name@triton")`` picks the default backends or one backend;
    ``{"name": ("ck", "asm")}`` picks several. Unknown names or backends raise
    ``ValueError`` listing the accepted values.
    """
    if isinstance(spec, FaultSet):
        return spec
    if isinstance(spec, str):
        raise TypeError("faults must be a collection of names, not a single string")
    merged: dict[str, set[str]] = {}
    if isinstance(spec, Mapping):
        items = [(name, backends) for name, backends in spec.items()]
    else:
        items = [(entry.partition("@")[0], entry.partition("@")[2] or None) for entry in spec]
    for name, backends in items:
        fault = _lookup(name)
        merged.setdefault(name, set()).update(_scoped(fault, backends))
    return FaultSet({name: frozenset(backends) for name, backends in merged.items()})
