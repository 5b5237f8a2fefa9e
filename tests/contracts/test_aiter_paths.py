"""The AITER path table against itself, the real AITER tree and the simulator.

Every dotted path the table names must exist in the real AITER
(``shared/third_party``, imported in a subprocess) and in ``quantguard.sim``,
and take the keywords the table passes. Then every row is run on the
simulator with each entry point spied on: the calls ``validate`` makes
(positional count and keywords) must bind to the real signature and the
simulated one, and a GEMM that the table says dispatches to a kernel must
reach it.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from quantguard.contracts import aiter_paths
from quantguard.contracts.aiter_paths import PATHS, SCHEMES, AiterPath, DType

_REPO = Path(__file__).resolve().parents[2]
_ROWS = {path.name: path for path in PATHS}
_ENTRY_POINTS = sorted({entry for path in PATHS for entry in path.entry_points()})


def resolve(path: str) -> Any:
    """The object at a dotted path (module, then attributes); raises where it does not exist."""
    import importlib

    module_name, _, attributes = path.rpartition(".")
    while True:
        try:
            owner = importlib.import_module(module_name)
            break
        except ImportError:
            if "." not in module_name:
                raise
            module_name, _, parent = module_name.rpartition(".")
            attributes = f"{parent}.{attributes}"
    for attribute in attributes.split("."):
        owner = getattr(owner, attribute)
    return owner


def entry_parameters(entry: Any) -> list[tuple[str, bool]]:
    """``[(name, required)]`` of an entry point's parameters.

    AITER's custom-op wrappers are ``wrapper_custom(*args, **kwargs)``: their
    names come from the op schema (without the dummy tensor some ops take first).
    """
    import inspect

    import torch

    parameters = list(inspect.signature(entry).parameters.values())
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    if [p.kind for p in parameters] == list(variadic) and getattr(entry, "__closure__", None):
        cells = dict(zip(entry.__code__.co_freevars, (cell.cell_contents for cell in entry.__closure__)))
        if "loadName" in cells:
            arguments = list(getattr(torch.ops.aiter, cells["loadName"]).default._schema.arguments)
            skip = 0 if cells.get("input_is_tensor", True) else 1
            return [(argument.name, not argument.has_default_value()) for argument in arguments[skip:]]
    return [(p.name, p.default is p.empty) for p in parameters if p.kind not in variadic]


def _binding_problem(parameters: list[tuple[str, bool]], positional: int, keywords: set[str]) -> str | None:
    """Why a call with ``positional`` arguments and ``keywords`` does not bind to ``parameters``."""
    names = [name for name, _ in parameters]
    if positional > len(names):
        return f"{positional} positional arguments, {len(names)} parameters {names}"
    unknown = keywords - set(names)
    if unknown:
        return f"keywords {sorted(unknown)} are not parameters {names}"
    twice = keywords & set(names[:positional])
    if twice:
        return f"{sorted(twice)} passed positionally and by keyword"
    missing = [name for name, required in parameters[positional:] if required and name not in keywords]
    return f"required {missing} not passed" if missing else None


# -- the table itself -----------------------------------------------------------------------------


def test_rows_are_unique_and_use_the_declared_vocabulary():
    assert len(_ROWS) == len(PATHS)
    for path in PATHS:
        assert path.scheme in SCHEMES and path.backend in aiter_paths.BACKENDS, path.name
        assert path.x_scale in aiter_paths.X_SCALE_LAYOUTS and path.w_scale in aiter_paths.W_SCALE_LAYOUTS
        assert path.x_scale_below_32_rows in (None, *aiter_paths.X_SCALE_LAYOUTS)
        assert path.archs and set(path.archs) <= set(aiter_paths.ARCHS), path.name
        assert not (path.ck and path.asm), path.name
    assert {path.scheme for path in PATHS} == set(SCHEMES)


@pytest.mark.parametrize("name", _ROWS)
def test_row_agrees_with_its_scheme(name):
    path, form = _ROWS[name], SCHEMES[_ROWS[name].scheme]
    if path.gemm is None:  # a stand-in: says what runs, quantizes nothing
        assert path.note and path.quant is None and path.x_scale == "none"
        return
    assert path.quant is not None
    dtype = path.quant.kwargs.get("quant_dtype")
    assert dtype in (None, DType(form.quant_dtype)), f"{name} quantizes to {dtype}, its scheme to {form.quant_dtype}"
    # e8m0 producers declare their rounding; fp32 producers have none to declare
    assert (path.x_scale_rounding is not None) == (form.x_scale_dtype == "e8m0"), name
    assert (path.x_scale == "mx_swizzle") <= (form.x_scale_dtype == "e8m0"), name
    assert path.reached_by != path.gemm.path


def test_the_table_imports_neither_torch_nor_aiter():
    code = "import sys, quantguard.contracts.aiter_paths; print([m for m in ('torch', 'aiter') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_scheme_archs_follow_the_rows():
    assert aiter_paths.scheme_archs("mxfp4") == ("gfx950",)
    assert aiter_paths.scheme_archs("fp8_blockscale") == ("gfx942", "gfx950")
    assert aiter_paths.scheme_archs("unknown") == ()


# -- the real AITER tree --------------------------------------------------------------------------

_PROBE = """
from __future__ import annotations
import json, sys
sys.path.insert(0, sys.argv[1])
import real_aiter  # noqa: F401 - before anything imports aiter
import aiter
{helpers}
result = {{"entries": {{}}, "quant_types": [member.name for member in aiter.QuantType],
          "dtypes": [name for name in json.loads(sys.argv[3]) if hasattr(aiter.dtypes, name)]}}
for path in json.loads(sys.argv[2]):
    try:
        result["entries"][path] = entry_parameters(resolve(path))
    except Exception as exc:
        result["entries"][path] = f"{{type(exc).__name__}}: {{exc}}"
print(json.dumps(result))
"""


def _third_party() -> Path | None:
    configured = os.environ.get("QUANTGUARD_THIRD_PARTY")
    folder = Path(configured) if configured else _REPO.parent / "shared" / "third_party"
    return folder if (folder / "real_aiter.py").is_file() else None


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    """What the real AITER tree says about every entry point, QuantType and dtype the table names."""
    folder = _third_party()
    if folder is None:
        pytest.skip("the real AITER tree is not available (../shared/third_party or $QUANTGUARD_THIRD_PARTY)")
    helpers = textwrap.dedent(inspect.getsource(resolve) + "\n" + inspect.getsource(entry_parameters))
    dtypes = sorted({form.quant_dtype for form in SCHEMES.values() if form.quant_dtype})
    script = _PROBE.format(helpers=helpers)
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder), json.dumps(_ENTRY_POINTS), json.dumps(dtypes)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0 and "ModuleNotFoundError" in result.stderr:
        pytest.skip(f"the real AITER import needs a package: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("entry", _ENTRY_POINTS)
def test_entry_point_exists_in_real_aiter(real, entry):
    found = real["entries"][entry]
    assert not isinstance(found, str), f"{entry}: {found}"


@pytest.mark.parametrize("name", _ROWS)
def test_table_keywords_are_real_parameters(real, name):
    for entry in _ROWS[name].calls():
        names = [parameter for parameter, _ in real["entries"][entry.path]]
        assert set(entry.kwargs) <= set(names), f"{entry.path} takes {names}"


def test_schemes_name_real_quant_types_and_dtypes(real):
    for form in SCHEMES.values():
        assert form.quant_type is None or form.quant_type in real["quant_types"], form.name
        assert form.quant_dtype is None or form.quant_dtype in real["dtypes"], form.name


# -- the simulator --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated():
    """The simulator as a gfx950 release build: every row's kernels are there and run."""
    import quantguard.sim as sim

    sim.install(arch="gfx950", release_build=True)
    try:
        import aiter

        yield {entry: entry_parameters(resolve(entry)) for entry in _ENTRY_POINTS}, aiter
    finally:
        sim.uninstall()


def test_every_entry_point_and_scheme_name_exists_in_the_simulator(simulated):
    parameters, aiter = simulated
    assert set(parameters) == set(_ENTRY_POINTS)
    for form in SCHEMES.values():
        assert form.quant_type is None or hasattr(aiter.QuantType, form.quant_type), form.name
        assert form.quant_dtype is None or hasattr(aiter.dtypes, form.quant_dtype), form.name


def _spy(monkeypatch: pytest.MonkeyPatch, path: str, calls: dict[str, list]) -> None:
    owner_path, _, attribute = path.rpartition(".")
    owner = resolve(owner_path)
    original = getattr(owner, attribute)

    def spy(*args, **kwargs):
        calls[path].append((len(args), set(kwargs)))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attribute, spy)


def _run_row(path: AiterPath) -> tuple[dict[str, list], Exception | None]:
    """Run ``path`` as validate does, on one shape every row takes: the calls each entry point got, the error."""
    import torch

    from quantguard.validate.quantize_kernels import KernelPath, quantize_weight

    calls: dict[str, list] = {entry: [] for entry in path.entry_points()}
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 512, generator=generator).to(torch.bfloat16)
    weight = (torch.randn(256, 512, generator=generator) * 0.02).to(torch.bfloat16)
    with pytest.MonkeyPatch.context() as monkeypatch:
        for entry in calls:
            _spy(monkeypatch, entry, calls)
        runnable = KernelPath(path)
        try:
            out = runnable.run(x, runnable.prepare(quantize_weight(path.scheme, weight)), torch.bfloat16)
        except Exception as exc:  # noqa: BLE001 - reported by the row's test, after what the spies saw
            return calls, exc
    return calls, None if out.shape == (40, 256) else AssertionError(f"output shape {tuple(out.shape)}")


@pytest.fixture(scope="module")
def recorded(simulated) -> dict[str, tuple[dict[str, list], Exception | None]]:
    """Per row, the calls each of its entry points got when the row ran on the simulator."""
    return {name: _run_row(path) for name, path in _ROWS.items()}


@pytest.mark.parametrize("name", _ROWS)
def test_rows_call_what_they_declare_and_bind_to_the_simulator(simulated, recorded, name):
    calls, error = recorded[name]
    for entry in _ROWS[name].calls():
        for positional, keywords in calls[entry.path]:
            problem = _binding_problem(simulated[0][entry.path], positional, keywords)
            assert problem is None, f"{entry.path}: {problem}"
            assert set(entry.kwargs) <= keywords, f"{entry.path} was not passed the table's {entry.kwargs}"
    assert error is None, f"{name} raised {error!r}"
    for entry in _ROWS[name].calls():
        assert len(calls[entry.path]) == 1, f"{entry.path} called {len(calls[entry.path])} times"
        if entry.dispatches_to:
            assert calls[entry.dispatches_to], f"{entry.path} did not reach {entry.dispatches_to}"


@pytest.mark.parametrize("name", _ROWS)
def test_rows_calls_bind_to_real_aiter(real, recorded, name):
    calls, _ = recorded[name]
    for entry in _ROWS[name].calls():
        assert calls[entry.path], f"{entry.path} was not called on the simulator"
        for positional, keywords in calls[entry.path]:
            problem = _binding_problem(real["entries"][entry.path], positional, keywords)
            assert problem is None, f"{entry.path}: {problem}"
