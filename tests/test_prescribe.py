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


# ---------------------------------------------------------------------------- issue 10


def _lrs(**kw) -> dict[str, float]:
    pres = prescribe(PrescribeRequest(tensors=False, **kw))
    return {t: v.lr for t, v in pres.layers.items()}


@pytest.mark.parametrize("base_width", [32, 256, 1024, 4096])
def test_paper_constants_ratios_do_not_depend_on_base_width(base_width):
    """Table C3 was tuned at base width 1024 (C.4): at width 256 the hidden/embedding LR
    ratio is gamma_h/gamma_e (256/1024)^-(c_h - c_e) = 1.133/5.357 x 4 = 0.846 whatever
    base width the user states (it was 0.211 with --base-width 256 before the constants
    carried their base width)."""
    lr = _lrs(param="stp", optim="adam", width=256, base_width=base_width, constants="paper")
    assert lr["hidden"] / lr["embedding"] == pytest.approx(1.133 / 5.357 * 4, rel=1e-12)
    assert lr["readout"] / lr["embedding"] == pytest.approx(2.596 / 5.357 * 4, rel=1e-12)


def test_paper_constants_are_converted_and_say_so():
    pres = prescribe(PrescribeRequest(param="stp", optim="adam", width=256, base_width=256, constants="paper"))
    assert pres.constants == pytest.approx({"embedding": 5.357, "hidden": 1.133 * 4, "readout": 2.596 * 4})
    assert "tuned at base width 1024, converted to base width 256" in pres.constants_source
    same = prescribe(PrescribeRequest(param="stp", optim="adam", width=256, constants="paper"))
    assert same.constants == {"embedding": 5.357, "hidden": 1.133, "readout": 2.596}
    assert "converted" not in same.constants_source and "tuned at base width 1024" in same.constants_source


def test_user_constants_file_carries_its_base_width(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("base_width: 64\nembedding: 2.0\nhidden: 0.5\nreadout: 1.0\n")
    at_64 = _lrs(param="mup", optim="adam", width=512, base_width=64, constants=str(f), base_lr=1e-2)
    at_128 = _lrs(param="mup", optim="adam", width=512, base_width=128, constants=str(f), base_lr=1e-2)
    assert at_64 == pytest.approx(at_128, rel=1e-12)  # the same LRs: base_lr is the LR at the tuned width
    f.write_text("embedding: 2.0\nhidden: 0.5\nreadout: 1.0\n")  # no base width: taken as the user's
    assert _lrs(param="mup", optim="adam", width=512, base_width=64, constants=str(f))["hidden"] == \
        pytest.approx(1e-3 * 0.5 * 8 ** -1)


@pytest.mark.parametrize("optim,alignment", [("adam", "full"), ("adamw", "full"), ("adam-atan2", "full"),
                                             ("sgd", "full"), ("adafactor", "none"), ("adam-ps", "none")])
def test_alignment_default_follows_the_paper_per_family(optim, alignment):
    """§4.2.2: no alignment for Adam + parameter scaling / Adafactor (its constants transfer
    negatively under full alignment); §4.2.1: full alignment for Adam."""
    pres = prescribe(PrescribeRequest(param="stp", optim=optim, width=4096, tensors=False))
    want = prescribe(PrescribeRequest(param="stp", optim=optim, width=4096, alignment=alignment, tensors=False))
    assert pres.alignment == want.alignment
    words = {"full": "full alignment", "none": "no alignment"}[alignment]
    assert pres.alignment_source.startswith(f"default for {pres.family.value}: {words}")
    assert want.alignment_source == f"--alignment {alignment}"


def test_adafactor_default_is_one_global_lr():
    """Table 1, right column: with no alignment every layer of every parameterization takes
    an O(1) LR under Adafactor, i.e. the global LR the paper recommends (§4.2.2)."""
    for param in ("stp", "ntk", "mup", "mfp"):
        pres = prescribe(PrescribeRequest(param=param, optim="adam-ps", width=8192, tensors=False))
        assert {t: v.c for t, v in pres.layers.items()} == {"embedding": 0, "hidden": 0, "readout": 0}


@pytest.mark.parametrize("depth,c_embedding", [(2, 0.2), (4, 0.4), (8, 0.8)])
def test_the_chain_of_hidden_layers_reaches_the_solver(depth, c_embedding):
    """With omega = 0.6 on hidden layers each one shrinks the residual by 0.1 (Table 2:
    1/2 + r - omega), so the embedding must move less the more hidden layers follow:
    c_emb = 0.1 x hidden layers (it was 0.2 for every depth)."""
    pres = prescribe(PrescribeRequest(param="stp", optim="adam", model="mlp", depth=depth, width=4096,
                                      alignment="1,0.6,1", omega_readout=0.5, tensors=False))
    assert pres.model.hidden_chain == depth
    assert pres.layers["embedding"].c == pytest.approx(c_embedding)


def test_transformer_chain_is_four_dense_layers_per_block():
    pres = prescribe(PrescribeRequest(param="stp", optim="adam", width=1024, depth=3, tensors=False,
                                      alignment="1,0.55,1", omega_readout=0.5))
    assert pres.model.hidden_chain == 12  # v -> o and up -> down per block (core/model.py)
    assert pres.layers["embedding"].c == pytest.approx(12 * 0.05)
    at_half = prescribe(PrescribeRequest(param="stp", optim="adam", width=1024, depth=3, tensors=False))
    assert at_half.layers["embedding"].c == 0  # omega = 1/2: the chain does not matter (Table 1)


def test_adafactor_per_layer_epsilon_scales_with_the_square_of_the_gradient():
    """Adafactor adds eps to g² (v), not to sqrt(v): eps_l = base_eps (n/b)^-2g_l; Adam and
    Adam + parameter scaling add it to sqrt(v): (n/b)^-g_l (§4.3)."""
    kw = dict(param="mfp", width=8192, eps="per-layer", base_eps=1e-30, tensors=False)
    ada = prescribe(PrescribeRequest(optim="adafactor", **kw))
    ps = prescribe(PrescribeRequest(optim="adam-ps", **kw))
    for t, g in (("embedding", 1.0), ("hidden", 1.5), ("readout", 1.0)):  # MFP gradients (Table 1)
        assert ada.layers[t].g == ps.layers[t].g == g
        assert ada.layers[t].eps == pytest.approx(1e-30 * 8.0 ** (-2 * g))
        assert ps.layers[t].eps == pytest.approx(1e-30 * 8.0 ** -g)
        assert ada.layers[t].eps_exponent == 2 * g


def test_umup_norm_gains_keep_a_width_independent_lr():
    """u-muP down-scales the input *weights'* LR only; in unit_scaling.optim norm gains and
    biases get no width factor (it was 0.001 -> 0.0005 at 4x width)."""
    pres = prescribe(PrescribeRequest(param="umup", optim="adam", width=4096, base_width=1024))
    assert pres.tensor("embed.tokens").lr == pytest.approx(1e-3 / 2)
    assert pres.tensor("final_norm").lr == pytest.approx(1e-3)
    assert pres.tensor("blocks.0.attn_norm").lr == pytest.approx(1e-3)
    assert any("unit-scaled ops" in n for n in pres.notes)


def test_fixed_tensors_take_no_exponent(tmp_path):
    """A tensor none of whose dimensions grows (a readout bias [classes]) keeps its own
    init, the base LR and the base epsilon."""
    f = tmp_path / "m.yaml"
    f.write_text("name: clf\ndepth: 1\ndims: {classes: 10}\ntensors:\n"
                 "  - {name: w, shape: [d, 3]}\n  - {name: h, shape: [d, d]}\n"
                 "  - {name: head, shape: [classes, d]}\n  - {name: head.bias, shape: [classes], kind: bias}\n")
    pres = prescribe(PrescribeRequest(param="mup", optim="adam", model=str(f), width=256, base_width=64))
    bias = pres.tensor("head.bias")
    assert (bias.layer_type, bias.init, bias.lr, bias.eps, bias.multiplier) == ("fixed", "keep", 1e-3, 1e-9, 1.0)
