"""Absolute prescriptions: the JSON contract (docs/CONTRACTS.md), Table C1, C.2 init constants, bad input."""

import json

import pytest

from scaleadvise.errors import UserError
from scaleadvise.core.model import expand, load_model, parameter_count
from scaleadvise.core.prescribe import PrescribeRequest, prescribe

# Table C1: (D, total parameters) for the NanoDO models of the paper.
TABLE_C1 = [(128, 9_858_432), (256, 22_862_592), (512, 58_308_096), (768, 106_336_512),
            (1024, 166_947_840), (1536, 325_919_232), (2048, 535_222_272), (2560, 794_856_960),
            (3072, 1_104_823_296), (4096, 1_875_750_912), (6144, 4_021_585_920), (8192, 6_972_727_296),
            (12288, 15_290_929_152), (16384, 26_830_356_480)]


@pytest.mark.parametrize("width,total", TABLE_C1)
def test_nanodo_parameter_count_matches_table_c1(width, total):
    tensors = expand(load_model("nanodo"), width)
    assert parameter_count(tensors) == total
    assert sum(t.numel for t in tensors if t.name == "embed.tokens") == 32101 * width  # C1 "Embedding"


def test_design_contract_example():
    """The example of the JSON contract (docs/CONTRACTS.md, `prescribe --json`), number for number."""
    doc = prescribe(PrescribeRequest(param="stp", optim="adam", width=16384)).to_dict()
    assert {k: doc[k] for k in ("parameterization", "optimizer", "width", "base_width", "base_lr")} == {
        "parameterization": "stp", "optimizer": "adam", "width": 16384, "base_width": 1024, "base_lr": 0.001}
    emb = doc["layers"]["embedding"]
    assert (emb["a"], emb["b"], emb["c"], emb["g"]) == (0, 0, 0, 0.5)
    assert (emb["init_std"], emb["multiplier"], emb["lr"], emb["eps"]) == (0.01, 1.0, 0.001, 1e-9)
    up = next(t for t in doc["tensors"] if t["name"] == "blocks.0.mlp.up")
    assert up == {**up, "layer_type": "hidden", "shape": [65536, 16384], "init_std": 0.0078125,
                  "multiplier": 1.0, "lr": 6.25e-05, "eps": 1e-09}
    assert doc["stable"] and doc["nontrivial"] and doc["feature_learning"]
    json.dumps(doc)  # serializable as is


def test_real_fan_in_sets_init_std():
    doc = prescribe(PrescribeRequest(param="stp", optim="adam", width=1024)).to_dict()
    by = {t["name"]: t for t in doc["tensors"]}
    assert by["blocks.3.mlp.down"]["init_std"] == pytest.approx((4 * 1024) ** -0.5)  # fan-in 4n
    assert by["blocks.3.attn.q"]["init_std"] == pytest.approx(1024 ** -0.5)
    assert by["embed.positions"]["init_std"] == 0.01  # C.2
    assert by["final_norm"]["init"] == "ones" and by["final_norm"]["init_std"] == 1.0


def test_mup_values_at_width():
    """muP + Adam at 4x the base: multipliers n^-a, LR (n/b)^-c with Table 1's exponents."""
    doc = prescribe(PrescribeRequest(param="mup", optim="adam", width=4096, base_lr=1e-2)).to_dict()
    L = doc["layers"]
    assert L["embedding"]["multiplier"] == pytest.approx(64.0)  # sqrt(4096)
    assert L["embedding"]["init_std"] == pytest.approx(1 / 64)  # exponent 1/2: no 0.01 (C.2)
    assert L["embedding"]["lr"] == pytest.approx(1e-2 / 2)  # (4096/1024)^-1/2
    assert L["hidden"]["lr"] == pytest.approx(1e-2 / 4)
    assert L["readout"]["multiplier"] == pytest.approx(1 / 64) and L["readout"]["lr"] == pytest.approx(1e-2 / 2)
    assert doc["attention_scale"] == "linear"


def test_per_layer_epsilon_follows_gradient_exponent():
    """§4.3: eps_l = base_eps (n/b)^-g_l; MFP hidden gradients fall as n^-1.5."""
    doc = prescribe(PrescribeRequest(param="mfp", optim="adam", width=8192, eps="per-layer", base_eps=1e-9)).to_dict()
    L = doc["layers"]
    assert L["hidden"]["eps"] == pytest.approx(1e-9 * 8 ** -1.5)
    assert L["embedding"]["eps"] == pytest.approx(1e-9 / 8)
    assert L["readout"]["eps"] == pytest.approx(1e-9 / 8)
    assert doc["eps_mode"] == "per-layer"


def test_atan2_has_no_epsilon_and_paper_constants():
    doc = prescribe(PrescribeRequest(param="stp", optim="adam-atan2", width=2048, constants="paper")).to_dict()
    assert all(layer["eps"] is None for layer in doc["layers"].values())
    assert doc["constants"] == {"embedding": 5.357, "hidden": 1.133, "readout": 2.596}  # Table C3, Adam row
    assert doc["layers"]["hidden"]["lr"] == pytest.approx(1e-3 * 1.133 / 2)


def test_umup_unit_init_and_down_scaled_input_lr():
    doc = prescribe(PrescribeRequest(param="umup", optim="adam", width=4096)).to_dict()
    L = doc["layers"]
    assert all(L[t]["b"] == 0 for t in L)  # unit init
    assert L["embedding"]["init_std"] == 1.0
    assert L["embedding"]["c"] == 0.5  # muP class max is 0; u-muP down-scales by 1/sqrt(n)
    assert (L["hidden"]["c"], L["readout"]["c"]) == (0.5, 0.0)


def test_alias_implies_alignment():
    assert prescribe(PrescribeRequest(param="mup-na", optim="adam", width=2048)).to_dict()["alignment"]["alpha"] == 0.5


def test_yang_hu_prescription_reports_no_feature_learning():
    doc = prescribe(PrescribeRequest(param="sp", optim="sgd", width=2048, alignment="yang-hu")).to_dict()
    assert doc["stable"] and not doc["feature_learning"]
    assert any("impossible" in n for n in doc["notes"])


@pytest.mark.parametrize("kwargs,field,match", [
    ({"width": 0}, "width", "width: must be a positive integer"),
    ({"width": 1000}, "width", "not divisible by the head dimension 128"),
    ({"param": "mupp"}, "param", "did you mean 'mup'"),
    ({"optim": "adamm"}, "optim", "did you mean 'adam'"),
    ({"alignment": "0.5,0.5"}, "alignment", "alignment: expected"),
    ({"model": "nanodoo"}, "model", "did you mean 'nanodo'"),
    ({"eps": -1.0}, "eps", "eps: must be a finite number >= 0"),
    ({"optim": "adam-atan2", "eps": 1e-8}, "eps", "no epsilon"),
    ({"constants": "nope.yaml"}, "constants", "constants: nope.yaml: no such file"),
    ({"param": "umup", "constants": "paper"}, "constants", "no constants for adam x umup"),
    ({"width": 2**53 + 1}, "width", "must be at most 2\\^53"),  # beyond exact floats
    ({"vocab": 10**20}, "vocab", "must be at most 2\\^53"),
    ({"depth": 10**8}, "depth", "more than 100,000 tensors"),   # a typo, refused before the memory goes
    ({"base_lr": float("nan")}, "base_lr", "must be a positive finite number"),
    ({"sgd_readout": "most"}, "sgd_readout", "must be 'preserve' or 'max'"),
    ({"head_dim": 100}, "head_dim", "100 does not divide the width 1024"),
])
def test_bad_requests(kwargs, field, match):
    """Library callers see the request's field names (the CLI maps them to flags)."""
    with pytest.raises(UserError, match=match) as e:
        prescribe(PrescribeRequest(**kwargs))
    assert e.value.field == field and str(e.value).startswith(f"{field}: ")


def test_yaml_model_validation_names_the_field(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("name: x\ndepth: 0\ntensors: [{name: w, shape: [d, d]}]\n")
    with pytest.raises(UserError, match=r"m.yaml: field 'depth'"):
        load_model(str(f))
    f.write_text("name: x\ndepth: 2\ntensors: [{name: w, shape: [d, q]}]\n")
    with pytest.raises(UserError, match="unknown name 'q'"):
        expand(load_model(str(f)), 64)


def test_user_model_classification(tmp_path):
    """The fan-in/fan-out rule on a user's YAML (cheat sheet): input, hidden, output, vectors."""
    f = tmp_path / "m.yaml"
    f.write_text(
        "name: conv\ndepth: 2\ndims: {c_in: 3, classes: 10}\ntensors:\n"
        "  - {name: stem, shape: [d, c_in]}\n  - {name: 'b{i}.w', shape: [2 * d, d], repeat: depth}\n"
        "  - {name: 'b{i}.gain', shape: [2 * d], kind: norm, repeat: depth}\n  - {name: head, shape: [classes, 2 * d]}\n")
    types = {t.name: (t.layer_type, t.scale_dim) for t in expand(load_model(str(f)), 64)}
    assert types == {"stem": ("embedding", 64), "b0.w": ("hidden", 64), "b0.gain": ("embedding", 128),
                     "b1.w": ("hidden", 64), "b1.gain": ("embedding", 128), "head": ("readout", 128)}
