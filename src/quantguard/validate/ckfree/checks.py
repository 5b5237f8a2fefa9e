"""The CK-free checklist items decided by calling AITER and ATOM directly (``validate ckfree``).

Each item is a named verdict (PASS, FAIL, SKIP or ERROR) with an evidence
line and the measured data behind it:

* ``ck_free_detected``: AITER's ``CK_3RDPARTY_DIR`` is not a directory, and
  ATOM is told (``ATOM_CK_FREE=1``).
* ``triton_selected.<path>``: every ``use_triton*`` selector of ATOM's
  linear, attention_mla and moe modules returns True.
* ``shuffle_scale_column_major``: the quant entry points whose CK-free
  implementation is a Triton fallback, asked for transposed scales, write
  ``(G, M)`` bytes; the scales are recomputed from the input (group amax over
  the FP8 maximum) and looked up in each layout, so the evidence names the
  layout that was written.
* ``partial_transpose_writes``: ``partial_transpose`` (and its fallback)
  write ``input[:num_rows]`` transposed and leave the rest of ``out`` alone.

Probes run with quantguard disabled: they judge the kernels, not the guard.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from quantguard.contracts.atom_selection import ATOM_PATHS, atom_selectors, moe_selections
from quantguard.hardware import detect_platform
from quantguard.numerics.formats import element_format
from quantguard.numerics.layouts import describe_layout
from quantguard.numerics.written_layout import written_layout

__all__ = [
    "ERROR",
    "FAIL",
    "PASS",
    "SKIP",
    "Item",
    "decide",
    "partial_transpose_item",
    "platform_item",
    "selector_items",
    "shuffle_scale_item",
]

PASS, FAIL, SKIP, ERROR = "PASS", "FAIL", "SKIP", "ERROR"

_GROUP = 128
_PROBE_ROWS = 48  # several rows and groups, so row-major and column-major bytes differ
_PROBE_GROUPS = 4
_TRANSPOSE_ROWS, _TRANSPOSE_COLS, _TRANSPOSE_VALID = 64, 4, 37
_SENTINEL = -1.0


@dataclass
class Item:
    """One checklist line: ``key`` is stable (JSON, tests), ``title`` is for people."""

    key: str
    title: str
    status: str
    evidence: str
    details: dict[str, Any] = field(default_factory=dict)


def decide(key: str, title: str, judge: Callable[[], Item]) -> Item:
    """Run one item's judge; an exception makes the item ERROR instead of ending the validation."""
    try:
        return judge()
    except (Exception, SystemExit) as exc:  # SystemExit: an AITER JIT build may exit
        return Item(key, title, ERROR, f"{type(exc).__name__}: {exc}", {"traceback": traceback.format_exc(limit=6)})


# -- 1. CK-free build ------------------------------------------------------------------------


def platform_item() -> Item:
    """AITER built without CK (``CK_3RDPARTY_DIR`` missing) and ATOM told so (``ATOM_CK_FREE=1``)."""
    key, title = "ck_free_detected", "CK-free build detected"
    return decide(key, title, lambda: _platform_item(key, title))


def _platform_item(key: str, title: str) -> Item:
    core = importlib.import_module("aiter.jit.core")
    directory = getattr(core, "CK_3RDPARTY_DIR", None)
    atom_setting = os.environ.get("ATOM_CK_FREE")
    platform = detect_platform()
    details = {"CK_3RDPARTY_DIR": directory, "ATOM_CK_FREE": atom_setting, "platform": platform.as_dict()}
    problems = []
    if directory is None:
        problems.append("aiter.jit.core has no CK_3RDPARTY_DIR: cannot tell how this AITER was built")
    elif os.path.isdir(str(directory)):
        problems.append(f"AITER has CK: CK_3RDPARTY_DIR={directory} is a directory (not a CK-free build)")
    branch = _atom_has_ck_free_switch()
    if branch and (atom_setting or "").strip() != "1":
        problems.append(f"ATOM_CK_FREE={atom_setting!r}, not '1': ATOM does not force Triton")
    same = platform.ck_free_source.startswith("aiter.jit.core.CK_3RDPARTY_DIR")
    seen = (
        f"quantguard detects {platform.arch or 'no arch'} (from {platform.arch_source}), CK-free "
        f"{'yes' if platform.ck_free else 'no'} (from {'that directory' if same else platform.ck_free_source})"
    )
    if problems:
        return Item(key, title, FAIL, "; ".join(problems) + f"; {seen}", details)
    told = (
        "ATOM_CK_FREE=1"
        if branch
        else (
            "ATOM main has no ATOM_CK_FREE: the selectors below (ATOM_USE_TRITON_GEMM, "
            "per-layer MoE use_triton) must pick Triton"
        )
    )
    return Item(key, title, PASS, f"CK_3RDPARTY_DIR={directory} is missing; {told}; {seen}", details)


def _atom_has_ck_free_switch() -> bool:
    """Whether the loaded ATOM is the CK-free branch (its envs define ``ATOM_CK_FREE``); ATOM main is not."""
    envs = sys.modules.get("atom.utils.envs")
    known = getattr(envs, "environment_variables", None) if envs is not None else None
    return not isinstance(known, dict) or "ATOM_CK_FREE" in known


# -- 3. ATOM selects Triton --------------------------------------------------------------------


def selector_items() -> list[Item]:
    """One item per ATOM path: each of its ``use_triton*`` selectors must return True."""
    items = []
    for module_name in ATOM_PATHS:
        path = module_name.rsplit(".", 1)[-1]
        key, title = f"triton_selected.{path}", f"use_triton_gemm() True in {path}"
        items.append(
            decide(
                key,
                title,
                lambda key=key, title=title, module_name=module_name: _selector_item(key, title, module_name),
            )
        )
    return items


def _selector_item(key: str, title: str, module_name: str) -> Item:
    try:
        importlib.import_module(module_name)
    except ImportError as exc:
        return Item(key, title, SKIP, f"{module_name} is not importable ({exc}): no ATOM to check")
    prefix = module_name + "."
    selectors = [(name, selector) for name, selector in atom_selectors() if name.startswith(prefix)]
    if not selectors and module_name.endswith(".moe"):
        return _moe_layers_item(key, title)
    if not selectors:
        return Item(key, title, FAIL, f"no use_triton* selector in {module_name}: cannot tell which GEMMs it picks")
    returned = {name: selector() for name, selector in selectors}
    shown = ", ".join(f"{name[len(prefix) :]}()={value!r}" for name, value in returned.items())
    details = {"selectors": {name: bool(value) for name, value in returned.items()}}
    wrong = [name for name, value in returned.items() if not value]
    if wrong:
        return Item(
            key,
            title,
            FAIL,
            f"{', '.join(f'{name}()' for name in wrong)} returned False in CK-free mode: "
            f"this path calls CK kernels, whose JIT build fails ({shown})",
            details,
        )
    return Item(key, title, PASS, shown, details)


def _moe_layers_item(key: str, title: str) -> Item:
    """ATOM main: each MoE layer's quant method chooses (``Mxfp4MoEMethod.use_triton``), no module selector."""
    layers = moe_selections()
    if not layers:
        return Item(
            key,
            title,
            SKIP,
            "ATOM main chooses per MoE layer (quant_method.use_triton) and no MoE layer is "
            "registered yet: build the model, or run a guarded server with --events",
        )
    wrong = [f"{layer} ({method})" for layer, method, use_triton in layers if not use_triton]
    details = {"layers": {layer: use_triton for layer, _, use_triton in layers}}
    if wrong:
        return Item(
            key,
            title,
            FAIL,
            f"use_triton False on {len(wrong)} of {len(layers)} MoE layer(s): "
            f"{', '.join(wrong[:4])}; they call CK kernels",
            details,
        )
    return Item(key, title, PASS, f"use_triton True on all {len(layers)} MoE layer(s)", details)


# -- 4a. Triton fallbacks honor shuffle_scale ----------------------------------------------------


def _probe_input(device: torch.device) -> torch.Tensor:
    """(rows, groups * 128) bf16 whose groups all have different amax, so every layout permutation shows."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(_PROBE_ROWS, _PROBE_GROUPS, _GROUP, generator=generator)
    magnitude = 1.0 + torch.arange(_PROBE_ROWS * _PROBE_GROUPS, dtype=torch.float32).view(_PROBE_ROWS, -1, 1) / 8
    return (x * magnitude).reshape(_PROBE_ROWS, -1).to(torch.bfloat16).to(device)


def _written_layout(x: torch.Tensor, scales: torch.Tensor, fp8: torch.dtype, requested: str) -> str | None:
    """The layout whose reading of ``scales``' bytes equals the scales recomputed from ``x`` (requested one first)."""
    found = written_layout(
        x, scales.detach(), _GROUP, "fp32", element_format(fp8), (requested, "transposed", "row_major")
    ).best()
    return found[0] if found else None


def _probe_calls(quant: Any, fp8: torch.dtype, x: torch.Tensor) -> list[tuple[str, str, str, Callable[[], Any]]]:
    """(entry point, request text, requested layout, call returning the scale tensor) of each probe."""
    rows, width = x.shape

    def per_token(function: Callable[..., Any], shuffle: bool) -> Callable[[], torch.Tensor]:
        def call() -> torch.Tensor:
            out = torch.empty(rows, width, dtype=fp8, device=x.device)
            scales = torch.empty(rows, width // _GROUP, dtype=torch.float32, device=x.device)
            function(out, x.view(-1, _GROUP), scales, shuffle_scale=shuffle)
            return scales

        return call

    def per_group() -> torch.Tensor:
        return quant.per_group_quant_hip(x, quant_dtype=fp8, group_size=_GROUP, transpose_scale=True)[1]

    probes = [
        (
            "dynamic_per_token_scaled_quant",
            "shuffle_scale=True",
            "transposed",
            per_token(quant.dynamic_per_token_scaled_quant, True),
        )
    ]
    fallback = getattr(quant, "_fallback_dynamic_per_token_scaled_quant", None)
    if fallback is not None:
        probes.append(
            ("_fallback_dynamic_per_token_scaled_quant", "shuffle_scale=True", "transposed", per_token(fallback, True))
        )
    probes.append(("per_group_quant_hip", "transpose_scale=True", "transposed", per_group))
    # the control: without the request the same bytes must be row-major (a fallback that always
    # transposes is as wrong as one that never does)
    probes.append(
        (
            "dynamic_per_token_scaled_quant",
            "shuffle_scale=False",
            "row_major",
            per_token(quant.dynamic_per_token_scaled_quant, False),
        )
    )
    return probes


def shuffle_scale_item(device: torch.device) -> Item:
    """Triton fallbacks asked for ``shuffle_scale=True`` must write column-major ``(G, M)`` scale bytes."""
    key, title = "shuffle_scale_column_major", "Triton fallbacks write column-major scales for shuffle_scale=True"

    def judge() -> Item:
        quant = importlib.import_module("aiter.ops.quant")
        fp8 = importlib.import_module("aiter.utility.dtypes").fp8
        x = _probe_input(device)
        probes, failures = [], []
        for name, request, requested, call in _probe_calls(quant, fp8, x):
            written = _written_layout(x, call(), fp8, requested)
            where = describe_layout(written) if written else "scales that match no layout (values wrong)"
            ok = written == requested
            probes.append(
                {
                    "entry_point": f"aiter.ops.quant.{name}",
                    "request": request,
                    "expected": describe_layout(requested),
                    "written": where,
                    "ok": ok,
                }
            )
            if not ok:
                failures.append(f"{name}: {request} requested; scales were written {where}")
        details = {
            "probes": probes,
            "rows": _PROBE_ROWS,
            "groups": _PROBE_GROUPS,
            "group_size": _GROUP,
            "fp8": str(fp8).replace("torch.", ""),
        }
        if failures:
            return Item(key, title, FAIL, "; ".join(failures), details)
        return Item(
            key,
            title,
            PASS,
            f"{len(probes)} probes (M={_PROBE_ROWS}, G={_PROBE_GROUPS}): "
            "shuffle_scale/transpose_scale=True wrote (G, M) column-major bytes, "
            "shuffle_scale=False row-major",
            details,
        )

    return decide(key, title, judge)


# -- 4b. partial_transpose fallback writes -------------------------------------------------------


def _transpose_probe(function: Callable[..., Any], device: torch.device) -> dict[str, Any]:
    rows, cols, valid = _TRANSPOSE_ROWS, _TRANSPOSE_COLS, _TRANSPOSE_VALID
    source = torch.arange(1, rows * cols + 1, dtype=torch.float32, device=device).view(rows, cols)
    out = torch.full_like(source, _SENTINEL)
    function(out, source, torch.tensor([valid], dtype=torch.int32, device=device))
    written = out.reshape(-1).cpu()
    expected = torch.full((rows * cols,), _SENTINEL)
    expected[: valid * cols] = source[:valid].t().reshape(-1).cpu()
    region = slice(0, valid * cols)
    return {
        "must_write": valid * cols,
        "wrong": int((written[region] != expected[region]).sum()),
        "left_unwritten": int((written[region] == _SENTINEL).sum()),
        "overwritten_past_num_rows": int((written[valid * cols :] != _SENTINEL).sum()),
    }


def partial_transpose_item(device: torch.device) -> Item:
    """``partial_transpose`` must write ``out_flat[c * r + row] = input[row, c]`` for the first r rows only."""
    key, title = "partial_transpose_writes", "partial_transpose fallback writes its output"

    def judge() -> Item:
        quant = importlib.import_module("aiter.ops.quant")
        names = ["partial_transpose"] + (
            ["_fallback_partial_transpose"] if hasattr(quant, "_fallback_partial_transpose") else []
        )
        probes, failures = [], []
        for name in names:
            result = {"entry_point": f"aiter.ops.quant.{name}", **_transpose_probe(getattr(quant, name), device)}
            probes.append(result)
            if result["left_unwritten"] == result["must_write"]:
                failures.append(
                    f"{name} was a no-op: out left unchanged where {result['must_write']} elements "
                    f"(input[:{_TRANSPOSE_VALID}] transposed) must be written"
                )
            elif result["wrong"] or result["overwritten_past_num_rows"]:
                failures.append(
                    f"{name} wrote {result['wrong']} of {result['must_write']} elements wrong and "
                    f"{result['overwritten_past_num_rows']} past num_rows"
                )
        details = {"probes": probes, "input_shape": [_TRANSPOSE_ROWS, _TRANSPOSE_COLS], "num_rows": _TRANSPOSE_VALID}
        if failures:
            return Item(key, title, FAIL, "; ".join(failures), details)
        return Item(
            key,
            title,
            PASS,
            f"{', '.join(names)}: input[:{_TRANSPOSE_VALID}] of "
            f"({_TRANSPOSE_ROWS}, {_TRANSPOSE_COLS}) written transposed, rest untouched",
            details,
        )

    return decide(key, title, judge)


# -- 4c. A failed CK build must be catchable ---------------------------------------------------------


def jit_failure_item(device: torch.device) -> Item:
    """Calling a CK entry point in a CK-free build must raise a catchable error, never ``SystemExit``.

    ATOM's ``except RuntimeError`` fallbacks only run if AITER's JIT builder
    raises; the incident was a builder that exited the process instead.
    Probed with ``aiter.gemm_a8w8_CK`` (module_gemm_a8w8, a CK module) on a
    16x128 FP8 problem, only where the build has no CK sources (elsewhere the
    call would really compile the module, which proves nothing and takes minutes).
    """
    key, title = "jit_failure_catchable", "a failed CK JIT build raises, never exits"

    def judge() -> Item:
        core = importlib.import_module("aiter.jit.core")
        directory = getattr(core, "CK_3RDPARTY_DIR", None)
        if directory is None or os.path.isdir(str(directory)):
            return Item(
                key,
                title,
                SKIP,
                f"CK sources present (CK_3RDPARTY_DIR={directory}): the probe would really build a CK module",
            )
        aiter = importlib.import_module("aiter")
        fp8 = aiter.dtypes.fp8
        x = torch.ones(16, 128, device=device).to(fp8)
        w = torch.ones(128, 128, device=device).to(fp8)
        ones = torch.ones(16, 1, device=device), torch.ones(128, 1, device=device)
        probe = "aiter.gemm_a8w8_CK(16x128, 128x128 fp8)"
        try:
            aiter.gemm_a8w8_CK(x, w, *ones)
        except SystemExit as exc:
            return Item(
                key,
                title,
                FAIL,
                f"{probe}: the JIT build raised SystemExit({exc.code!r}): "
                "`except RuntimeError` fallbacks never run and the server process exits "
                "(quantguard's jit_exit check converts it to RuntimeError when enabled)",
                {"probe": probe, "raised": "SystemExit"},
            )
        except Exception as exc:  # noqa: BLE001 - any catchable error is the correct behaviour here
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return Item(
                key,
                title,
                PASS,
                f"{probe} raised {type(exc).__name__} (catchable): {first[:160]}",
                {"probe": probe, "raised": type(exc).__name__},
            )
        return Item(
            key,
            title,
            FAIL,
            f"{probe} ran a CK kernel in a build without CK sources: a stale prebuilt CK module is installed",
            {"probe": probe, "raised": None},
        )

    return decide(key, title, judge)
