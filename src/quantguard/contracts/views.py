"""Normalized views of guarded calls: what a call *means*, independent of the library's names.

Contracts' ``interpret`` adapters build these from bound arguments (that is
where AITER's semantics live: regimes, kwargs that pick layouts, rounding
defaults); generic checks read only these.  A user contract for another
library returns the same views and gets the same checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["QuantView", "GemmView", "TransformView", "RoutingView", "MoeView"]


@dataclass
class QuantView:
    """A quantization producer: high-precision ``x`` in, quantized ``q`` and ``scales`` out.

    ``group`` is the number of elements sharing a scale along the last dim
    (``None``: one scale per row; ``0``: one scale for the tensor).  Scales are
    checked in memory order: ``requested_layout`` is what the caller asked for
    (via ``request``), ``alternatives`` the layouts a buggy producer could have
    written instead.
    """

    producer: str
    x: Any  # (M, K) high precision (a 2-D view of the input)
    q: Any  # quantized values as written
    scales: Any  # the scale buffer as written
    element: Any  # ElementFormat of q
    q_read_as: Any = None  # dtype to read q's bytes as (fp8 variant); None = q's own dtype
    group: int | None = None
    encoding: str = "fp32"  # "fp32" or "e8m0"
    requested_layout: str = "row_major"
    request: str = ""  # e.g. "shuffle_scale=True"
    alternatives: tuple[str, ...] = ()
    rounding: str | None = None  # e8m0 mode this producer declares
    rounding_source: str = ""
    static: bool = False  # scales were given, not produced
    valid_rows: Any = None  # tensor/int: only the first r rows are meaningful (MoE)
    scale_upper_bound: Any = None
    smooth: Any = None  # smooth-quant multiplier applied to x before quantizing
    zero_amax_scale: str = "clamp"  # "clamp": max(amax,1e-10)/max ; "one": scale 1 for all-zero groups
    packed_fp4: bool = False

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def groups(self) -> int:
        if self.group is None:
            return 1
        if self.group == 0:
            return 1
        return -(-int(self.x.shape[-1]) // self.group)

    def provenance_inputs(self) -> tuple[Any, ...]:
        return ()


@dataclass
class GemmView:
    """A scaled GEMM ``y = (x * x_scale) @ (w * w_scale)^T (+ bias)``.

    ``scheme``: ``per_token`` (x_scale (M,1), w_scale (N,1)), ``per_tensor``,
    ``block`` (x 1x``block_k``, w ``block_n``x``block_k`` blocks), ``mx``
    (e8m0 1x32 groups), ``batched_prequant`` (x quantized inside the kernel).
    ``x_scale_layout`` is what the kernel reads; ``x_scale_strided_ok`` says a
    transposed *view* (stride(0) == 1) is accepted as that layout.
    """

    kernel: str
    x: Any
    w: Any
    x_scale: Any
    w_scale: Any
    out: Any = None
    bias: Any = None
    out_dtype: Any = None
    scheme: str = "per_token"
    element: Any = None  # ElementFormat family of x/w ("fp8", "int8", "fp4")
    x_scale_layout: str = "row_major"
    x_scale_strided_ok: bool = False
    w_scale_layout: str = "row_major"
    w_layout: str = "plain"  # "plain", "preshuffle_16x16" or "preshuffle_32x16" (shuffle_weight layouts)
    block_k: int = 128
    block_n: int = 128
    mx_group: int = 32
    fp8_read_as: Any = None  # the fp8 dtype the kernel interprets bytes as (arch)
    alpha: float = 1.0
    beta: float = 0.0
    m: int = 0
    n: int = 0
    k: int = 0
    batch: int | None = None
    allowed_out_dtypes: tuple[Any, ...] = ()
    x_scale_dtypes: tuple[Any, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict)

    def provenance_inputs(self) -> tuple[Any, ...]:
        return tuple(t for t in (self.x, self.x_scale) if t is not None)

    @property
    def shuffle_layout(self) -> tuple[int, int] | None:
        """``shuffle_weight``'s ``layout`` argument for a preshuffled weight, else None."""
        if not self.w_layout.startswith("preshuffle_"):
            return None
        rows, _, lanes = self.w_layout[len("preshuffle_") :].partition("x")
        return int(rows), int(lanes)


@dataclass
class TransformView:
    """A layout transform that must change its output (``partial_transpose``, ``shuffle_weight``)."""

    kind: str  # "partial_transpose" | "shuffle_weight"
    input: Any
    out: Any
    valid_rows: Any = None
    layout: tuple[int, int] | None = None

    def provenance_inputs(self) -> tuple[Any, ...]:
        return ()


@dataclass
class RoutingView:
    """MoE routing: top-k weights must carry ``routed_scaling_factor`` (and renormalization).

    ``expected_routing``, when set, recomputes the routing the caller asked for
    instead of one derived from the logits (a ``custom_routing_function`` it
    passed, called as the library calls it) and returns ``(topk_weights,
    topk_ids)``: the call must have returned exactly those.  Checks call it on
    sampled calls only.
    """

    gating: Any
    bias: Any
    topk_weights: Any
    topk_ids: Any
    score: str  # "softmax" | "sigmoid" | "sqrtsoftplus"
    renormalize: bool
    routed_scaling_factor: float
    expected_routing: Callable[[], tuple[Any, Any]] | None = None

    def provenance_inputs(self) -> tuple[Any, ...]:
        return ()


@dataclass
class MoeView:
    """A fused MoE: per token, the sum over its top-k experts of weight * expert(x)."""

    hidden: Any
    w1: Any  # (E, 2*inter, dim) gate and up
    w2: Any  # (E, dim, inter)
    topk_weight: Any
    topk_ids: Any
    out: Any
    quant: str  # "none" | "per_token" | "per_1x128"
    w1_scale: Any = None
    w2_scale: Any = None
    activation: str = "silu"  # "silu" (silu(gate) * up) or "swiglu" (see ``swiglu_alpha``)
    fp8_read_as: Any = None
    expert_mask: Any = None
    shuffled: bool = False  # weights 16x16-preshuffled (AITER reads ``is_shuffled`` on w1/w2)
    #: gpt-oss Swiglu: ``clamp(gate, max=limit) * sigmoid(alpha * gate) * (clamp(up, -limit, limit) + 1)``.
    swiglu_alpha: float = 1.702
    swiglu_limit: float = 7.0

    def provenance_inputs(self) -> tuple[Any, ...]:
        return ()
