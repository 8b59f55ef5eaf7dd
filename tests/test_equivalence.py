"""core/equivalence.py. The constants themselves (no torch): gamma_to = gamma_from · b^(kθ),
the tensors one LR per layer type cannot match, the init stds that move. Then §3.2 at
finite precision, the small case of examples/equivalence: SP and NTK with the
constants `scaleadvise equiv` prints train the same NanoDO under Adam-atan2 (C.5), and a
constant Adam epsilon breaks the symmetry (§4.3).

Why the tolerance can be this tight: at width 64 every multiplier ratio between SP and
NTK is a power of two (64^-1/2 = 1/8) and so is every LR ratio (base width 64: γ = 8),
so each product the two runs compute differs by an exact power of two; forward pass,
gradients, Adam's moments, sqrt(v) and the update are then the same floats, and the
loss curves agree bit for bit (measured: 0.0 over 25 steps; examples/equivalence finds
0.0 over 100 steps at widths 64 and 256). TOL allows two float32 ulps of a loss near 5
(ulp 4.8e-7) in case a platform's atan2 is not exactly scale-invariant. It is tight
enough to see one layer type's LR constant off by a relative 1e-5 (measured: the curves
then differ by 2.4e-6 to 6.9e-6; 1e-6 gives 9.5e-7, within TOL); the mistakes below --
the unadjusted base LR, mlp.down's LR off by 2x, an epsilon comparable to sqrt(v) --
move the curve by more than 1e-4.
"""

import json

import pytest

from scaleadvise.core.equivalence import equivalent_constants
from scaleadvise.core.parameterizations import get_parameterization

from helpers import nanodo_yaml  # noqa: E402

TOL = 1e-6
STEPS = 25
MODEL = nanodo_yaml(width=64, depth=1, ffn="d")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    pytest.importorskip("torch")
    from scaleadvise.corpus import build_corpus

    root = tmp_path_factory.mktemp("equivalence")
    (root / "model.yaml").write_text(MODEL)
    ffn4 = MODEL.replace("ffn: d}", "ffn: 4 * d}")
    (root / "model4.yaml").write_text(ffn4)
    corpus = build_corpus(root / "corpus.txt", 1 << 16)
    return root, corpus["path"]


def _prescriptions(cli, root, optim: str, model: str = "model.yaml", a: str = "stp", b: str = "ntk") -> tuple:
    flags = ["--optim", optim, "--width", "64", "--base-width", "64", "--base-lr", "0.004",
             "--model", str(root / model)]
    code, out, err = cli("prescribe", "--param", a, *flags, "--json")
    assert code == 0, err
    path = root / f"{a}-{b}-{optim}-{model}.json"
    code, out2, err = cli("equiv", "--param", a, "--to-form", b, *flags, "--prescription-out", str(path), "--json")
    assert code == 0, err
    code, out3, err = cli("prescribe", "--param", b, *flags, "--json")  # the tool's own B: unadjusted
    assert code == 0, err
    return json.loads(out), json.loads(path.read_text()), json.loads(out3), json.loads(out2)["at_width"]


def _losses(root, data, prescription: dict, name: str, eps: float | None = None) -> list[float]:
    import csv

    from scaleadvise.script.emit import script_prescription
    from scaleadvise.script.template.train import main

    out = root / name
    argv = ["--data", str(data), "--steps", str(STEPS), "--batch-size", "4", "--log-every", "1",
            "--eval-every", str(STEPS), "--eval-batches", "1", "--grads-every", "0", "--align-every", "0",
            "--device", "cpu", "--dtype", "fp32", "--out", str(out)]
    block = script_prescription(prescription, depth_free=False)  # the emitted script's data block
    assert main(argv + ([] if eps is None else ["--eps", repr(eps)]), prescription=block) == 0
    with open(out / "metrics.csv") as f:
        return [float(r["train_loss"]) for r in csv.DictReader(f)]


def _max_diff(x: list[float], y: list[float]) -> float:
    assert len(x) == len(y) == STEPS
    return max(abs(p - q) for p, q in zip(x, y))


def test_sp_and_ntk_match_under_adam_atan2(cli, setup, one_torch_thread):
    root, data = setup
    sp, ntk, ntk_default, eq = _prescriptions(cli, root, "adam-atan2")
    assert eq["exact"] and eq["constants_to"] == {"embedding": 1.0, "hidden": 8.0, "readout": 8.0}
    a = _losses(root, data, sp, "sp")
    b = _losses(root, data, ntk, "ntk")
    assert a[-1] < a[0] - 1.0  # it trains: the comparison is between moving curves
    assert _max_diff(a, b) <= TOL
    # the tolerance discriminates: NTK at the tool's own constants (γ = 1, the unadjusted
    # base LR) is a different network and a different trajectory
    assert _max_diff(a, _losses(root, data, ntk_default, "ntk-default")) > 1000 * TOL


def test_one_lr_per_layer_type_misses_mlp_down_when_ffn_is_4d(cli, setup, one_torch_thread):
    root, data = setup
    sp, ntk, _, eq = _prescriptions(cli, root, "adam-atan2", "model4.yaml")
    assert eq["lr_not_expressible"] == ["blocks.0.mlp.down"]  # fan-in 4n: needs 2x its layer's LR
    assert _max_diff(_losses(root, data, sp, "sp4"), _losses(root, data, ntk, "ntk4")) > 100 * TOL


def test_mup_and_mfp_match_under_adam_atan2(cli, setup, one_torch_thread):
    root, data = setup
    mup, mfp, _, eq = _prescriptions(cli, root, "adam-atan2", a="mup", b="mfp")
    assert eq["init_changed"] == ["embed.tokens", "embed.positions"]  # C.2's 0.01 std undone
    assert _max_diff(_losses(root, data, mup, "mup"), _losses(root, data, mfp, "mfp")) <= TOL


def test_constant_epsilon_breaks_the_symmetry(cli, setup, one_torch_thread):
    """NTK's raw gradients (and sqrt(v)) are 8x smaller than SP's in the hidden and readout
    layers at width 64; eps = 1e-4 is comparable to them, and weighs 8x more on NTK's side.
    A negligible eps (1e-30: turns Adam's 0/0 on unseen token rows into 0, eps = 0 gives NaN)
    keeps the curves equal."""
    root, data = setup
    sp, ntk, _, _ = _prescriptions(cli, root, "adam")
    assert _max_diff(_losses(root, data, sp, "sp-e30", 1e-30), _losses(root, data, ntk, "ntk-e30", 1e-30)) <= TOL
    assert _max_diff(_losses(root, data, sp, "sp-e4", 1e-4), _losses(root, data, ntk, "ntk-e4", 1e-4)) > 1000 * TOL


# ------------------------------------------------------------------ the constants, without training

COMMON = {"width": 256, "base_width": 64, "base_lr": 1e-3, "alignment": None, "omega_readout": None,
          "model": "nanodo", "depth": 1, "head_dim": None}


@pytest.mark.parametrize("optim,k,gamma", [("sgd", 2.0, 64.0), ("adam", 1.0, 8.0), ("adafactor", 0.0, 1.0)])
def test_stp_to_ntk_gamma_is_b_to_the_k_theta(optim, k, gamma):
    """θ = a_ntk - a_stp = (0, 1/2, 1/2); at base width b = 64 the target's gamma is the
    source's times b^(kθ) on hidden and readout, 1 on the embedding (§3.2, B.2)."""
    summary, doc = equivalent_constants("stp", "default", get_parameterization("ntk"), k, {"optim": optim, **COMMON})
    assert summary["constants_to"] == {"embedding": 1.0, "hidden": gamma, "readout": gamma}
    assert doc["constants"] == summary["constants_to"] and doc["parameterization"] == "ntk"
    for t, layer in summary["layers"].items():
        assert layer["width_independent"] and layer["theta"] == (0.0 if t == "embedding" else 0.5)
        assert layer["gamma_ratio"] == layer["gamma_to"] / layer["gamma_from"]


def test_lr_times_multiplier_to_the_k_is_kept_per_tensor():
    summary, doc = equivalent_constants("stp", "default", get_parameterization("ntk"), 1.0, {"optim": "adam", **COMMON})
    src = {t["name"]: t for t in equivalent_constants("stp", "default", get_parameterization("stp"), 1.0,
                                                      {"optim": "adam", **COMMON})[1]["tensors"]}
    for row in summary["tensors"]:
        lr_src = src[row["name"]]["lr"]
        # m_to/m_from = multiplier_ratio; under Adam m·lr is what moves W (k = 1)
        assert row["lr_to"] * row["multiplier_ratio"] * row["lr_factor"] == pytest.approx(lr_src, rel=1e-12)


def test_a_fan_in_of_4n_is_not_expressible_with_one_lr_per_layer_type():
    summary, _ = equivalent_constants("stp", "default", get_parameterization("ntk"), 1.0, {"optim": "adam", **COMMON})
    assert summary["lr_not_expressible"] == ["blocks.0.mlp.down"] and not summary["exact"]
    down = next(r for r in summary["tensors"] if r["name"] == "blocks.0.mlp.down")
    assert down["lr_factor"] == pytest.approx(2.0)  # (4n)^-1/2 against n^-1/2: sqrt(4)


def test_mup_to_mfp_moves_the_embedding_init_and_has_no_epsilon_note_under_atan2():
    summary, doc = equivalent_constants("mup", "default", get_parameterization("mfp"), 1.0,
                                        {"optim": "adam-atan2", **COMMON})
    assert summary["constants_to"] == {"embedding": 8.0, "hidden": 8.0, "readout": 8.0}  # θ = 1/2 everywhere
    assert summary["init_changed"] == ["embed.tokens", "embed.positions"]  # C.2's 0.01 std undone
    assert summary["eps_note"] is None
    # muP's table: multiplier n^1/2 = 16 times std n^-1/2 = 1/16 (b != 0: sigma 1); mfp's multiplier is 1,
    # so the same W needs std 1, 100x mfp's own 0.01 (C.2)
    tokens = next(t for t in doc["tensors"] if t["name"] == "embed.tokens")
    row = next(r for r in summary["tensors"] if r["name"] == "embed.tokens")
    assert tokens["init_std"] == pytest.approx(1.0) and row["init_factor"] == pytest.approx(100.0)
