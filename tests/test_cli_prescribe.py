"""The prescribe/check/equiv/presets commands as a user runs them."""

import json

import pytest


def test_prescribe_defaults_run(cli):
    code, out, err = cli("prescribe")
    assert code == 0 and "stp + adam at width 16,384" in out and "blocks.*.mlp.up" in out


def test_prescribe_json_contract(cli):
    code, out, _ = cli("prescribe", "--param", "mup", "--optim", "sgd", "--width", "4096", "--alignment", "none",
                       "--model", "nanodo", "--json")
    doc = json.loads(out)
    assert code == 0
    assert set(doc["layers"]) == {"embedding", "hidden", "readout"}
    for layer in doc["layers"].values():
        assert {"a", "b", "c", "g", "init_std", "multiplier", "lr", "eps"} <= set(layer)
    assert {"name", "layer_type", "shape", "init_std", "multiplier", "lr", "eps"} <= set(doc["tensors"][0])
    assert doc["layers"]["hidden"]["c"] == -0.5  # Table 1: muP SGD no-align hidden sqrt(n)
    assert {"stable", "nontrivial", "feature_learning"} <= set(doc)


def test_prescribe_yaml(cli):
    import yaml

    code, out, _ = cli("prescribe", "--yaml", "--width", "2048")
    assert code == 0 and yaml.safe_load(out)["width"] == 2048


def test_custom_parameterization(cli):
    code, out, _ = cli("prescribe", "--param", "custom", "--a", "0,0.5,0.5", "--b", "0,0,0", "--json", "--width", "2048")
    assert code == 0 and json.loads(out)["layers"]["hidden"]["c"] == 0.5  # NTK-like, Adam full


def test_check_command(cli):
    code, out, _ = cli("check", "--a", "0,0,0", "--b", "0,0.5,0.5", "--c", "0,1,1", "--optim", "adam",
                       "--alignment", "0.8,0.5,0.8", "--json")
    doc = json.loads(out)
    # Stable; r_L = 0 through the embedding's Θ(1) change (the W·Δz term), while the
    # hidden LR 1/n sits n^0.2 below its maximum 1/n^0.8.
    assert code == 0 and doc["stable"] and doc["feature_learning"] and doc["nontrivial"]
    assert doc["max_stable_c"] == {"embedding": 0.0, "hidden": 0.8, "readout": 0.8}
    hidden = [k for k in doc["constraints"] if k["layer"] == "hidden" and k["name"] == "activations"]
    assert hidden[0]["value"] == 0.0
    code, out, _ = cli("check", "--a", "0,0,0", "--b", "0,0.5,0.5", "--c", "0,0,0")
    assert code == 0 and "NO (short by 1)" in out


def test_equiv_command(cli):
    code, out, _ = cli("equiv", "--param", "mfp", "--to-form", "mup", "--optim", "adam", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["equivalent"] is True
    assert doc["theta"] == {"embedding": -0.5, "hidden": -0.5, "readout": -0.5}
    code, out, _ = cli("equiv", "--param", "mup", "--to-form", "alpha1", "--optim", "adam", "--json")
    to = json.loads(out)["to"]
    assert to["a"] == {"embedding": 0, "hidden": 0, "readout": 0}
    # the cheat sheet's muP, Adam: sigma 1, 1/sqrt(d), 1/d and eta 1, 1/d, 1/d
    assert to["b"] == {"embedding": 0.0, "hidden": 0.5, "readout": 1.0}
    assert to["c"] == {"embedding": 0.0, "hidden": 1.0, "readout": 1.0}
    code, out, _ = cli("equiv", "--param", "stp", "--to-form", "mup", "--optim", "adam")
    assert code == 0 and "not equivalent" in out


def test_presets_command(cli):
    code, out, _ = cli("presets", "--json")
    doc = json.loads(out)
    assert code == 0 and {m["name"] for m in doc["models"]} == {"nanodo", "gpt2", "llama", "mlp"}
    assert "paper" in {c["name"] for c in doc["constants"]}


@pytest.mark.parametrize("args,message", [
    (["prescribe", "--param", "foo"], "unknown parameterization 'foo'"),
    (["prescribe", "--width", "-8"], "--width: must be a positive integer"),
    (["prescribe", "--width", "12.5"], "--width"),
    (["prescribe", "--width", "1000"], "not divisible by the head dimension"),
    (["prescribe", "--alignment", "0.5,x,1"], "--alignment"),
    (["prescribe", "--alignment", "1,0.5,1,1"], "three or six numbers), got '1,0.5,1,1'"),
    (["prescribe", "--alignment", "1,0.5,1,1.2,0.5,1"], "alpha_readout = 1.2 is outside [0, 1]"),
    (["prescribe", "--omega-readout", "2"], "omega_readout = 2 is outside [0, 1]"),
    (["prescribe", "--model", "missing.yaml"], "missing.yaml: no such file"),
    (["prescribe", "--eps", "tiny"], "--eps"),
    (["prescribe", "--param", "custom"], "--param custom needs --a and --b"),
    (["prescribe", "--no-such-flag"], "No such option"),
    (["check", "--a", "0,0", "--b", "0,0.5,0.5", "--c", "0,1,1"], "--a: expected three numbers"),
    (["equiv", "--param", "mup"], "needs --to-form"),
])
def test_bad_input_is_one_line_exit_2(cli, args, message):
    code, out, err = cli(*args)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == ""


def test_help_has_examples(cli):
    for cmd in ("prescribe", "check", "equiv", "presets"):
        code, out, _ = cli(cmd, "--help")
        assert code == 0 and "Examples" in out and f"scaleadvise {cmd}" in out
