"""Signatures of the simulated entry points against the real ones and against docs/sim.md.

Entry points that are torch custom ops (``torch_compile_guard``/``compile_ops``)
show ``(*args, **kwargs)``, as in AITER; their decorated function and their
op schema carry the real names and defaults, and both are checked.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from pathlib import Path

import pytest
import sim_refs as ref
import torch

import quantguard.sim as sim

REPO = Path(__file__).resolve().parents[2]
# The shared facts file when this checkout sits beside it (it is the source of truth), else the
# copy vendored with the tests (a clean CI checkout has no ../shared).
_SHARED = REPO.parent / "shared" / "aiter_signatures.json"
SIGNATURES = _SHARED if _SHARED.exists() else Path(__file__).resolve().parent / "data" / "aiter_signatures.json"
DOCS = REPO / "docs" / "sim.md"

_REAL = json.loads(SIGNATURES.read_text())["signatures"]
_TABLE_ROW = re.compile(r"^\| `(?P<path>(?:aiter|atom)\.[\w.]+)` \| `(?P<signature>\(.*\))` \| (?P<backend>[\w, ]+) \|")
_DOCUMENTED = [m.groupdict() for m in map(_TABLE_ROW.match, DOCS.read_text().splitlines()) if m]


@pytest.fixture(scope="module", params=sim.ARCHS)
def sim_modules(request):
    sim.install(request.param, atom=True)
    request.addfinalizer(sim.uninstall)
    import aiter
    import aiter.fused_moe  # noqa: F401
    import aiter.tuned_gemm  # noqa: F401

    return {
        "dtypes": aiter.dtypes,
        "torch": torch,
        "fp8_dtype": aiter.dtypes.fp8,
        "ActivationType": aiter.ActivationType,
        "QuantType": aiter.QuantType,
    }


def _resolve(path: str):
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
            break
        except ImportError:
            continue
    for part in parts[split:]:
        obj = getattr(obj, part)
    return obj


def _parameters(obj):
    return [p for p in inspect.signature(ref.implementation(obj)).parameters.values() if p.name != "self"]


#: What AITER HEAD e4048607 accepts and never reads (the default install follows HEAD).
_HEAD_UNREAD = {"aiter.ops.triton.quant.quant.dynamic_mxfp4_quant": {"scaling_mode"}}


def _assert_default(actual, text, namespace):
    expected = eval(text, namespace)  # noqa: S307 - trusted, checked-in text
    assert actual == expected and type(actual) is type(expected), (actual, text)


@pytest.mark.parametrize("path", sorted(_REAL))
def test_signature_matches_real_aiter(sim_modules, path):
    params = _parameters(_resolve(path))
    expected = _REAL[path]
    assert [p.name for p in params] == [e["name"] for e in expected]
    for param, spec in zip(params, expected):
        assert (param.default is inspect.Parameter.empty) is spec["required"], param.name
        if not spec["required"]:
            _assert_default(param.default, spec["default"], sim_modules)


def test_docs_table_covers_every_real_signature():
    assert set(_REAL) - {"aiter.jit.utils.chip_info.get_gfx"} <= {row["path"] for row in _DOCUMENTED}
    assert len(_DOCUMENTED) > len(_REAL)


@pytest.mark.parametrize("row", _DOCUMENTED, ids=lambda row: row["path"])
def test_signature_matches_docs_table(sim_modules, row):
    tree = ast.parse(f"def documented{row['signature']}: pass").body[0].args
    names = [a.arg for a in tree.args]
    defaults = [None] * (len(names) - len(tree.defaults)) + [ast.unparse(d) for d in tree.defaults]
    params = _parameters(_resolve(row["path"]))
    assert [p.name for p in params] == names
    for param, default in zip(params, defaults):
        if default is None:
            assert param.default is inspect.Parameter.empty, param.name
        else:
            _assert_default(param.default, default, sim_modules)


@pytest.mark.parametrize("row", _DOCUMENTED, ids=lambda row: row["path"])
def test_clean_entry_points_read_every_parameter(sim_modules, row):
    assert ref.unread_parameters(ref.implementation(_resolve(row["path"]))) == _HEAD_UNREAD.get(row["path"], set())


@pytest.mark.parametrize("path", sorted(_HEAD_UNREAD))
def test_a_release_build_reads_what_head_ignores(install, path):
    install("gfx950", release_build=True)
    assert ref.unread_parameters(ref.implementation(_resolve(path))) == set()


@pytest.mark.parametrize("path", sorted(_REAL))
def test_custom_op_schema_matches_real_aiter(sim_modules, path):
    """An opaque entry point's op schema names the real parameters, with the real defaults."""
    name = ref.op_name(_resolve(path))
    if name is None:
        pytest.skip("a plain Python function")
    arguments = list(getattr(torch.ops.aiter, name).default._schema.arguments)
    if arguments[0].name == "dummy":
        arguments = arguments[1:]
    expected = _REAL[path]
    assert [a.name for a in arguments] == [e["name"] for e in expected]
    for argument, spec in zip(arguments, expected):
        assert argument.has_default_value() is not spec["required"], argument.name
        if spec["required"]:
            continue
        default = eval(spec["default"], sim_modules)  # noqa: S307 - trusted, checked-in text
        if isinstance(default, torch.dtype):
            # Schemas store dtype defaults as ScalarType integers; compare through a dtype schema.
            default = (
                torch._C.parse_schema(f"f(ScalarType d={str(default).removeprefix('torch.')}) -> ()")
                .arguments[0]
                .default_value
            )
        assert argument.default_value == default, argument.name


def test_vendored_signatures_match_the_shared_file():
    """The copy CI uses must not drift from the shared facts (checked wherever both exist)."""
    vendored = Path(__file__).resolve().parent / "data" / "aiter_signatures.json"
    if not _SHARED.exists():
        pytest.skip("no ../shared beside this checkout")
    assert json.loads(vendored.read_text()) == json.loads(_SHARED.read_text())
