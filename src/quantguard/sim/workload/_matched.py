"""The precision-matched reference: the deployment's quantized operands, multiplied in fp32.

The BF16 reference (``_reference.py``) answers "how much does quantization
cost"; this one answers "did the kernels compute what their operands say".
Every linear uses the checkpoint's own quantized weights (the same FP8/MXFP4
values and scales the deployment loads) and quantizes its activations with the
recipe the ATOM layer declares for its scheme (per-token, per-1x128 group or
per-tensor FP8 with fp32 ``amax / max`` scales; MXFP4 with e8m0 scales rounded
up, as AITER's HIP quant declares), then multiplies the dequantized operands
in fp32 and rounds where the deployment rounds (BF16 GEMM outputs, the BF16
SwiGLU result). MLA uses the absorbed FP8 weights re-quantized at load time
per batched tensor, and the MoE the fp32 DeepSeek routing with per-1x128 FP8
experts. So on a clean deployment only accumulation order differs, and a
kernel that reads a scale wrongly, drops it, or returns garbage shows at full
size.

Quantization is not called from the simulated AITER: a producer fault (wrong
layout, wrong rounding mode, a no-op transpose) must not reach the reference.
FP8 activations go through quantguard's own
:func:`~quantguard.numerics.dequant.quantize_dequantize`; MXFP4 is written out
here, sharing only the element codecs (FP4 values, e8m0 exponents) with the
checkpoint writer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from quantguard.contracts.aiter_paths import SCHEMES
from quantguard.hardware import fp8_name
from quantguard.numerics.dequant import quantize_dequantize
from quantguard.numerics.scales import AMAX_FLOOR
from quantguard.sim._kernels import e8m0, fp4
from quantguard.sim.workload._checkpoint import checkpoint, master_weights, to_device
from quantguard.sim.workload._config import ModelConfig, resolve_schemes
from quantguard.sim.workload._model import Decoder
from quantguard.sim.workload._reference import DenseMLACore, route

__all__ = ["arch_fp8", "build_matched_decoder"]


def arch_fp8(arch: str) -> torch.dtype:
    """The FP8 flavour the arch's kernels read: e4m3fnuz on gfx942 (MI300X), OCP e4m3fn on gfx950."""
    return getattr(torch, fp8_name(arch))


def mxfp4_activation(x: torch.Tensor) -> torch.Tensor:
    """``x`` quantized to MXFP4 (32-element groups, e8m0 scales rounded up) and dequantized in fp32."""
    rows = x.float().reshape(-1, x.shape[-1]).unflatten(-1, (-1, 32))
    scale = e8m0.decode(e8m0.encode(rows.abs().amax(-1), e8m0.ROUND_UP, "fp4")).unsqueeze(-1)
    values = fp4.decode(fp4.encode((rows / scale).flatten(-2))).unflatten(-1, (-1, 32))
    return (values * scale).flatten(-2).view(x.shape)


def _dequantized_weight(values: torch.Tensor, scale: torch.Tensor | None, scheme: str) -> torch.Tensor:
    """The checkpoint weight as the kernel multiplies it, in fp32 (FP8 bytes read as e4m3fn, as written)."""
    if scale is None:
        return values.float()
    if scheme == "mxfp4":
        codes = fp4.decode(fp4.unpack(values.view(torch.uint8)))
        return (codes.unflatten(-1, (-1, 32)) * e8m0.decode(scale.view(torch.uint8)).unsqueeze(-1)).flatten(-2)
    if scheme == "fp8_blockscale":  # 128 x 128 blocks
        return values.float() * scale.repeat_interleave(128, -2).repeat_interleave(128, -1)
    return values.float() * scale  # per output channel (N, 1) or per tensor (1,)


class MatchedLinear(nn.Module):
    """``dequant(quant(x)) @ dequant(W)^T`` in fp32, rounded to BF16 as the GEMMs' output."""

    def __init__(self, weight: torch.Tensor, scheme: str, fp8: torch.dtype):
        super().__init__()
        self.scheme, self.fp8 = scheme, fp8
        self.register_buffer("weight", weight, persistent=False)

    def operand(self, x: torch.Tensor) -> torch.Tensor:
        """The activation as the kernel multiplies it."""
        if self.scheme == "bf16":
            return x.float()
        if self.scheme == "mxfp4":
            return mxfp4_activation(x)
        return quantize_dequantize(x, SCHEMES[self.scheme].activation_group, self.fp8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.operand(x) @ self.weight.T).to(torch.bfloat16)


def _per_tensor_fp8(weight: torch.Tensor, fp8: torch.dtype) -> torch.Tensor:
    """ATOM's load-time ``dynamic_per_batched_tensor_quant``, dequantized: one scale ``max / amax``."""
    limit = torch.finfo(fp8).max
    scale = limit / weight.float().abs().amax().clamp(min=AMAX_FLOOR)
    return (weight.float() * scale).clamp(-limit, limit).to(fp8).float() * scale.reciprocal()


class MatchedMLACore(nn.Module):
    """MLA over the latent cache through the absorbed FP8 weights (ATOM's Triton path and every decode).

    ``absorbed_prefill=False`` models a CK prefill instead: K/V decompressed by
    the dense BF16 ``kv_b_proj`` (M > 1 only).
    """

    def __init__(self, config: ModelConfig, kv_b_proj: MatchedLinear, fp8: torch.dtype, absorbed_prefill: bool):
        super().__init__()
        self.num_heads, self.head_dim, self.fp8 = config.num_heads, config.head_dim, fp8
        self.absorbed_prefill = absorbed_prefill
        self.kv_b_proj = kv_b_proj
        self.decompressed = DenseMLACore(config, kv_b_proj)
        weight = kv_b_proj.weight.view(config.num_heads, 2 * config.head_dim, config.kv_lora_rank)
        w_uk, w_uv = weight.split(config.head_dim, dim=1)
        self.register_buffer("w_k", _per_tensor_fp8(w_uk.transpose(1, 2), fp8), persistent=False)  # (H, r, d)
        self.register_buffer("w_v", _per_tensor_fp8(w_uv, fp8), persistent=False)  # (H, d, r)

    def _bmm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(T, H, K) x (H, N, K) -> (T, H, N): activations FP8 per (token, head, 128), BF16 out."""
        return torch.einsum("thk,hnk->thn", quantize_dequantize(x, 128, self.fp8), weight).to(torch.bfloat16)

    def forward(self, q: torch.Tensor, latents: torch.Tensor, start: int) -> torch.Tensor:
        tokens = q.shape[0]
        if tokens > 1 and not self.absorbed_prefill:
            return self.decompressed(q, latents, start)
        q_latent = self._bmm(q, self.w_k)
        scores = torch.einsum("thr,sr->hts", q_latent.float(), latents.float()) / math.sqrt(self.head_dim)
        positions = torch.arange(start, start + tokens, device=q.device).unsqueeze(1)
        mask = torch.arange(latents.shape[0], device=q.device).unsqueeze(0) > positions
        probs = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        out_latent = torch.einsum("hts,sr->thr", probs, latents.float()).to(torch.bfloat16)
        return self._bmm(out_latent, self.w_v).reshape(tokens, -1)


class MatchedExperts(nn.Module):
    """fp32 routing, then per (token, expert) pair: quantized activations, the SwiGLU in fp32 rounded
    once to BF16, and the weighted combine in fp32.

    The expert GEMM outputs are BF16 in ATOM's Triton MoE (one GEMM call per expert); AITER's CK
    ``fused_moe`` (``ck_moe=True``) keeps both stages in fp32.
    """

    def __init__(
        self,
        config: ModelConfig,
        tensors: Mapping[str, torch.Tensor],
        name: str,
        scheme: str,
        fp8: torch.dtype,
        ck_moe: bool = False,
    ):
        super().__init__()
        self.config, self.scheme, self.fp8, self.ck_moe = config, scheme, fp8, ck_moe
        for part in ("w13", "w2"):
            key = f"{name}.{part}_weight"
            weight = _dequantized_weight(tensors[key], tensors.get(key + "_scale"), scheme)
            self.register_buffer(f"{part}_weight", weight, persistent=False)
        self.register_buffer(
            "e_score_correction_bias", tensors[f"{name}.e_score_correction_bias"].float(), persistent=False
        )

    def route(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return route(self.config, self.e_score_correction_bias, logits)

    def _operand(self, x: torch.Tensor) -> torch.Tensor:
        if self.scheme == "bf16":
            return x.float()
        return quantize_dequantize(x, SCHEMES[self.scheme].activation_group, self.fp8)

    def combine(self, x: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The expert GEMMs for a given routing: ``sum_k weights[t, k] * expert_{ids[t, k]}(x[t])``."""
        tokens = torch.arange(x.shape[0], device=x.device).repeat_interleave(ids.shape[1])
        experts, pair_weights = ids.reshape(-1).long(), weights.reshape(-1).float()
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        operand = self._operand(x)
        rounded = (lambda y: y) if self.ck_moe else (lambda y: y.to(torch.bfloat16).float())
        for expert in experts.unique().tolist():
            picked = experts == expert
            gate, up = rounded(operand[tokens[picked]] @ self.w13_weight[expert].T).chunk(2, -1)
            hidden = (nn.functional.silu(gate) * up).to(torch.bfloat16)
            down = rounded(self._operand(hidden) @ self.w2_weight[expert].T)
            out.index_add_(0, tokens[picked], down * pair_weights[picked, None])
        return out.to(torch.bfloat16)

    def forward(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return self.combine(x, *self.route(logits))


class _MatchedParts:
    def __init__(self, config, tensors, schemes, fp8, absorbed_prefill, ck_moe):
        self.config, self.tensors, self.schemes, self.fp8 = config, tensors, schemes, fp8
        self.absorbed_prefill, self.ck_moe = absorbed_prefill, ck_moe

    def linear(self, name: str, in_features: int, out_features: int) -> nn.Module:
        family = name.split(".", 2)[2] if name.startswith("layers.") else name
        values, scale = self.tensors[name + ".weight"], self.tensors.get(name + ".weight_scale")
        if family == "attn.core.kv_b_proj":  # FP8 blocks on disk, dense BF16 after loading
            return MatchedLinear(_dequantized_weight(values, scale, "fp8_blockscale").bfloat16().float(), "bf16", None)
        scheme = self.schemes.get(family, "bf16")
        return MatchedLinear(_dequantized_weight(values, scale, scheme), scheme, self.fp8)

    def experts(self, name: str) -> nn.Module:
        return MatchedExperts(self.config, self.tensors, name, self.schemes["mlp.experts"], self.fp8, self.ck_moe)

    def mla_core(self, name: str, kv_b_proj: nn.Module) -> nn.Module:
        return MatchedMLACore(self.config, kv_b_proj, self.fp8, self.absorbed_prefill)


def build_matched_decoder(
    arch: str,
    schemes: Mapping[str, str] | None,
    config: ModelConfig,
    absorbed_prefill: bool = True,
    ck_moe: bool = False,
) -> Decoder:
    """The precision-matched model of ``arch``'s deployment, on the current default device.

    Built from the same quantized checkpoint as :func:`~quantguard.sim.workload.build_model`
    (``schemes`` resolved the same way); embeddings and norms are copied from it.
    """
    resolved = resolve_schemes(arch, schemes)
    device = torch.get_default_device()
    tensors = {name: to_device(t, device) for name, t in checkpoint(master_weights(config), resolved).items()}
    model = Decoder(config, _MatchedParts(config, tensors, resolved, arch_fp8(arch), absorbed_prefill, ck_moe))
    for name, param in model.named_parameters():
        param.data.copy_(tensors[name])
    return model.eval()
