"""Each operand with its own scale (``scale_pairing``): deterministic, from provenance, before numerics.

A GEMM is handed ``x`` with ``x_scale`` and ``w`` with ``w_scale``.  Nothing
in their shapes says whether they belong together: another activation's
``x_scale``, another layer's ``w_scale``, a fresh ``torch.ones`` or a scale
left over from before a requantization all have the right shape and dtype,
and the precision-matched reference multiplies by whatever scale the kernel
was handed.  Provenance knows:

* **activations** — a guarded producer records its quantized output and its
  scales with one producer call (:class:`~quantguard.engine.provenance.ProducerCall`).
  When both ``x`` and ``x_scale`` have provenance and the calls differ, the
  violation names both producer calls.  Unknown stays silent.
* **weights** — the weight scan (after ``process_weights_after_loading``),
  ``quantguard.scan_weights`` and ``quantguard.attach`` register each ``<name>``/``<name>_scale`` pair
  (:class:`~quantguard.engine.provenance.WeightPairs`).  A registered weight
  handed with another layer's registered scale, with a tensor whose values are
  not its scale's (a fresh ``ones``), with its own scale overwritten after
  loading, or rewritten itself while its scale was not, is reported; so is a
  registered scale handed with a weight other than the one loaded with it when
  that weight has been replaced since loading.  A tensor equal in value to the
  registered scale (a ``.float()`` copy, a per-tensor scale broadcast to
  ``(N,)``) is the same scale.  Weights never registered stay silent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from quantguard.checks._common import dtype_name
from quantguard.checks.base import DataCheck, Finding, Measurement, register_check
from quantguard.contracts.views import GemmView
from quantguard.records import SCALE_SAMPLE, WEIGHT_SAMPLE, fingerprint

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord
    from quantguard.engine.provenance import WeightPair

__all__ = ["ScalePairing", "scale_values_equal"]


def _decoded(tensor: Any) -> Any:
    """Scale values as float64: e8m0 bytes (uint8 or float8_e8m0fnu) as powers of two, floats as they are."""
    import torch

    values = tensor.detach()
    if values.dtype == torch.uint8 or str(values.dtype).endswith("e8m0fnu"):
        raw = values.view(torch.uint8).to(torch.float64)
        return torch.where(raw == 255, torch.zeros_like(raw), torch.exp2(raw - 127))
    return torch.nan_to_num(values.to(torch.float64))


def scale_values_equal(handed: Any, registered: Any) -> Any:
    """A bool tensor: ``handed`` holds the values of ``registered`` (any order, or broadcast from one value).

    The registered values are first rounded to the handed dtype, so a
    ``.float()``/``.bfloat16()`` copy compares equal; nothing is read back.
    """
    import torch

    wanted = _decoded(registered).reshape(-1)
    if handed.is_floating_point() and not str(handed.dtype).endswith("e8m0fnu"):
        wanted = wanted.to(handed.dtype).to(torch.float64)
    got = _decoded(handed).reshape(-1)
    if got.numel() == wanted.numel():
        return (got.sort().values == wanted.sort().values).all()
    if wanted.numel() == 1 or got.numel() % wanted.numel() == 0:
        return torch.isin(got, wanted).all()
    return torch.zeros((), dtype=torch.bool, device=got.device)


def _weight_label(pair: WeightPair, role: str, expert: int | None = None) -> str:
    label = pair.describe(role)
    return f"{label}[{expert}]" if expert is not None else label


def _weight_operands(view: GemmView) -> list[tuple[str, Any, Any]]:
    return [("w", view.w, view.w_scale)] if view.w is not None and view.w_scale is not None else []


@register_check
class ScalePairing(DataCheck):
    name = "scale_pairing"
    reports = ("scale_pairing",)
    summary = "x_scale from x's producer call; w_scale the scale loaded with w (provenance, before numerics)"

    def snapshot(self, call: CallRecord) -> None:
        # before ``scale_provenance`` spends the records: this check reads spent ones too
        view = call.view
        if not isinstance(view, GemmView):
            return
        runtime = call.runtime
        store = runtime.provenance
        if len(runtime.layer_hooks) > len(store.weights.attached):
            from quantguard.checks.weights import register_attached_models

            register_attached_models(runtime)
        found: dict[str, Any] = {}
        if view.x_scale is not None and view.x is not None:
            x = store.lookup(view.x, within=True, spent=True)
            scale = store.lookup(view.x_scale, within=True, spent=True)
            if (
                x is not None
                and scale is not None
                and x.role == "quantized"
                and scale.role == "scales"
                and x.call is not None
                and scale.call is not None
                and x.call.pair_id != scale.call.pair_id
            ):
                found["activation"] = (x.call, scale.call)
        if len(store.weights):
            found["weights"] = [
                self._weight_case(store.weights, operand, w, w_scale) for operand, w, w_scale in _weight_operands(view)
            ]
            found["weights"] = [case for case in found["weights"] if case is not None]
        if found.get("activation") or found.get("weights"):
            call.scratch["scale_pairing"] = found

    @staticmethod
    def _weight_case(weights: Any, operand: str, w: Any, w_scale: Any) -> dict[str, Any] | None:
        as_weight = weights.find(w, "weight")
        as_scale = weights.find(w_scale, "scale")
        case: dict[str, Any] = {"operand": operand, "w": w, "w_scale": w_scale}
        if as_weight:
            pair, start, stop = as_weight[0]
            case["pair"] = pair
            own = [(p, s, e) for p, s, e in as_scale if p is pair]
            if own:
                case["kind"] = "own"
                weight_expert = pair.expert_of("weight", start, stop)
                scale_expert = pair.expert_of("scale", own[0][1], own[0][2])
                if weight_expert is not None and scale_expert is not None and weight_expert != scale_expert:
                    case.update(kind="expert", experts=(weight_expert, scale_expert))
            elif as_scale:
                case.update(kind="other", other=as_scale[0][0])
            elif pair.scale_replaced():
                case["kind"] = "scale_gone"  # its own scale was freed or its storage replaced after loading
            else:
                case["kind"] = "foreign"
            return case
        if as_scale:
            pair = as_scale[0][0]
            if pair.weight_replaced():
                case.update(kind="orphan", pair=pair)
                return case
        return None

    def measure(self, call: CallRecord) -> Measurement | None:
        found = call.scratch.get("scale_pairing")
        if not found:
            return None
        tensors: dict[str, Any] = {}
        for number, case in enumerate(found.get("weights", ())):
            pair = case["pair"]
            if case["kind"] == "own":
                weight, scale = pair.weight_tensor(), pair.scale_tensor()
                if weight is None or scale is None or pair.weight_print is None or pair.scale_print is None:
                    continue
                # compared on the device: int64 sums would not survive the float64 trip to the host
                tensors[f"{number}_w_changed"] = (fingerprint(weight, WEIGHT_SAMPLE) != pair.weight_print).any()
                tensors[f"{number}_s_changed"] = (fingerprint(scale, SCALE_SAMPLE) != pair.scale_print).any()
            elif case["kind"] == "foreign":
                registered = pair.scale_tensor()
                if registered is not None:
                    tensors[f"{number}_same"] = scale_values_equal(case["w_scale"], registered)
        return Measurement(tensors, found)

    def judge(self, call: CallRecord, measurement: Measurement, values: Mapping[str, Any]) -> Iterable[Finding]:
        found = measurement.context
        view = call.view
        findings = []
        if found.get("activation"):
            x_call, scale_call = found["activation"]
            findings.append(
                Finding(
                    "scale_pairing",
                    f"x_scale is not x's: {view.kernel} got x quantized by {x_call.describe()} and x_scale written by "
                    f"{scale_call.describe()}",
                    details={
                        "x_producer": x_call.as_dict(),
                        "x_scale_producer": scale_call.as_dict(),
                        "x_shape": list(view.x.shape),
                        "x_scale_shape": list(view.x_scale.shape),
                    },
                    variant="x_scale",
                )
            )
        for number, case in enumerate(found.get("weights", ())):
            finding = self._judge_weight(view, number, case, values)
            if finding is not None:
                findings.append(finding)
        return findings

    @staticmethod
    def _judge_weight(
        view: GemmView, number: int, case: Mapping[str, Any], values: Mapping[str, Any]
    ) -> Finding | None:
        pair, kind, operand = case["pair"], case["kind"], case["operand"]
        w_scale = case["w_scale"]
        details: dict[str, Any] = {
            "layer": pair.layer,
            "weight": pair.describe("weight"),
            "registered_scale": pair.describe("scale"),
            "w_shape": list(case["w"].shape),
            "w_scale_shape": list(w_scale.shape),
            "w_scale_dtype": dtype_name(w_scale.dtype),
            "kind": kind,
        }
        scale_name = f"{operand}_scale"
        if kind == "other":
            other = case["other"]
            details["scale_from"] = other.describe("scale")
            message = (
                f"{scale_name} is not {pair.describe('weight')}'s: {view.kernel} got it with "
                f"{other.describe('scale')}, the scale loaded with {other.describe('weight')}"
            )
        elif kind == "expert":
            weight_expert, scale_expert = case["experts"]
            details["experts"] = [weight_expert, scale_expert]
            message = (
                f"{scale_name} is not its expert's: {view.kernel} got "
                f"{_weight_label(pair, 'weight', weight_expert)} with {_weight_label(pair, 'scale', scale_expert)}"
            )
        elif kind == "orphan":
            replaced = "freed" if pair.weight_tensor() is None else "replaced"
            message = (
                f"{scale_name} was loaded with {pair.describe('weight')}, whose bytes were {replaced} after "
                f"loading: {view.kernel} got it with a weight that was never loaded with it "
                "(requantized without its scale?)"
            )
        elif kind == "scale_gone":
            gone = "freed" if pair.scale_tensor() is None else "replaced"
            details["scale_from"] = "an unregistered tensor"
            message = (
                f"{scale_name} is not {pair.describe('weight')}'s: {pair.describe('scale')}, the scale loaded "
                f"with it, was {gone} after loading and {view.kernel} got an unregistered "
                f"{dtype_name(w_scale.dtype)} {list(w_scale.shape)} tensor instead"
            )
        elif kind == "foreign":
            same = values.get(f"{number}_same")
            if same is None or bool(same):
                return None
            details["scale_from"] = "an unregistered tensor"
            message = (
                f"{scale_name} is not {pair.describe('weight')}'s: {view.kernel} got an unregistered "
                f"{dtype_name(w_scale.dtype)} {list(w_scale.shape)} tensor whose values are not those of "
                f"{pair.describe('scale')}, the scale loaded with it"
            )
        else:  # own scale: was either side rewritten after loading?
            if f"{number}_w_changed" not in values:
                return None
            weight_changed = pair.weight_replaced() or bool(values[f"{number}_w_changed"])
            scale_changed = pair.scale_replaced() or bool(values[f"{number}_s_changed"])
            if weight_changed == scale_changed:
                return None  # intact, or both rewritten in place (re-register through the loader to check it)
            if scale_changed:
                details["scale_from"] = "overwritten after loading"
                message = (
                    f"{pair.describe('scale')} was overwritten after loading: {view.kernel} got "
                    f"{pair.describe('weight')} with scale bytes that are not the ones loaded with it"
                )
            else:
                details["scale_from"] = "loaded with the previous weight"
                message = (
                    f"{pair.describe('weight')} was rewritten after loading but {pair.describe('scale')} "
                    f"was not: {view.kernel} got the new weight with the scale of the old one "
                    "(requantized without its scale?)"
                )
        return Finding("scale_pairing", message, details=details, variant=scale_name)
