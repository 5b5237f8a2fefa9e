"""Signature keys: the named constructors, and the older string form users' own contracts may still use."""

from __future__ import annotations

import pytest

from quantguard.contracts import Contract, KeyParam, identity, optional, strided, tensor, value


def _contract(key):
    return Contract(target="mylib.ops.gemm", kind="gemm", backend="triton", key=key)


def test_each_constructor_names_its_kind():
    assert [tensor("x"), strided("x"), identity("x"), optional("x"), value("x")] == [
        KeyParam("x", kind) for kind in ("tensor", "strided", "identity", "optional", "value")
    ]


def test_the_string_form_is_converted_to_the_same_key():
    named = _contract((tensor("x"), identity("w"), strided("x_scale"), optional("bias"), value("dtype")))
    spelled = _contract(("x", "w@", "x_scale+", "bias?", "dtype="))
    assert spelled.key == named.key == named.key_params
    assert spelled == named


def test_forms_mix_and_survive_replace():
    import dataclasses

    contract = _contract(("x", value("dtype")))
    assert dataclasses.replace(contract, target="mylib.ops.other").key == (tensor("x"), value("dtype"))


@pytest.mark.parametrize("entry", ["x!", "", "+", "2x", "w@@"])
def test_a_bad_string_entry_is_a_clear_error(entry):
    with pytest.raises(ValueError, match="expected a parameter name with an optional suffix"):
        _contract((entry,))


def test_a_bad_name_or_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="expected a parameter name"):
        tensor("x_scale+")
    with pytest.raises(ValueError, match="kind 'weight' is not one of"):
        KeyParam("w", "weight")
