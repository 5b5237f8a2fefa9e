"""A model's quantized linear layers, as ATOM would build and dispatch them: what ``--model`` runs.

A model is a Hugging Face ``config.json`` (a file, or a checkpoint directory
holding one and maybe ``*.safetensors``) or ``module:function`` returning a
config dict, a torch module, or ``(module, quantization_config)``. Three steps:

* the ``quantization_config`` is parsed the way ATOM parses it
  (``atom/quant_spec.py``: the Quark parser for ``quant_method: quark``, the
  generic parser for everything else, exclusions as ``atom/config.py``
  matches them), giving each layer an AITER ``QuantType`` and quantized dtype;
  json only, so transformers is not needed;
* the layer list follows the model family's Hugging Face module names
  (DeepSeek-V2/V3 MLA, Llama-style attention and MLPs); a layer's routed MoE
  experts are one entry with their routing (:class:`MoeShape`), which
  :mod:`quantguard.validate.quant.moe` runs through AITER's ``fused_moe``;
* :func:`atom_chain` picks the chain ``atom/model_ops/linear.py`` dispatches a
  layer to, from ATOM's environment variables and the build.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from quantguard.contracts import aiter_paths
from quantguard.validate._usage import UsageError
from quantguard.validate.quant.chains import CHAINS, Chain
from quantguard.validate.quant.moe import MoeShape

__all__ = [
    "ATOM_ENV",
    "AtomEnv",
    "Layer",
    "LayerQuant",
    "ModelSpec",
    "SUPPORTED_MODEL_TYPES",
    "atom_chain",
    "atom_env_from",
    "chain_named",
    "load_model",
    "parse_quant_config",
    "scheme_of",
]

# -- ATOM's quantization_config parsing (atom/quant_spec.py), ported -----------------------------

#: ``aiter.utility.dtypes.d_dtypes`` keys (the AiterDtype enum): what a dtype string can resolve to.
_D_DTYPES = ("fp8", "fp8_e8m0", "fp16", "bf16", "fp32", "i4x2", "fp4x2", "u32", "i32", "i16", "i8")
_QSCHEME = {"per_channel": "per_Token", "per_tensor": "per_Tensor", "per_group": "per_1x32", "per_block": "per_1x128"}
_GENERIC_DTYPES = {
    r"fp8|float8": "fp8",
    r"fp4|float4|mxfp4": "fp4x2",
    r"int8|w8a8": "int8",
    r"int4|w4a16|gptq|awq": "int4x2",
}
_GENERIC_QTYPES = {
    r"block|per_block|blockwise|1x128": "per_1x128",
    r"per_channel|channel|per_token|token": "per_Token",
    r"per_tensor|tensor": "per_Tensor",
    r"per_group|group": "per_1x32",
}


@dataclass(frozen=True)
class LayerQuant:
    """ATOM's ``LayerQuantConfig``: an ``aiter.QuantType`` member name and a d_dtypes key (``bf16``: none)."""

    quant_type: str = "No"
    quant_dtype: str = "bf16"
    quant_method: str | None = None

    @property
    def label(self) -> str:
        return f"QuantType.{self.quant_type}, {self.quant_dtype}"


@dataclass
class ParsedQuant:
    global_spec: LayerQuant
    patterns: list[tuple[str, LayerQuant]] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    quant_method: str = ""

    def for_layer(self, name: str) -> LayerQuant:
        """``QuantizationConfig.get_layer_quant_config``: exclude list, then patterns, then the global spec."""
        if any(_matches_exclude(name, item) for item in self.exclude):
            return LayerQuant()
        for pattern, spec in self.patterns:
            if ("*" not in pattern and name in pattern) or ("*" in pattern and fnmatch.fnmatch(name, pattern)):
                return spec
        return self.global_spec


def _matches_exclude(name: str, item: str) -> bool:
    if item.startswith("re:"):
        return re.search(item[3:], name) is not None
    if "*" in item or "?" in item:
        return fnmatch.fnmatch(name, item) or fnmatch.fnmatch(name, item + ".*")
    return name == item or name.startswith(item + ".")


def _parse_dtype(text: str | None) -> str:
    if text is None:
        return "bf16"
    key = re.sub(r"_e\d+m\d+.*", "", text)
    for candidate in (key, key + "x2", key + "x4"):
        if candidate in _D_DTYPES:
            return candidate
    return "bf16"


def _quark(config: Mapping[str, Any]) -> ParsedQuant:
    def spec(layer: Mapping[str, Any]) -> LayerQuant:
        weight = layer.get("weight") or {}
        return LayerQuant(_QSCHEME.get(weight.get("qscheme"), "No"), _parse_dtype(weight.get("dtype")), "quark")

    global_dict = config.get("global_quant_config") or {}
    patterns = [(pattern, spec(item)) for pattern, item in (config.get("layer_quant_config") or {}).items()]
    return ParsedQuant(spec(global_dict) if global_dict else LayerQuant(), patterns, list(config.get("exclude") or []))


def _group_weights(config: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """The ``weights`` dicts of a compressed-tensors ``config_groups``."""
    groups = config.get("config_groups")
    for group in groups.values() if isinstance(groups, dict) else ():
        weights = group.get("weights") if isinstance(group, dict) else None
        if isinstance(weights, dict):
            yield weights


def _generic_dtype(config: Mapping[str, Any], text: str) -> str:
    for key in ("weight_dtype", "activation_dtype", "dtype"):
        value = config.get(key)
        if value and isinstance(value, str) and _parse_dtype(value) != "bf16":
            return _parse_dtype(value)
    for weights in _group_weights(config):
        found = {("float", 8): "fp8", ("float", 4): "fp4x2", ("int", 8): "i8"}.get(
            (weights.get("type", ""), weights.get("num_bits"))
        )
        if found:
            return found
    for pattern, key in _GENERIC_DTYPES.items():
        if re.search(pattern, text):
            return key if key in _D_DTYPES else "bf16"  # "int8"/"int4x2" are no d_dtypes key: bf16, as in ATOM
    return "bf16"


def _generic_qtype(config: Mapping[str, Any], text: str) -> str:
    if "weight_block_size" in config:
        block = config.get("weight_block_size")
        if block is None:
            return "per_Tensor"
        if isinstance(block, (list, tuple)) and len(block) >= 2:
            try:
                rows, cols = int(block[0]), int(block[1])
            except (TypeError, ValueError):
                rows = cols = -1
            return "per_1x32" if (rows, cols) == (1, 32) else "per_1x128"
    for key in ("quant_type", "quantization_type", "scheme"):
        value = config.get(key)
        if value and isinstance(value, str):
            for pattern, qtype in _GENERIC_QTYPES.items():
                if re.search(pattern, value.lower()):
                    return qtype
    for weights in _group_weights(config):
        strategy = weights.get("strategy", "")
        mapped = (_QSCHEME.get(strategy) or _QSCHEME.get(f"per_{strategy}")) if strategy else None
        if mapped:
            return mapped
    for pattern, qtype in _GENERIC_QTYPES.items():
        if re.search(pattern, text):
            return qtype
    method = (config.get("quant_method") or "").lower()
    if method in ("fp8", "float8") or re.search(r"fp8|float8", text):
        return "per_Token" if (config.get("activation_scheme") or "").lower() == "dynamic" else "per_Tensor"
    return "No"


def _generic(config: Mapping[str, Any]) -> ParsedQuant:
    method = config.get("quant_method", "")
    text = str(dict(config)).lower()
    dtype, qtype = _generic_dtype(config, text), _generic_qtype(config, text)
    if method == "fbgemm_fp8":
        qtype = "per_Tensor"
    if dtype == "fp4x2" and qtype not in ("per_1x32", "per_1x128"):
        qtype = "per_1x32"
    block = config.get("weight_block_size")
    if isinstance(block, (list, tuple)) and len(block) == 2 and block[0] == 1:
        qtype = "per_1x32"
    exclude = (
        config.get("ignore")
        or config.get("modules_to_not_convert")
        or config.get("exclude")
        or config.get("ignored_layers")
    )
    return ParsedQuant(LayerQuant(qtype, dtype, method or None), [], list(exclude or []))


def parse_quant_config(config: Mapping[str, Any] | None) -> ParsedQuant:
    """ATOM's ``QuantizationConfig``: no ``quantization_config`` is an unquantized model."""
    if not config:
        return ParsedQuant(LayerQuant())
    method = config.get("quant_method", "") or ""
    parsed = _quark(config) if method == "quark" else _generic(config)
    parsed.quant_method = method
    return parsed


# -- QuantType -> scheme -> the chain ATOM dispatches to -------------------------------------------

_SCHEME_OF: dict[tuple[str, str], str] = {}
for _name, _scheme in aiter_paths.SCHEMES.items():
    if _scheme.quant_type is not None and _scheme.quant_dtype is not None:
        _SCHEME_OF.setdefault((_scheme.quant_type, _scheme.quant_dtype), _name)  # mxfp4 (HIP producer) before fp4


def scheme_of(spec: LayerQuant) -> str | None:
    """The validate-quant scheme of an ATOM layer spec; ``None`` when no AITER linear path has it."""
    return _SCHEME_OF.get((spec.quant_type, spec.quant_dtype))


def accepted_quant_types() -> str:
    return ", ".join(f"QuantType.{qtype} x {dtype} ({name})" for (qtype, dtype), name in _SCHEME_OF.items())


#: ATOM's switches that change a linear layer's kernels (``atom/utils/envs.py``), with ATOM's defaults.
ATOM_ENV: dict[str, bool] = {
    "ATOM_USE_TRITON_GEMM": False,
    "ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE": True,
    "ATOM_USE_FP4_NON_SHUFFLE_TRITON_GEMM": False,
}


@dataclass(frozen=True)
class AtomEnv:
    """The values of :data:`ATOM_ENV` a deployment runs with; ``ck_free``: a CK-free build (Triton forced)."""

    values: tuple[tuple[str, bool], ...]
    ck_free: bool = False

    def __getitem__(self, key: str) -> bool:
        return dict(self.values)[key]

    def with_values(self, **changes: bool) -> AtomEnv:
        return AtomEnv(tuple({**dict(self.values), **changes}.items()), self.ck_free)

    def describe(self) -> str:
        return ", ".join(f"{key}={int(value)}" for key, value in self.values)


def atom_env_from(environ: Mapping[str, str], ck_free: bool) -> AtomEnv:
    """ATOM's switches as ``environ`` sets them ("1" is on, as ``atom/utils/envs.py`` reads them)."""
    values = {key: environ.get(key, "1" if default else "0") == "1" for key, default in ATOM_ENV.items()}
    return AtomEnv(tuple(values.items()), ck_free)


def chain_named(name: str) -> Chain:
    return next(chain for chain in CHAINS if chain.name == name)


def atom_chain(scheme: str, env: AtomEnv) -> Chain:
    """The chain ``LinearBase.forward`` reaches for ``scheme`` (``atom/model_ops/linear.py``).

    A CK-free build forces Triton (ATOM's CK-free branch, ``ATOM_CK_FREE=1``),
    and AITER's CK entry points route to their Triton fallbacks there. ASM rows
    are reached only through AITER's tuned configs: ``--backends`` runs them.
    """
    triton = env["ATOM_USE_TRITON_GEMM"] or env.ck_free
    preshuffle = env["ATOM_FP8_BLOCKSCALE_WEIGHT_PRESHUFFLE"]
    if scheme == "fp8_blockscale":
        if env.ck_free:
            name = "fp8_blockscale/triton (preshuffle)" if preshuffle else "fp8_blockscale/triton"
        else:
            name = (
                "fp8_blockscale/ck (bpreshuffle)"
                if preshuffle
                else ("fp8_blockscale/triton" if triton else "fp8_blockscale/ck")
            )
    elif scheme == "fp8_per_token":
        name = "fp8_per_token/triton (hip quant)" if triton else "fp8_per_token/ck (bpreshuffle)"
    elif scheme == "fp8_per_tensor":
        name = "fp8_per_tensor/triton" if triton else "fp8_per_tensor/hipblaslt"
    elif scheme == "int8":
        name = "int8/triton" if env.ck_free else "int8/ck"
    elif scheme in ("mxfp4", "fp4"):
        if env["ATOM_USE_FP4_NON_SHUFFLE_TRITON_GEMM"]:
            name = "mxfp4/triton"
        else:
            name = "mxfp4/triton (preshuffle)" if triton else "mxfp4/asm"
    else:
        name = "int4/torch (W4A16)"
    return chain_named(name)


# -- layers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One linear layer: its name, (out_features, in_features), ATOM's spec, and why it is not run (if so).

    Routed experts are one layer with ``moe`` set (``n`` 0, ``k`` the expert intermediate size).
    """

    name: str
    n: int
    k: int
    quant: LayerQuant
    not_run: str = ""
    moe: MoeShape | None = None

    @property
    def scheme(self) -> str | None:
        return scheme_of(self.quant)


def _deepseek(config: Mapping[str, Any], layer: int) -> Iterable[tuple[str, int, int | MoeShape]]:
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    nope, rope, v_dim = config["qk_nope_head_dim"], config["qk_rope_head_dim"], config["v_head_dim"]
    q_lora, kv_lora = config.get("q_lora_rank"), config["kv_lora_rank"]
    prefix = f"model.layers.{layer}"
    if q_lora:
        yield f"{prefix}.self_attn.q_a_proj", q_lora, hidden
        yield f"{prefix}.self_attn.q_b_proj", heads * (nope + rope), q_lora
    else:
        yield f"{prefix}.self_attn.q_proj", heads * (nope + rope), hidden
    yield f"{prefix}.self_attn.kv_a_proj_with_mqa", kv_lora + rope, hidden
    yield f"{prefix}.self_attn.kv_b_proj", heads * (nope + v_dim), kv_lora
    yield f"{prefix}.self_attn.o_proj", hidden, heads * v_dim
    experts = config.get("n_routed_experts")
    if experts and layer >= config.get("first_k_dense_replace", 0) and layer % config.get("moe_layer_freq", 1) == 0:
        shared = config.get("n_shared_experts") or 0
        if shared:
            width = config["moe_intermediate_size"] * shared
            yield from _mlp(f"{prefix}.mlp.shared_experts", hidden, width)
        yield f"{prefix}.mlp.experts", 0, _deepseek_moe(config, experts)
    else:
        yield from _mlp(f"{prefix}.mlp", hidden, config["intermediate_size"])


def _deepseek_moe(config: Mapping[str, Any], experts: int) -> MoeShape:
    """DeepSeek's gate as ATOM builds it (grouped top-k, ``noaux_tc``: a correction bias); missing keys take
    Hugging Face's DeepseekV3Config defaults (V2's for deepseek_v2)."""
    v3 = config.get("model_type") != "deepseek_v2"
    method = config.get("topk_method", "noaux_tc" if v3 else "greedy")
    grouped = method in ("noaux_tc", "group_limited_greedy")
    return MoeShape(
        experts,
        config["hidden_size"],
        config["moe_intermediate_size"],
        int(config.get("num_experts_per_tok") or (8 if v3 else 6)),
        int(config.get("n_group") or (8 if v3 else 1)) if grouped else 0,
        int(config.get("topk_group") or (4 if v3 else 1)) if grouped else 0,
        float(config.get("routed_scaling_factor") or (2.5 if v3 else 1.0)),
        config.get("scoring_func") or ("sigmoid" if v3 else "softmax"),
        method == "noaux_tc",
        bool(config.get("norm_topk_prob", v3)),
    )


def _mlp(prefix: str, hidden: int, width: int) -> Iterable[tuple[str, int, int]]:
    yield f"{prefix}.gate_proj", width, hidden
    yield f"{prefix}.up_proj", width, hidden
    yield f"{prefix}.down_proj", hidden, width


def _llama(config: Mapping[str, Any], layer: int) -> Iterable[tuple[str, int, int | MoeShape]]:
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    kv_heads = config.get("num_key_value_heads") or heads
    prefix = f"model.layers.{layer}"
    yield f"{prefix}.self_attn.q_proj", heads * head_dim, hidden
    yield f"{prefix}.self_attn.k_proj", kv_heads * head_dim, hidden
    yield f"{prefix}.self_attn.v_proj", kv_heads * head_dim, hidden
    yield f"{prefix}.self_attn.o_proj", hidden, heads * head_dim
    experts = config.get("num_local_experts") or config.get("num_experts")
    if experts:
        width = config.get("moe_intermediate_size") or config["intermediate_size"]
        top_k = int(config.get("num_experts_per_tok") or 2)
        renormalize = bool(config.get("norm_topk_prob", config.get("model_type") == "mixtral"))
        yield f"{prefix}.mlp.experts", 0, MoeShape(experts, hidden, width, top_k, renormalize=renormalize)
    else:
        yield from _mlp(f"{prefix}.mlp", hidden, config["intermediate_size"])


_FAMILIES: dict[str, Callable[[Mapping[str, Any], int], Iterable[tuple[str, int, int | MoeShape]]]] = {
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "kimi_k2": _deepseek,
    "llama": _llama,
    "mistral": _llama,
    "qwen2": _llama,
    "qwen3": _llama,
    "qwen2_moe": _llama,
    "qwen3_moe": _llama,
    "mixtral": _llama,
}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(_FAMILIES)


def _layers(config: Mapping[str, Any], parsed: ParsedQuant) -> list[Layer]:
    model_type = config.get("model_type")
    family = _FAMILIES.get(model_type or "")
    if family is None:
        raise UsageError(
            f"--model: model_type {model_type!r} has no layer map; accepted: {', '.join(SUPPORTED_MODEL_TYPES)} "
            "(or pass module:function returning a torch module)"
        )
    layers = []
    try:
        for index in range(config["num_hidden_layers"]):
            for name, n, k in family(config, index):
                if isinstance(k, MoeShape):  # routed experts: ATOM's FusedMoE
                    layers.append(Layer(name, 0, k.inter, parsed.for_layer(name), moe=k))
                else:
                    layers.append(Layer(name, n, k, parsed.for_layer(name)))
    except KeyError as exc:
        raise UsageError(f"--model: config.json of a {model_type} model lacks {exc.args[0]!r}") from None
    return layers


# -- loading --------------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    """A model's layers and where their weights come from (``weights``: name -> fp32 (N, K) loader)."""

    source: str
    description: str
    quant_method: str
    layers: list[Layer]
    weights: dict[str, Callable[[], torch.Tensor]] = field(default_factory=dict)
    weight_source: str = "random (seeded) weights of the declared shapes"


_ACCEPTED = (
    "a config.json, a checkpoint directory with config.json (and *.safetensors), "
    "or module:function returning a config dict, a torch module or (module, quantization_config)"
)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--model {path}: cannot read JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--model {path}: expected a JSON object (a Hugging Face config.json)")
    return data


def _check_quantized(source: str, parsed: ParsedQuant, layers: list[Layer]) -> None:
    if any(layer.scheme for layer in layers):
        return
    if not parsed.quant_method:
        raise UsageError(f"--model {source}: no quantization_config; validate quant runs quantized layers only")
    spec = parsed.global_spec
    raise UsageError(
        f"--model {source}: quant_method {parsed.quant_method!r} maps to {spec.label} in ATOM, which no AITER "
        f"linear path runs; accepted: {accepted_quant_types()} — e.g. quant_method fp8 with weight_block_size "
        "[128,128] or activation_scheme dynamic/static, quark (per_block/per_channel/per_tensor/per_group), mxfp4"
    )


def _from_config(source: str, config: Mapping[str, Any]) -> ModelSpec:
    text = config.get("text_config")
    if config.get("model_type") not in _FAMILIES and isinstance(text, dict):
        # multimodal wrappers: ATOM propagates the root quantization_config into the text config
        config = {"quantization_config": config.get("quantization_config"), **text}
    parsed = parse_quant_config(config.get("quantization_config"))
    layers = _layers(config, parsed)
    _check_quantized(source, parsed, layers)
    return ModelSpec(source, f"{config.get('model_type')} ({source})", parsed.quant_method, layers)


def _safetensors_weights(directory: Path, layers: list[Layer]) -> dict[str, Callable[[], torch.Tensor]]:
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return {}
    from safetensors import safe_open

    where: dict[str, Path] = {}
    for file in files:
        with safe_open(str(file), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                where[key] = file
    loaders = {}
    for layer in layers:
        if f"{layer.name}.weight" in where:
            loaders[layer.name] = _loader(where, layer.name)
    return loaders


def _loader(where: Mapping[str, Path], name: str) -> Callable[[], torch.Tensor]:
    def load() -> torch.Tensor:
        from safetensors import safe_open

        def tensor(key: str) -> torch.Tensor | None:
            if key not in where:
                return None
            with safe_open(str(where[key]), "pt") as handle:
                return handle.get_tensor(key)

        weight = tensor(f"{name}.weight")
        assert weight is not None
        if weight.dtype in (torch.float16, torch.bfloat16, torch.float32):
            return weight.float()
        scale = tensor(f"{name}.weight_scale_inv")
        if scale is None:
            scale = tensor(f"{name}.weight_scale")
        if weight.element_size() == 1 and weight.is_floating_point() and scale is not None:
            values = weight.float()
            if scale.dim() == 2 and scale.shape != (weight.shape[0], 1):  # 128x128 blocks
                from quantguard.numerics.dequant import expand_blocks_2d

                return values * expand_blocks_2d(scale.float(), 128, 128, *weight.shape)
            return values * scale.float().reshape(-1, 1) if scale.numel() > 1 else values * scale.float()
        raise ValueError(f"{name}.weight is {weight.dtype}: only 16/32-bit and scaled FP8 weights are read")

    return load


def _from_module(source: str, module: Any, quant: Mapping[str, Any] | None) -> ModelSpec:
    if quant is None:
        config = getattr(module, "config", None)
        quant = getattr(config, "quantization_config", None) if config is not None else None
        if quant is None and isinstance(config, Mapping):
            quant = config.get("quantization_config")
        quant = quant if quant is not None else getattr(module, "quantization_config", None)
    if quant is not None and not isinstance(quant, Mapping):
        quant = quant.to_dict() if hasattr(quant, "to_dict") else vars(quant)
    parsed = parse_quant_config(quant)
    layers, weights = [], {}
    for name, child in module.named_modules():
        if isinstance(child, torch.nn.Linear):
            layers.append(Layer(name, child.out_features, child.in_features, parsed.for_layer(name)))
            weights[name] = lambda weight=child.weight: weight.detach().float().cpu()
    if not layers:
        raise UsageError(f"--model {source}: the module has no torch.nn.Linear layers")
    _check_quantized(source, parsed, layers)
    spec = ModelSpec(source, f"{type(module).__name__} ({source})", parsed.quant_method, layers, weights)
    spec.weight_source = "the module's own weights"
    return spec


def load_model(source: str) -> ModelSpec:
    """The layers of ``source`` (see the module docstring); :class:`UsageError` naming what is accepted."""
    path = Path(source)
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise UsageError(f"--model {source}: the directory has no config.json; accepted: {_ACCEPTED}")
        spec = _from_config(source, _read_json(config_path))
        try:
            spec.weights = _safetensors_weights(path, spec.layers)
        except ImportError:
            spec.weights = {}
        if spec.weights:
            spec.weight_source = f"{len(spec.weights)} layers from *.safetensors in {source}, the rest random"
        return spec
    if path.is_file():
        return _from_config(source, _read_json(path))
    module_name, colon, function_name = source.partition(":")
    if not colon or os.sep in module_name or source.endswith(".json"):
        raise UsageError(f"--model {source}: no such file or directory; accepted: {_ACCEPTED}")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--model {source}: cannot import {function_name} from {module_name}: {exc}") from None
    result = factory()
    if isinstance(result, Mapping):
        return _from_config(source, result)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module):
        return _from_module(source, result[0], result[1])
    if isinstance(result, torch.nn.Module):
        return _from_module(source, result, None)
    raise UsageError(f"--model {source}: {function_name}() returned {type(result).__name__}; accepted: {_ACCEPTED}")
