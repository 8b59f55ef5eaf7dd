"""prescribe with depth and weight decay: --depth-param none is byte for byte today's output; the JSON
gains the depth factors, the residual multiplier and weight_decay; depth composes with width."""

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import assert_bad_input
from scaleadvise.core.prescribe import PrescribeRequest, prescribe

DATA = Path(__file__).with_name("data")
sys.path.insert(0, str(DATA))
import make_prescribe_none as golden  # noqa: E402

GOLDEN = json.loads((DATA / "prescribe_none.json").read_text())


def test_golden_covers_many_requests():
    assert len(GOLDEN) >= 250


@pytest.mark.parametrize("extra", [(), ("--depth-param", "none")])
def test_depth_param_none_is_bit_identical_to_before(extra):
    """stdout, stderr and exit status of `prescribe --json` before depth and decay (main at ff00ac0;
    the successful outputs as at 312d47c) for 299 requests (every param x optim x 2 widths x 4
    models, and edge cases), hashed."""
    changed = [args for args, digest in GOLDEN.items() if golden.run(args.split(), extra) != digest]
    assert not changed, f"{len(changed)} requests print something else now, e.g. {changed[:3]}"


def _doc(cli, *args):
    code, out, err = cli("prescribe", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_json_gains_depth_and_decay(cli):
    doc = _doc(cli, "--param", "mup", "--optim", "adamw", "--width", "2048", "--depth", "32", "--base-depth", "8",
               "--depth-param", "completep", "--eps", "per-layer", "--weight-decay", "1e-4")
    assert doc["residual_multiplier"] == 0.25
    assert doc["depth"]["depth_param"] == "completep" and doc["depth"]["alpha"] == 1.0
    assert doc["depth"]["factors"]["branch"] == {"multiplier": 0.25, "init": 1.0, "grad": 0.25, "lr": 1.0, "eps": 0.25}
    assert doc["weight_decay"]["convention"] == "torch" and doc["weight_decay"]["lambda"] == 1e-4
    by = {t["name"]: t for t in doc["tensors"]}
    assert by["blocks.31.mlp.up"]["residual"] is True and by["readout"]["residual"] is False
    assert by["blocks.0.attn.q"]["weight_decay"] == pytest.approx(1e-4 / by["blocks.0.attn.q"]["lr"])
    assert by["final_norm"]["weight_decay"] == 0.0
    assert doc["layers"]["hidden"]["weight_decay"] == pytest.approx(1e-4 / doc["layers"]["hidden"]["lr"])
    assert doc["model"]["depth"] == 32


def test_decay_alone_adds_no_depth_keys_and_vice_versa(cli):
    doc = _doc(cli, "--optim", "adamw", "--weight-decay", "1e-4", "--width", "2048")
    assert "depth" not in doc and "residual" not in doc["tensors"][0] and "weight_decay" in doc["tensors"][0]
    doc = _doc(cli, "--depth", "16", "--base-depth", "4", "--depth-param", "depth-mup", "--width", "2048")
    assert "weight_decay" not in doc and "weight_decay" not in doc["tensors"][0]
    assert "weight_decay" not in doc["layers"]["hidden"] and doc["residual_multiplier"] == 0.5


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["stp", "mup", "mfp", "ntk"]), st.sampled_from(["adamw", "sgd", "adam-ps", "adam-atan2"]),
       st.sampled_from([64, 256, 1024]), st.sampled_from([2, 4, 24]), st.sampled_from(["depth-mup", "completep"]),
       st.sampled_from(["constant", "per-layer"]))
def test_depth_composes_with_width(param, optim, width, depth, name, eps):
    """Every tensor: value(width, depth) = value(width, none) x the depth factor of its position."""
    common = dict(param=param, optim=optim, width=width, base_width=128, model="nanodo", head_dim=16,
                  eps=None if optim in ("sgd", "adam-atan2") else ("per-layer" if eps == "per-layer" else None))
    plain = prescribe(PrescribeRequest(**common, depth=depth))
    deep = prescribe(PrescribeRequest(**common, depth=depth, base_depth=6, depth_param=name))
    f = deep.depth["factors"]
    for a, b in zip(plain.tensors, deep.tensors):
        pos = "branch" if b.residual else "trunk"
        assert b.residual == (a.name.startswith("blocks."))
        assert b.lr == pytest.approx(a.lr * f[pos]["lr"], rel=1e-12)
        assert (b.init_std, b.multiplier) == (a.init_std, a.multiplier)  # init: no depth factor
        if a.eps is not None:
            assert b.eps == pytest.approx(a.eps * f[pos]["eps"], rel=1e-12)


def test_human_output_shows_depth_and_decay(cli):
    code, out, err = cli("prescribe", "--optim", "adamw", "--width", "2048", "--depth", "32", "--base-depth", "8",
                         "--depth-param", "completep", "--wd-timescale", "1e9tokens", "--tokens-per-step", "100000")
    assert code == 0, err
    assert "residual multiplier: every residual branch's output x 0.25" in out
    assert "Depth: completep (alpha = 1) at L = 32 from L0 = 8" in out
    assert "timescale τ = 10,000 steps" in out and "convention torch" in out


@pytest.mark.parametrize("args,match", [
    (("--depth", "0", "--base-depth", "8", "--depth-param", "completep"), "--depth: must be a positive integer"),
    (("--depth", "8", "--base-depth", "0", "--depth-param", "completep"), "--base-depth: must be a positive integer"),
    (("--depth", "8", "--depth-param", "completep"), "--depth-param: completep needs base_depth"),
    (("--depth", "8", "--base-depth", "2", "--depth-param", "alpha"), "--depth-param: unknown depth parameterization 'alpha'"),
    (("--model", "mlp", "--depth", "8", "--base-depth", "2", "--depth-param", "completep"), "no residual branches"),
    (("--param", "umup", "--base-depth", "2", "--depth-param", "completep"), "u-muP scales depth"),
    (("--optim", "adamw", "--wd-timescale", "0"), "--wd-timescale: the timescale must be a positive number"),
    (("--optim", "adamw", "--weight-decay", "nan"), "--weight-decay: must be a number >= 0"),
    (("--optim", "adam", "--weight-decay", "1e-4"), "use optim adamw"),
    (("--wd-convention", "torch",), "--wd-convention: needs weight_decay"),
])
def test_bad_input(cli, args, match):
    assert_bad_input(cli, "prescribe", *args, match=match)


def test_base_depth_with_none_is_noted(cli):
    doc = _doc(cli, "--base-depth", "4")
    assert "base_depth (--base-depth) has no effect with depth_param none" in doc["notes"] and "depth" not in doc
