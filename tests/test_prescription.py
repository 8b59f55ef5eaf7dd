"""core/prescription.py: the typed result and ``to_dict()``, the JSON contract of
``prescribe --json`` (every field in docs/CONTRACTS.md, checked by tests/test_contracts.py)."""

import json

import pytest

from scaleadvise.core.prescribe import PrescribeRequest, prescribe

CONTRACT_ORDER = ["parameterization", "optimizer", "optimizer_family", "width", "base_width", "base_lr", "alignment",
                  "alignment_source", "constants", "constants_source", "eps_mode", "base_eps", "attention_scale",
                  "layers", "model", "stable", "nontrivial", "feature_learning", "violations", "notes", "tensors"]


@pytest.fixture(scope="module")
def pres():
    return prescribe(PrescribeRequest(param="mup", optim="adam", width=2048, base_width=256, base_lr=1e-2))


def test_field_order(pres):
    assert list(pres.to_dict()) == CONTRACT_ORDER
    assert "tensors" not in pres.to_dict(tensors=False)
    with_command = prescribe(PrescribeRequest(width=2048, command="scaleadvise prescribe --width 2048"))
    assert list(with_command.to_dict())[-1] == "command"


def test_values_are_the_attributes(pres):
    doc = pres.to_dict()
    assert doc["optimizer_family"] == "adam" and doc["attention_scale"] == "linear"  # muP: 1/head_dim (C.2)
    assert doc["layers"]["hidden"] == {**doc["layers"]["hidden"], "a": 0.0, "b": 0.5, "c": 1.0,
                                       "lr": pytest.approx(1e-2 / 8)}  # (2048/256)^-1
    assert doc["model"] == {**doc["model"], "name": "nanodo", "width": 2048, "heads": 16, "ffn": 8192,
                            "vocab": 32101, "context": 512, "hidden_chain": 32}
    assert doc["tensors"][0]["name"] == "embed.tokens"
    json.dumps(doc)  # plain JSON as it is


def test_the_document_is_a_copy(pres):
    doc = pres.to_dict()
    doc["layers"]["hidden"]["lr"] = 1.0
    doc["tensors"][0]["lr"] = 1.0
    doc["notes"].append("x")
    assert pres.layers["hidden"].lr != 1.0 and pres.tensors[0].lr != 1.0 and "x" not in pres.notes


def test_tensor_lookup(pres):
    up = pres.tensor("blocks.3.mlp.up")
    assert (up.layer_type, up.shape, up.scale_dim) == ("hidden", [8192, 2048], 2048)
    assert pres.tensor("blocks.3.mlp.down").scale_dim == 8192  # fan-in 4n
    with pytest.raises(KeyError):
        pres.tensor("blocks.99.mlp.up")
