"""``quantguard info --coverage``: AITER call sites found statically and judged against the contracts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from quantguard.cli.main import main
from quantguard.contracts import Contract
from quantguard.coverage import ATOM_GROUPS, default_index, measure, scan_source
from quantguard.coverage.resolve import ContractIndex, reachable_modules

ATOM = Path(__file__).resolve().parents[1] / ".." / "shared" / "third_party" / "atom-ffdf3bb5"
needs_atom = pytest.mark.skipif(
    not ATOM.is_dir(), reason="the vendored ATOM tree (../shared/third_party) is absent in this checkout"
)


def _targets(source: str) -> list[tuple[int, str, str]]:
    return [(site.line, site.written, site.target) for site in scan_source(textwrap.dedent(source))]


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import aiter\naiter.rmsnorm2d_fwd(x)\n", [(2, "aiter.rmsnorm2d_fwd", "aiter.rmsnorm2d_fwd")]),
        (
            "import aiter as rocm_aiter\nrocm_aiter.ops.quant.per_token_quant_hip(x)\n",
            [(2, "rocm_aiter.ops.quant.per_token_quant_hip", "aiter.ops.quant.per_token_quant_hip")],
        ),
        (
            "import aiter.mla\naiter.mla.mla_decode_fwd(q)\n",
            [(2, "aiter.mla.mla_decode_fwd", "aiter.mla.mla_decode_fwd")],
        ),
        (
            "import aiter.ops.triton.quant as tq\ntq.dynamic_mxfp4_quant(x)\n",
            [(2, "tq.dynamic_mxfp4_quant", "aiter.ops.triton.quant.dynamic_mxfp4_quant")],
        ),
        ("from aiter import gemm_a8w8\ngemm_a8w8(x, w, xs, ws)\n", [(2, "gemm_a8w8", "aiter.gemm_a8w8")]),
        (
            "from aiter.ops.triton.quant import dynamic_mxfp4_quant as q\nq(x)\n",
            [(2, "q", "aiter.ops.triton.quant.dynamic_mxfp4_quant")],
        ),
        ("from aiter.tuned_gemm import tgemm\ntgemm.mm(x, w)\n", [(2, "tgemm.mm", "aiter.tuned_gemm.tgemm.mm")]),
        (
            "from aiter.ops import quant\nquant.per_group_quant_hip(x)\n",
            [(2, "quant.per_group_quant_hip", "aiter.ops.quant.per_group_quant_hip")],
        ),
        ("from aiter import gemm_a8w8\nimpl = gemm_a8w8\nimpl(x)\n", [(3, "impl", "aiter.gemm_a8w8")]),
    ],
)
def test_every_import_form_resolves(source, expected):
    assert _targets(source) == expected


def test_function_local_imports_bind_only_in_their_function():
    source = """
        def forward(x):
            from aiter.fused_moe_bf16_asm import asm_moe
            def inner():
                return asm_moe(x)          # nested: sees the enclosing function's import
            return asm_moe(x), inner()

        def other(x):
            return asm_moe(x)              # not imported here: an unknown name

        class Layer:
            from aiter import gemm_a4w4
            def forward(self, x):
                return gemm_a4w4(x)        # class bodies do not enclose methods
    """
    assert _targets(source) == [
        (5, "asm_moe", "aiter.fused_moe_bf16_asm.asm_moe"),
        (6, "asm_moe", "aiter.fused_moe_bf16_asm.asm_moe"),
    ]


def test_decorators_and_defaults_are_scanned_in_the_enclosing_scope():
    source = """
        from aiter.jit.utils.torch_guard import torch_compile_guard
        from aiter import get_hip_quant
        @torch_compile_guard(mutates_args=[])
        def op(x, f=get_hip_quant(1)):
            return x
    """
    assert [t for _, _, t in _targets(source)] == [
        "aiter.jit.utils.torch_guard.torch_compile_guard",
        "aiter.get_hip_quant",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.ops.aiter.rocm_aiter_fused_moe(x)\n",
        "from atom.model_ops.topK import rocm_aiter_grouped_topk\nrocm_aiter_grouped_topk(x)\n",
        "import aiterx\naiterx.f(x)\n",
        "from .aiter import f\nf(x)\n",
        "gemm_a8w8(x)\n",
    ],
)
def test_non_aiter_calls_are_ignored(source):
    assert _targets(source) == []


def _contract(target: str) -> Contract:
    return Contract(target=target, kind="gemm", backend="ck")


@pytest.mark.parametrize(
    "called, contract, category, rule",
    [
        ("aiter.ops.gemm_op_a8w8.gemm_a8w8", "aiter.ops.gemm_op_a8w8.gemm_a8w8", "guarded", "exact"),
        ("aiter.gemm_a8w8", "aiter.ops.gemm_op_a8w8.gemm_a8w8", "guarded", "re-export"),  # star re-export
        (
            "aiter.ops.triton.quant.fused_rms_mxfp4_quant",
            "aiter.ops.triton.quant.fused_mxfp4_quant.fused_rms_mxfp4_quant",
            "guarded",
            "re-export",
        ),  # package
        (
            "aiter.ops.triton.gemm_afp4wfp4.gemm_afp4wfp4",
            "aiter.ops.triton.gemm.basic.gemm_afp4wfp4.gemm_afp4wfp4",
            "guarded",
            "re-export",
        ),  # compat name
        ("aiter.tuned_gemm.tgemm.mm", "aiter.tuned_gemm:tgemm.mm", "guarded", "exact"),
        ("aiter.shuffle_weight", "aiter.ops.shuffle.shuffle_weight", "unguarded", ""),  # not star-imported
        (
            "aiter.ops.triton.gemm_afp4wfp4.gemm_a8w8",
            "aiter.ops.triton.gemm.basic.gemm_afp4wfp4.gemm_afp4wfp4",
            "unguarded",
            "",
        ),  # other name
        ("aiter.dist.parallel_state.get_tp_group", "aiter.ops.gemm_op_a8w8.gemm_a8w8", "infrastructure", ""),
        ("aiter.QuantType", "aiter.ops.gemm_op_a8w8.gemm_a8w8", "infrastructure", ""),
    ],
)
def test_re_export_rules(called, contract, category, rule):
    resolution = ContractIndex([_contract(contract)]).resolve(called)
    assert (resolution.category, resolution.how) == (category, rule)


def test_factories_count_as_guarded_and_vocabulary_marks_quantized_paths():
    index = ContractIndex([], ("aiter.ops.quant.get_hip_quant",))
    assert index.resolve("aiter.get_hip_quant").how == "factory"
    assert index.resolve("aiter.ops.foo.rope_fwd").quantized is False
    assert index.resolve("aiter.ops.foo.some_fp8_kernel").quantized is True
    assert reachable_modules("aiter.ops.triton.moe.quant_moe") == {
        "aiter.ops.triton.moe.quant_moe",
        "aiter.ops.triton.quant_moe",
    }


SYNTHETIC = {
    "pkg/linear.py": """
        from aiter import gemm_a8w8, QuantType
        from aiter.dist.parallel_state import get_tp_group
        import torch

        def forward(x, w):
            get_tp_group()
            torch.matmul(x, w)
            from aiter.ops.triton.moe.quant_moe import downcast_to_static_fp8
            return gemm_a8w8(x, w, 1, 1), downcast_to_static_fp8(x, 1), some_fp8_kernel(x)

        from aiter.ops.mystery import some_fp8_kernel
    """,
    "pkg/other.py": "import aiter\naiter.rope_fwd(1)\n",
    "pkg/broken.py": "def f(:\n",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, source in SYNTHETIC.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(source))
    return tmp_path


def test_measure_a_synthetic_tree(tree):
    coverage = measure(tree, index=default_index())
    by_target = {site.call.target: site.resolution for site in coverage.sites}
    assert by_target["aiter.gemm_a8w8"].contract == "aiter.ops.gemm_op_a8w8.gemm_a8w8"
    assert by_target["aiter.ops.triton.moe.quant_moe.downcast_to_static_fp8"].category == "guarded"
    assert by_target["aiter.ops.mystery.some_fp8_kernel"].category == "unguarded"
    assert by_target["aiter.dist.parallel_state.get_tp_group"].category == "infrastructure"
    assert coverage.counted() == (2, 3)  # quantized paths
    assert coverage.counted(quantized_only=False) == (2, 4)  # + aiter.rope_fwd
    assert coverage.unparsed == ["pkg/broken.py"] and coverage.groups == ["all"]
    assert measure(tree, ["pkg/other.py"]).counted(quantized_only=False) == (0, 1)


def test_cli_text_and_json(tree, capsys):
    assert main(["info", "--coverage", str(tree)]) == 0
    text = capsys.readouterr().out
    assert "guarded   pkg/linear.py:10  gemm_a8w8 -> aiter.gemm_a8w8  [aiter.ops.gemm_op_a8w8.gemm_a8w8]" in text
    assert "UNGUARDED pkg/linear.py:10  some_fp8_kernel -> aiter.ops.mystery.some_fp8_kernel" in text
    assert "unguarded pkg/other.py:2  aiter.rope_fwd -> aiter.rope_fwd" in text
    assert "quantized paths 2/3 (66.7%)" in text and "get_tp_group" not in text
    assert main(["info", "--coverage", str(tree), "--paths", "pkg/linear.py", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["groups"] == ["selected"]
    assert report["totals"]["all"]["quantized_guarded"] == 2
    assert {site["status"] for site in report["sites"]} == {"guarded", "unguarded", "infrastructure"}
    assert main(["info", "--coverage", str(tree / "missing")]) == 2


@needs_atom
def test_vendored_atom_quantized_paths_are_at_least_90_percent_guarded():
    coverage = measure(ATOM)
    assert coverage.groups == list(ATOM_GROUPS)
    guarded, total = coverage.counted()
    assert total > 100 and guarded / total >= 0.9, (guarded, total)
    sites = {(s.call.path, s.call.target): s.resolution for s in coverage.sites}
    # the call sites aiter_api.md lists as unguarded before this work
    for path, target in [
        ("atom/model_ops/moe.py", "aiter.fused_moe_bf16_asm.asm_moe"),
        ("atom/model_ops/layernorm.py", "aiter.rmsnorm_quant"),
        ("atom/model_ops/activation.py", "aiter.ops.triton.fused_fp8_quant.fused_silu_mul_fp8_per_tensor_static_quant"),
        ("atom/models/deepseek_v4.py", "aiter.ops.batched_gemm_op_a8w8.batched_gemm_a8w8_mxscale"),
    ]:
        assert sites[(path, target)].category == "guarded", (path, target)
