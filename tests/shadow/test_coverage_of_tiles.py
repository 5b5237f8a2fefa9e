"""The shadow compares every M and N tile (the last, partial ones included) over the whole K.

A fault confined to the last partial M tile, the last partial N tile or the
last K group must fail the precision-matched comparison within the sampled
calls of a short run; clean runs (M = 1, 7, 257, 300, outlier channels) stay quiet.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

import quantguard
import quantguard.sim as sim
from quantguard.contracts import aiter as aiter_contracts
from quantguard.shadow.references import M_TILE, MAX_COLUMNS, MAX_ROWS, N_TILE, select_columns, select_rows
from quantguard.testing import capture_events

N, K = 320, 384  # N: a partial last 128-column tile (64 columns); K: three 128-wide groups
CLEAN_M = (1, 7, 257, 300)


def _tiles_hit(indices, total, tile):
    return {i // tile for i in indices} == set(range(-(-total // tile)))


@pytest.mark.parametrize("m", [1, 7, 31, 32, 33, 257, 300, 4096, 5000, 40000])
def test_rows_touch_every_tile_and_the_last_row(m):
    draws = random.Random(m)
    selections = [select_rows(m, False, draws.random(), turn) for turn in range(64)]
    for selection in selections:
        rows = selection.indices()
        assert rows[-1] == m - 1 and len(rows) == len(set(rows)) and len(rows) <= MAX_ROWS + 1
        assert all(0 <= r < m for r in rows)
        if -(-m // M_TILE) <= MAX_ROWS:
            assert _tiles_hit(rows, m, M_TILE)
    assert _tiles_hit([r for s in selections for r in s.indices()], m, M_TILE)
    if m > 32:
        assert len({tuple(s.indices()) for s in selections}) > 1, "the rows must change between sampled calls"


@pytest.mark.parametrize(
    "n, block", [(16, None), (300, None), (320, None), (4096, 16), (7168, None), (32768, 16), (200000, None)]
)
def test_columns_touch_every_tile_and_the_last_column(n, block):
    draws = random.Random(n)
    selections = [select_columns(n, False, draws.random(), block, turn) for turn in range(64)]
    for selection in selections:
        columns = selection.columns()
        assert columns[-1] == n - 1 and len(columns) == len(set(columns))
        assert len(columns) <= MAX_COLUMNS + selection.size
        if -(-n // N_TILE) * selection.size <= MAX_COLUMNS:
            assert _tiles_hit(columns, n, N_TILE)
    assert _tiles_hit([c for s in selections for c in s.columns()], n, N_TILE)


def test_full_shadow_is_everything():
    assert select_rows(300, True, 0.5).indices() == list(range(300))
    assert select_columns(320, True, 0.5, None).columns() == list(range(320))


# -- end to end on the simulator: a kernel wrapped with a fault confined to one tile -------------


def _data(aiter, m: int, outliers: bool = True):
    gen = torch.Generator().manual_seed(m)
    x = torch.randn(m, K, generator=gen)
    if outliers:
        x[:, 7] *= 60.0
        x[:, K - 3] *= 25.0
    w = torch.randn(N, K, generator=gen) * 0.05
    if outliers:
        w[:, 11] *= 20.0
    fp8 = aiter.dtypes.fp8
    padded = torch.nn.functional.pad(w, (0, 0, 0, -N % 128))
    block_scale = padded.view(-1, 128, K // 128, 128).abs().amax((1, 3)) / torch.finfo(fp8).max
    expanded = block_scale.repeat_interleave(128, 0)[:N].repeat_interleave(128, 1)
    channel_scale = w.abs().amax(1, keepdim=True) / torch.finfo(fp8).max
    return x.to(torch.bfloat16), (w / expanded).to(fp8), block_scale, (w / channel_scale).to(fp8), channel_scale


_WRAPPER = """
import torch
import aiter
FAULT = None

def _tail(size, tile):
    return size // tile * tile if size % tile else size - 1

def _faulty(kernel, XQ, WQ, x_scale, w_scale):
    out = kernel(XQ, WQ, x_scale, w_scale)
    m, n = out.shape
    if FAULT == "m_tail_zero":
        out[_tail(m, 32):] = 0
    elif FAULT == "m_tail_scale_of_other_row":
        out[_tail(m, 32):] = kernel(XQ, WQ, x_scale.roll(1, 0), w_scale)[_tail(m, 32):]
    elif FAULT == "n_tail_zero":
        out[:, _tail(n, 128):] = 0
    elif FAULT == "n_tail_scale_of_other_block":
        shifted = w_scale.roll(1, 0)
        out[:, _tail(n, 128):] = kernel(XQ, WQ, x_scale, shifted)[:, _tail(n, 128):]
    elif FAULT == "k_tail_scale_ignored":
        xs, ws = x_scale.clone(), w_scale.clone()
        xs[..., -1] = 1.0
        if ws.shape[-1] > 1:
            ws[..., -1] = 1.0
        out = kernel(XQ, WQ, xs, ws)
    elif FAULT == "k_tail_dropped":
        dropped = XQ.clone()
        dropped[:, -128:] = 0
        out = kernel(dropped, WQ, x_scale, w_scale)
    return out

def gemm_a8w8_blockscale(XQ, WQ, x_scale, w_scale, dtype=torch.bfloat16, isBpreshuffled=False):
    return _faulty(aiter.gemm_a8w8_blockscale, XQ, WQ, x_scale, w_scale)

def gemm_a8w8_CK(XQ, WQ, x_scale, w_scale, bias=None, dtype=torch.bfloat16, splitK=None):
    return _faulty(aiter.gemm_a8w8_CK, XQ, WQ, x_scale, w_scale)
"""

BLOCK_FAULTS = (
    "m_tail_zero",
    "m_tail_scale_of_other_row",
    "n_tail_zero",
    "n_tail_scale_of_other_block",
    "k_tail_scale_ignored",
    "k_tail_dropped",
)
TOKEN_FAULTS = ("m_tail_zero", "m_tail_scale_of_other_row", "n_tail_zero", "k_tail_dropped")


def _run(tmp_path, make_module, kernel: str, m: int, fault: str | None, calls: int = 4, seed: int = 0):
    sim.install("gfx942")
    import aiter

    module = make_module("qgt_tiles", _WRAPPER)
    module.FAULT = fault
    template = next(c for c in aiter_contracts.CONTRACTS if c.target.endswith("." + kernel))
    quantguard.register(dataclasses.replace(template, target=f"qgt_tiles.{kernel}"))
    x, w_block, block_scale, w_channel, channel_scale = _data(aiter, m)
    with capture_events() as events:
        quantguard.enable(log=str(tmp_path / "log.jsonl"), sample_rate=1.0, targets="qgt_tiles.*", seed=seed)
        for _ in range(calls):
            if kernel == "gemm_a8w8_blockscale":
                xq, xs = aiter.per_group_quant_hip(x, quant_dtype=aiter.dtypes.fp8)
                module.gemm_a8w8_blockscale(xq, w_block, xs, block_scale)
            else:
                xq, xs = aiter.per_token_quant_hip(x, quant_dtype=aiter.dtypes.fp8)
                module.gemm_a8w8_CK(xq, w_channel, xs, channel_scale)
        quantguard.disable()
    return events


KERNELS = ("gemm_a8w8_blockscale", "gemm_a8w8_CK")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("m", CLEAN_M)
def test_clean_runs_are_quiet(tmp_path, make_module, kernel, m):
    events = _run(tmp_path, make_module, kernel, m, None)
    assert not events.violations(), [(e["check"], e["message"]) for e in events.violations()]
    shadows = [e for e in events.named("shadow") if e["reference"] == "matched"]
    assert shadows and all(e["passed"] for e in shadows)


@pytest.mark.parametrize("m", (257, 300))
@pytest.mark.parametrize(
    "kernel, fault", [(k, f) for k in KERNELS for f in (BLOCK_FAULTS if k.endswith("blockscale") else TOKEN_FAULTS)]
)
def test_fault_confined_to_the_last_tile_is_caught(tmp_path, make_module, kernel, fault, m):
    events = _run(tmp_path, make_module, kernel, m, fault)
    matched = [e for e in events.violations(check="numerics") if e["details"].get("reference") == "matched"]
    assert matched, f"{fault} at M={m} passed every sampled call"
    if fault.startswith("m_tail"):
        assert all(e["details"]["worst_row"] >= m // 32 * 32 for e in matched)
    if fault.startswith("n_tail"):
        assert all(e["details"]["worst_column"] >= N // 128 * 128 for e in matched)


@pytest.mark.parametrize("seed", range(3))
def test_every_call_of_a_short_run_catches_the_last_partial_tile(tmp_path, make_module, seed):
    """The last row and column are always compared, so detection does not depend on the draw."""
    events = _run(tmp_path, make_module, "gemm_a8w8_blockscale", 300, "m_tail_scale_of_other_row", seed=seed)
    shadows = [e for e in events.named("shadow") if e["reference"] == "matched"]
    assert len(shadows) == 4 and not any(e["passed"] for e in shadows)


# -- plain tensors: a fault diluted in the pooled metrics still fails its row or column ---------


def _blockscale_view(m: int, n: int, k: int):
    from quantguard.contracts.views import GemmView

    gen = torch.Generator().manual_seed(m + n + k)
    x = torch.randn(m, k, generator=gen)
    w = torch.randn(n, k, generator=gen) * 0.05
    groups = -(-k // 128)
    x_pad = torch.nn.functional.pad(x, (0, groups * 128 - k))
    x_scale = x_pad.view(m, groups, 128).abs().amax(-1) / 448.0
    w_pad = torch.nn.functional.pad(w, (0, groups * 128 - k, 0, -n % 128))
    w_scale = w_pad.view(-1, 128, groups, 128).abs().amax((1, 3)) / 448.0
    xq = (x / x_scale.repeat_interleave(128, 1)[:, :k]).to(torch.float8_e4m3fn)
    wq = (w / w_scale.repeat_interleave(128, 0)[:n].repeat_interleave(128, 1)[:, :k]).to(torch.float8_e4m3fn)
    view = GemmView("k", xq, wq, x_scale, w_scale, scheme="block", fp8_read_as=torch.float8_e4m3fn, m=m, n=n, k=k)
    dense = (xq.float() * x_scale.repeat_interleave(128, 1)[:, :k]) @ (
        wq.float() * w_scale.repeat_interleave(128, 0)[:n].repeat_interleave(128, 1)[:, :k]
    ).t()
    return view, dense


def _verdict(view, out, turn: int, draw: float):
    from quantguard.checks.gemm_numerics import _slice_failures, _worst_slices
    from quantguard.numerics.metrics import comparison_tensors, slice_tensors, summarize
    from quantguard.shadow.references import dequantize_w_columns, dequantize_x_rows, matched_reference, output_columns
    from quantguard.shadow.thresholds import tolerance_for

    rows = select_rows(view.m, False, draw, turn)
    columns = select_columns(view.n, False, 1.0 - draw, None, turn)
    reference = matched_reference(
        view,
        dequantize_x_rows(view, rows.take(view.x), view.x_scale, rows),
        dequantize_w_columns(view, columns),
        columns,
        torch.float32,
    )
    compared = output_columns(rows.take(out), columns)
    values = {
        name: tensor.tolist()
        for name, tensor in {**comparison_tensors(compared, reference), **slice_tensors(compared, reference)}.items()
    }
    metrics = summarize(values)
    tolerance = tolerance_for("matched", "fp8", "k", None, {})
    pooled = tolerance.failures(metrics.cosine, metrics.norm_ratio, metrics.sqnr_db, metrics.nonfinite)
    worst = _worst_slices(values, "", {"rows": rows, "columns": columns})
    return pooled, _slice_failures(worst, tolerance.sqnr_db, len(rows), len(columns.blocks) * columns.size), worst


PLAIN_FAULTS = {
    # M = 4001: the last partial M tile is the single row 4000; N = 2100: the last N tile holds 52 columns
    "last_row_20_percent": lambda out, view: out.index_put_((torch.tensor([view.m - 1]),), out[view.m - 1 :] * 1.2),
    "last_column_tile_10_percent": lambda out, view: torch.cat(
        (out[:, : view.n // 128 * 128], out[:, view.n // 128 * 128 :] * 1.1), 1
    ),
    "last_k_group_scale_ignored": None,
}


@pytest.mark.parametrize("fault", sorted(PLAIN_FAULTS))
def test_tile_fault_diluted_in_pooled_metrics_fails_its_row_or_column(fault):
    view, dense = _blockscale_view(4001, 2100, 320)  # K = 320: the last K group is partial (64 wide)
    out = dense.to(torch.bfloat16)
    if fault == "last_k_group_scale_ignored":
        ignored = view.x_scale.clone()
        ignored[:, -1] = 1.0
        faulty_view = dataclasses.replace(view, x_scale=ignored)
        from quantguard.shadow.references import dequantize_x_rows

        everything = select_rows(view.m, True, 0.0)
        x_deq = dequantize_x_rows(faulty_view, view.x, ignored, everything)
        w_deq = view.w.float() * view.w_scale.repeat_interleave(128, 0)[: view.n].repeat_interleave(128, 1)[:, : view.k]
        out = (x_deq @ w_deq.t()).to(torch.bfloat16)
    else:
        out = PLAIN_FAULTS[fault](out.clone(), view)
    for turn in range(3):
        pooled, sliced, worst = _verdict(view, out, turn, 0.37 * (turn + 1) % 1.0)
        assert pooled or sliced, (fault, turn, worst)
        if fault != "last_k_group_scale_ignored":
            assert not pooled and sliced, "the pooled metrics dilute this fault; only the worst slice shows it"


def test_clean_plain_tensors_pass_row_and_column_checks():
    view, dense = _blockscale_view(4001, 2100, 320)
    for turn in range(3):
        pooled, sliced, worst = _verdict(view, dense.to(torch.bfloat16), turn, 0.5)
        assert not pooled and not sliced, worst


def test_selection_is_deterministic_under_a_seed():
    from quantguard.engine.sampling import Sampler

    first, second = Sampler(1.0, 1, seed=7), Sampler(1.0, 1, seed=7)
    picks = [[select_rows(300, False, s.draw(), turn).indices() for turn in range(5)] for s in (first, second)]
    assert picks[0] == picks[1] and len({tuple(p) for p in picks[0]}) > 1


@pytest.mark.parametrize("rows, judged", [(1, False), (4, False), (8, True), (16, True)])
def test_a_column_is_judged_by_its_own_sqnr_only_when_it_holds_enough_rows(rows, judged):
    """Decode (M = 1): a column is one output, and a near-cancelled output's bf16 rounding alone reads as
    -20 dB; such short slices are left to the pooled metrics (found on an H200 with M = 1)."""
    from quantguard.checks.gemm_numerics import _slice_failures

    worst = {"worst_row": 0, "worst_row_sqnr_db": 60.0, "worst_column": 494, "worst_column_sqnr_db": 23.9}
    failed = _slice_failures(worst, 25.0, rows, 256)
    assert bool(failed) == judged
    if judged:
        assert failed == ["column 494 SQNR 23.9 dB < 25.0 dB"]
