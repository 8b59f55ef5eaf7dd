"""`scaleadvise equiv --width`: the constants that make one parameterization *the same
network* as another (§3.2, B.2), checked per tensor against `prescribe` itself."""

import json
import math
import random

import pytest
import yaml

from tests.helpers import assert_bad_input

K = {"adam": 1, "adam-atan2": 1, "sgd": 2, "adafactor": 0}  # c -= kθ (theory.LR_SHIFT)


def _json(cli, *args: str) -> dict:
    code, out, err = cli(*args)
    assert code == 0, err
    return json.loads(out)


def _by_name(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["tensors"]}


def _assert_same_network(src: dict, dst: dict, k: float, skip_lr: set[str] = frozenset()) -> None:
    """W = m·w: m × init std is W's init; the raw gradient is m × dL/dW, so Adam's step in
    W is m·lr·(direction), SGD's m²·lr·dL/dW, Adafactor's lr·(m·RMS(w))·(direction)."""
    s, d = _by_name(src), _by_name(dst)
    assert s.keys() == d.keys()
    for name in s:
        a, b = s[name], d[name]
        assert math.isclose(a["multiplier"] * a["init_std"], b["multiplier"] * b["init_std"], rel_tol=1e-12), name
        if name not in skip_lr:
            assert math.isclose(a["multiplier"] ** k * a["lr"], b["multiplier"] ** k * b["lr"], rel_tol=1e-12), name


@pytest.mark.parametrize("optim", ["adam", "adam-atan2", "sgd", "adafactor"])
@pytest.mark.parametrize("pair", [("stp", "ntk"), ("ntk", "stp"), ("mup", "mfp"), ("mfp", "mup")])
def test_constants_yaml_makes_prescribe_the_same_network(cli, tmp_path, pair, optim):
    """The user's path: equiv --constants-out, then prescribe the target with those
    constants. Random widths, base widths and source constants (Table C3 'paper' or 1)."""
    rng = random.Random(f"{pair}{optim}")
    src_name, dst_name = pair
    for _ in range(3):
        width, base = rng.randint(8, 5000), rng.choice([64, 128, 256, 1000, 1024])
        lr = 10 ** rng.uniform(-5, -1)
        consts = rng.choice(["default", "paper"]) if optim != "adam-atan2" else "default"
        flags = ["--optim", optim, "--width", str(width), "--base-width", str(base), "--base-lr", repr(lr),
                 "--model", "mlp"]
        path = tmp_path / "c.yaml"
        eq = _json(cli, "equiv", "--param", src_name, "--to-form", dst_name, *flags, "--constants", consts,
                   "--constants-out", str(path), "--json")["at_width"]
        assert eq["exact"] and not eq["lr_not_expressible"]
        src = _json(cli, "prescribe", "--param", src_name, *flags, "--constants", consts, "--json")
        dst = _json(cli, "prescribe", "--param", dst_name, *flags, "--constants", str(path), "--json")
        # the mlp's input layer is a linear map with sigma = fan_in^-1/2 on both sides (no
        # 0.01 table std), so here even mup/mfp need no init change
        assert not eq["init_changed"]
        _assert_same_network(src, dst, K[optim])
        # γ_to = γ_from · b^(kθ): depends on the base width only, never on the width
        gamma = yaml.safe_load(path.read_text())
        for t, layer in eq["layers"].items():
            assert layer["width_independent"]
            assert gamma[t] == pytest.approx(layer["gamma_from"] * base ** (K[optim] * layer["theta"]), rel=1e-12)


def test_prescription_out_is_the_same_network_and_flags_mlp_down(cli, tmp_path):
    """NanoDO's mlp.down has fan-in 4n: its multiplier ratio is (4n)^-θ, not the n^-θ of
    the other hidden matrices, so one LR per layer type misses it by 4^θ = 2."""
    out = tmp_path / "ntk.json"
    flags = ["--optim", "adam", "--width", "512", "--base-width", "128"]
    eq = _json(cli, "equiv", "--param", "stp", "--to-form", "ntk", *flags, "--prescription-out", str(out),
               "--json")["at_width"]
    assert eq["constants_to"] == {"embedding": 1.0, "hidden": pytest.approx(128 ** 0.5), "readout": pytest.approx(128 ** 0.5)}
    assert eq["lr_not_expressible"] == [f"blocks.{i}.mlp.down" for i in range(8)] and not eq["init_changed"]
    down = next(t for t in eq["tensors"] if t["name"] == "blocks.0.mlp.down")
    assert down["lr_factor"] == pytest.approx(2.0, rel=1e-12)
    src = _json(cli, "prescribe", "--param", "stp", *flags, "--json")
    dst = json.loads(out.read_text())
    _assert_same_network(src, dst, 1, skip_lr=set(eq["lr_not_expressible"]))
    s, d = _by_name(src)["blocks.0.mlp.down"], _by_name(dst)["blocks.0.mlp.down"]
    assert d["multiplier"] * d["lr"] == pytest.approx(s["multiplier"] * s["lr"] / 2, rel=1e-12)
    # the document is what train.py reads: its layer LR agrees with its tensors
    assert dst["layers"]["hidden"]["lr"] == pytest.approx(_by_name(dst)["blocks.0.attn.q"]["lr"], rel=1e-15)
    assert dst["constants"] == eq["constants_to"]


def test_mup_to_mfp_prescription_carries_the_embedding_init(cli, tmp_path):
    out = tmp_path / "mfp.json"
    eq = _json(cli, "equiv", "--param", "mup", "--to-form", "mfp", "--optim", "adam", "--width", "256",
               "--base-width", "64", "--prescription-out", str(out), "--json")["at_width"]
    assert eq["init_changed"] == ["embed.tokens", "embed.positions"]
    dst = _by_name(json.loads(out.read_text()))
    assert dst["embed.tokens"]["init_std"] == pytest.approx(1.0) and dst["embed.tokens"]["multiplier"] == 1.0
    # Adam's epsilon does not move with the symmetry: the same network needs eps·m_to/m_from
    q = next(t for t in eq["tensors"] if t["name"] == "blocks.0.attn.q")
    assert q["eps_to"] == pytest.approx(q["eps_from"] / 16) and eq["eps_note"]


def test_alpha1_form_and_width_dependent_gamma(cli):
    eq = _json(cli, "equiv", "--param", "mup", "--to-form", "alpha1", "--optim", "adam", "--width", "256",
               "--base-width", "64", "--model", "mlp", "--json")["at_width"]
    assert eq["exact"] and eq["constants_to"] == {"embedding": 8.0, "hidden": 1.0, "readout": 0.125}
    # u-muP's down-scaled input LR is not part of an abc shift: that γ holds at one width only
    eq = _json(cli, "equiv", "--param", "umup", "--to-form", "alpha1", "--optim", "adam", "--width", "256",
               "--base-width", "64", "--model", "mlp", "--json")["at_width"]
    assert eq["layers"]["embedding"]["width_independent"] is False
    eq = _json(cli, "equiv", "--param", "ntk", "--theta", "0,-0.5,-0.5", "--width", "512", "--base-width", "128",
               "--model", "mlp", "--json")["at_width"]  # NTK moved to SP's (a, b): γ / sqrt(b)
    assert eq["exact"] and eq["constants_to"]["hidden"] == pytest.approx(128 ** -0.5, rel=1e-12)
    code, out, _ = cli("equiv", "--param", "umup", "--to-form", "alpha1", "--width", "256", "--model", "mlp")
    assert code == 0 and "this width only" in out


def test_human_output(cli):
    code, out, _ = cli("equiv", "--param", "stp", "--to-form", "ntk", "--width", "256", "--base-width", "64")
    assert code == 0 and "ntk as the same network as stp at width 256" in out
    assert "blocks.*.mlp.down needs 2×" in out and "epsilon" in out


@pytest.mark.parametrize("args, message", [
    (["equiv", "--param", "stp", "--to-form", "mup", "--width", "256"], "not equivalent"),
    (["equiv", "--param", "stp", "--to-form", "ntk", "--constants-out", "x.yaml"], "--constants-out needs --width"),
    (["equiv", "--param", "stp", "--to-form", "ntk", "--width", "0"], "--width"),
    (["equiv", "--param", "stp", "--to-form", "ntk", "--width", "256", "--constants", "nope.yaml"], "--constants"),
    (["equiv", "--param", "stp", "--to-form", "ntk", "--width", "64", "--head-dim", "32",
      "--constants-out", "/nonexistent/c.yaml"],
     "--constants-out: /nonexistent/c.yaml: directory /nonexistent does not exist"),
])
def test_bad_input(cli, args, message):
    assert_bad_input(cli, *args, match=message)


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_outputs_keep_the_users_umask(cli, tmp_path, mask):
    """--constants-out and --prescription-out are ordinary files: 0666 less the umask (a bare
    mkstemp would make them 0600 whatever the umask)."""
    import stat

    from helpers import umask

    with umask(mask):
        code, _, err = cli("equiv", "--param", "stp", "--to-form", "ntk", "--width", "256", "--base-width", "64",
                           "--constants-out", str(tmp_path / "c.yaml"), "--prescription-out", str(tmp_path / "p.json"))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "p.json"]  # no temp file left
    for name in ("c.yaml", "p.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask
