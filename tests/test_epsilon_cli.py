"""`scaleadvise epsilon` as a user runs it: JSON contract, single measurements, plots, bad input."""

import csv
import json
import math

import pytest

BASE = 1024


def write_grads(path, layers, widths=(128, 256, 512, 1024), steps=(100, 200, 300), sqrt_v_factor=None, header=None):
    """layers: name -> (g, value at width 1024); exact power laws, noise alternating by step."""
    cols = header or ["width", "layer", "step", "grad_rms"] + (["sqrt_v_rms"] if sqrt_v_factor else [])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for n in widths:
            for i, step in enumerate(steps):
                for name, (g, at_base) in layers.items():
                    v = at_base * (n / BASE) ** -g * (1 + 0.01 * (i - 1))
                    w.writerow([n, name, step, v] + ([v * sqrt_v_factor] if sqrt_v_factor else []))
    return path


MFP_LIKE = {"embed.tokens": (1.0, 2e-6), "blocks.0.mlp.up": (1.5, 3e-7), "blocks.1.attn.q": (1.5, 2e-7),
            "readout": (1.0, 1e-5)}


def test_json_contract_and_analytic_crossings(cli, tmp_path):
    path = write_grads(tmp_path / "grads.csv", MFP_LIKE)
    code, out, err = cli("epsilon", str(path), "--eps", "1e-8", "--param", "mfp", "--optim", "adam",
                         "--target-width", "16384", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc["layers"]) == set(MFP_LIKE)
    for name, (g, at_base) in MFP_LIKE.items():
        L = doc["layers"][name]
        assert {"g_measured", "g_measured_ci", "g_theory", "underflow_width", "v_underflow_width",
                "recommendation"} <= set(L)
        assert L["g_measured"] == pytest.approx(g, abs=1e-6)
        assert L["g_theory"] == g  # mfp: embedding 1, hidden 1.5, readout 1 (Table 1)
        assert L["g_measured_ci"][0] <= g <= L["g_measured_ci"][1]
        for key, ratio in (("0.01", 0.01), ("0.1", 0.1), ("1", 1.0)):
            # geometric mean over the steps' ±1% factors is (0.99·1.01)^(1/3) of the exact value
            at = at_base * (0.99 * 1.01) ** (1 / 3)
            assert L["underflow_width"][key] == pytest.approx(BASE * (at * ratio / 1e-8) ** (1 / g), rel=1e-6)
        assert set(L["v_underflow_width"]) == {"fp32", "bf16", "fp16"}
        assert L["recommendation"]["action"] in {"keep", "smaller-constant", "per-layer", "adam-atan2"}
    assert doc["recommendation"]["action"] == "smaller-constant"
    assert doc["recommendation"]["eps"] == 1e-11  # 0.01 · 2e-7 · 16^-1.5 = 3.1e-11 -> 1e-11


def test_sqrt_v_column_is_preferred_for_predictions(cli, tmp_path):
    path = write_grads(tmp_path / "grads.csv", {"blocks.0.mlp.up": (1.5, 3e-7)}, sqrt_v_factor=2.0)
    code, out, _ = cli("epsilon", str(path), "--eps", "1e-8", "--param", "mfp", "--json")
    L = json.loads(out)["layers"]["blocks.0.mlp.up"]
    assert L["scale_column"] == "sqrt_v_rms"
    assert L["sqrt_v_at_base_width"] == pytest.approx(2 * 3e-7, rel=1e-3)


def test_single_measurement_form_uses_theory_exponent(cli):
    code, out, err = cli("epsilon", "--param", "mfp", "--width", "16384", "--grad-rms", "hidden=3e-7@1024",
                         "--eps", "1e-8", "--json")
    assert code == 0, err
    doc = json.loads(out)
    L = doc["layers"]["hidden"]
    assert L["exponent_source"] == "theory" and L["g_used"] == 1.5 and L["g_measured"] is None
    assert L["underflow_width"]["1"] == pytest.approx(1024 * 30 ** (1 / 1.5))  # 3e-7 (n/1024)^-1.5 = 1e-8
    assert L["target"]["eps_ratio"] == pytest.approx(1e-8 / (3e-7 * 16**-1.5))
    assert L["target"]["lr_factor"] == pytest.approx(1 / (1 + L["target"]["eps_ratio"]))
    assert any("theory" in n for n in doc["notes"])


def test_single_measurement_human_output_says_it_extrapolates(cli):
    code, out, _ = cli("epsilon", "--param", "mfp", "--width", "16384", "--grad-rms", "hidden=3e-7@1024")
    assert code == 0 and "extrapolated with the theory" in " ".join(out.split())


def test_per_layer_command_reproduces_the_safe_ratio(cli, tmp_path):
    """The printed `prescribe --eps per-layer --base-eps X` keeps eps/sqrt(v) <= 1% at the target."""
    layers = {"blocks.0.mlp.up": (1.5, 1e-11), "readout": (1.0, 1e-9)}
    path = write_grads(tmp_path / "grads.csv", layers, steps=(1,))
    code, out, _ = cli("epsilon", str(path), "--eps", "1e-13", "--param", "mfp", "--target-width", "65536", "--json")
    doc = json.loads(out)
    rec = doc["recommendation"]
    assert code == 0 and rec["action"] == "per-layer"
    argv = rec["command"].split()[1:] + ["--json"]
    code, pres_out, err = cli(*argv)
    assert code == 0, err
    pres = json.loads(pres_out)
    for name, L in doc["layers"].items():
        eps_l = pres["layers"][L["layer_type"]]["eps"]
        assert eps_l / L["target"]["sqrt_v"] <= 0.01 * (1 + 1e-9)


@pytest.mark.parametrize("optim,eps", [("adam", "1e-9"), ("adafactor", "1e-18")])
def test_plot_is_written(cli, tmp_path, optim, eps):
    path = write_grads(tmp_path / "grads.csv", MFP_LIKE)
    png = tmp_path / "eps.png"
    code, out, err = cli("epsilon", str(path), "--eps", eps, "--optim", optim, "--target-width", "16384", "--plot",
                         str(png), "--thresholds", "0.001,0.01,0.1", "--json")
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(out)["plot"] == str(png)
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob("tmp*"))


def test_tensor_names_and_layer_types_both_accepted(cli, tmp_path):
    path = write_grads(tmp_path / "g.csv", {"hidden": (1.0, 1e-6), "blocks.3.attn.o": (1.0, 1e-6)})
    code, out, _ = cli("epsilon", str(path), "--param", "ntk", "--json")
    types = {k: v["layer_type"] for k, v in json.loads(out)["layers"].items()}
    assert code == 0 and types == {"hidden": "hidden", "blocks.3.attn.o": "hidden"}


def test_column_override(cli, tmp_path):
    path = write_grads(tmp_path / "g.csv", {"readout": (0.5, 1e-5)}, header=["D", "layer", "step", "gnorm"])
    code, out, err = cli("epsilon", str(path), "--width-col", "D", "--grad-rms-col", "gnorm", "--json")
    assert code == 0, err
    assert json.loads(out)["layers"]["readout"]["g_measured"] == pytest.approx(0.5, abs=1e-6)


# ------------------------------------------------------------------ bad input: exit 2, one line


from helpers import assert_bad_input as _bad  # noqa: E402


def test_missing_column(cli, tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("width,layer,step\n128,readout,1\n")
    _bad(cli, "epsilon", str(p), match="missing column 'grad_rms'")


@pytest.mark.parametrize("value", ["0", "-1e-7"])
def test_nonpositive_grad_rms(cli, tmp_path, value):
    p = tmp_path / "g.csv"
    p.write_text(f"width,layer,grad_rms\n128,readout,1e-6\n256,readout,{value}\n")
    _bad(cli, "epsilon", str(p), match="line 3, column 'grad_rms'")


def test_non_numeric_grad_rms(cli, tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("width,layer,grad_rms\n128,readout,abc\n")
    _bad(cli, "epsilon", str(p), match="'abc' is not a number")


def test_single_width_without_param(cli, tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("width,layer,grad_rms\n1024,readout,1e-6\n1024,readout,2e-6\n")
    _bad(cli, "epsilon", str(p), match="pass --param")


def test_single_flag_without_param(cli):
    _bad(cli, "epsilon", "--grad-rms", "hidden=3e-7@1024", match="pass --param")


def test_unknown_layer_name(cli, tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("width,layer,grad_rms\n128,readout,1e-6\n256,frobnicator,1e-6\n")
    _bad(cli, "epsilon", str(p), match="line 3, column 'layer': unknown layer 'frobnicator'")


@pytest.mark.parametrize("flag", ["hidden=3e-7", "hidden@1024", "=3e-7@1024", "hidden=x@1024", "hidden=-1@1024",
                                  "hidden=3e-7@0"])
def test_bad_grad_rms_flag(cli, flag):
    _bad(cli, "epsilon", "--param", "mfp", "--grad-rms", flag, match="--grad-rms")


def test_unknown_layer_in_flag(cli):
    _bad(cli, "epsilon", "--param", "mfp", "--grad-rms", "wibble=1e-7@1024", match="unknown layer 'wibble'")


@pytest.mark.parametrize("args,match", [
    (("--optim", "sgd"), "--optim: sgd has no epsilon"),
    (("--optim", "adam-atan2"), "--optim: adam-atan2 has no epsilon"),
    (("--optim", "lion"), "--optim"),
    (("--optim", "adamm"), "unknown optimizer"),
    (("--param", "xyz"), "--param"),
    (("--eps", "0"), "--eps"),
    (("--state-dtype", "fp8"), "--state-dtype"),
    (("--thresholds", "0.01,abc"), "--thresholds"),
    (("--thresholds", "0,0.1"), "--thresholds"),
    (("--target-width", "0"), "--target-width"),
    (("--confidence", "1.5"), "--confidence"),
    (("--loss-budget", "0"), "--loss-budget"),
    (("--loss-budget", "nan"), "--loss-budget"),
    (("--lost-decrease", "1"), "--lost-decrease"),
    (("--early-step", "inf"), "--early-step"),
    (("--yardstick", "hidden=0.1@0.5"), "no decrease columns"),
    (("--yardstick", "hidden=0.1"), "--yardstick"),
    (("--yardstick", "wibble=0.1@0.5"), "layer type must be"),
    (("--yardstick", "hidden=0.1@1.5"), "SHARE is the share"),
    (("--yardstick", "hidden=0.1@0"), "SHARE is the share"),
    (("--yardstick", "hidden=nan@0.5"), "must be a finite number"),
    (("--yardstick", "hidden=x@0.5"), "COST and SHARE must be numbers"),
])
def test_bad_flags(cli, tmp_path, args, match):
    path = write_grads(tmp_path / "g.csv", {"readout": (1.0, 1e-6)})
    _bad(cli, "epsilon", str(path), *args, match=match)


def test_no_input_at_all(cli):
    _bad(cli, "epsilon", match="give a gradient table")


def test_missing_file(cli, tmp_path):
    _bad(cli, "epsilon", str(tmp_path / "nope.csv"), match="no such file")


def test_plot_into_missing_directory_writes_nothing(cli, tmp_path):
    path = write_grads(tmp_path / "g.csv", {"readout": (1.0, 1e-6)})
    _bad(cli, "epsilon", str(path), "--plot", str(tmp_path / "no" / "eps.png"), match="does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.csv"]


def test_help_has_worked_examples(cli):
    code, out, _ = cli("epsilon", "--help")
    assert code == 0 and "--grad-rms hidden=3e-7@1024" in out and "Examples" in out


# ------------------------------------------------------------------ issue 10: runs, early steps, Adafactor, model level


def write_runs(path, g_init=1.5, g_train=1.3, widths=(16, 32, 64), seeds=(0, 1), steps=(1, 25, 50, 75, 100),
               decrease=True, run_sd=0.1):
    """grads.csv as the emitted script writes it: a run effect shared by all checkpoints of a
    (width, seed) run, g_init at step 1 and g_train later, and the decrease terms with
    rho = eps/sqrt(v) (one sqrt(v) per tensor) at eps 3e-5."""
    import numpy as np

    rng = np.random.default_rng(4)
    cols = ["width", "layer", "step", "grad_rms", "sqrt_v_rms", "seed"] + (
        ["decrease", "decrease_no_eps", "eps"] if decrease else [])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for n in widths:
            for seed in seeds:
                u = rng.normal(0, run_sd)
                for step in steps:
                    for name, d0 in (("blocks.0.mlp.up", 1e-3), ("readout", 3e-3)):
                        g = g_init if step == 1 else g_train
                        if name == "readout":
                            g = 1.0
                        s = (1e-3 if step == 1 else 2e-4) * (n / 64) ** -g * math.exp(u + rng.normal(0, 0.01))
                        rho = 3e-5 / s
                        w.writerow([n, name, step, s, s, seed] + ([d0 / (1 + rho), d0, 3e-5] if decrease else []))
    return path


def test_intervals_count_runs_not_checkpoints(cli, tmp_path):
    """Six runs of five checkpoints: the interval has runs - 2 = 4 degrees of freedom, as wide
    as fitting the six run means; checkpoints counted as replicates would make it narrower."""
    from scaleadvise.analysis import epsilon as E

    path = write_runs(tmp_path / "g.csv", decrease=False)
    code, out, err = cli("epsilon", str(path), "--eps", "3e-5", "--param", "mfp", "--json")
    assert code == 0, err
    L = json.loads(out)["layers"]["blocks.0.mlp.up"]
    assert L["n_runs"] == 6 and L["n_points"] == 30
    s = E.load_gradients(str(path))["blocks.0.mlp.up"]
    run_widths, run_log_means = E.run_points(s.widths, s.grad_rms, s.run)
    assert len(run_widths) == 6
    means = E.fit_gradient_law(run_widths, [math.exp(x) for x in run_log_means])  # six points, df 4
    assert L["g_measured_ci"] == pytest.approx(list(means.g_ci), rel=1e-9)

    assert "run" in json.loads(out)["replication_unit"]


def test_theory_compared_at_step_one(cli, tmp_path):
    path = write_runs(tmp_path / "g.csv", g_init=1.5, g_train=1.25, decrease=False)
    code, out, _ = cli("epsilon", str(path), "--eps", "3e-5", "--param", "mfp", "--json")
    L = json.loads(out)["layers"]["blocks.0.mlp.up"]
    assert L["early_steps"] == [1.0] and L["g_early"] == pytest.approx(1.5, abs=0.1)
    assert L["g_agrees_with_theory"] is True
    code, out, _ = cli("epsilon", str(path), "--eps", "3e-5", "--param", "mfp", "--early-step", "100", "--json")
    assert json.loads(out)["layers"]["blocks.0.mlp.up"]["early_steps"] == [1.0, 25.0, 50.0, 75.0, 100.0]
    code, out, _ = cli("epsilon", str(path), "--eps", "3e-5", "--param", "mfp")
    assert code == 0 and "g init" in out and "g train" in out


def test_model_level_prediction_in_json_and_text(cli, tmp_path):
    path = write_runs(tmp_path / "g.csv")
    args = ["epsilon", str(path), "--eps", "3e-5", "--param", "mfp", "--base-width", "64", "--target-width", "256",
            "--yardstick", "hidden=0.04@0.5", "--yardstick", "hidden=0.05@0.5", "--yardstick", "readout=0.03@0.5",
            "--loss-budget", "0.02"]
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    doc = json.loads(out)
    m = doc["model_prediction"]
    assert m["predictor"] == "decrease+yardsticks" and m["budget"] == {"loss": 0.02} and m["runs"] == 6
    lo, hi = m["crossing_width_ci"]
    assert lo <= m["crossing_width"] <= hi and m["verdict"]["action"] in {"keep", "act", "uncertain"}
    assert m["yardsticks"]["hidden"][0]["n"] == 2 and m["yardsticks"]["hidden"][0]["cost"] == pytest.approx(0.045)
    assert {"recommendation", "layers", "earliest_underflow_width"} <= set(doc)  # old fields kept
    code, out, _ = cli(*args)
    text = " ".join(out.split())
    assert "predictor: decrease+yardsticks" in text and "interval" in text and "rule:" in text


def test_model_level_without_yardsticks_is_uncalibrated(cli, tmp_path):
    path = write_runs(tmp_path / "g.csv")
    code, out, _ = cli("epsilon", str(path), "--eps", "3e-5", "--param", "mfp", "--base-width", "64", "--json")
    m = json.loads(out)["model_prediction"]
    assert m["predictor"] == "decrease" and m["budget"] == {"lost_decrease": 0.1}


def test_missing_yardstick_type_is_bad_input(cli, tmp_path):
    path = write_runs(tmp_path / "g.csv")
    _bad(cli, "epsilon", str(path), "--eps", "3e-5", "--yardstick", "hidden=0.04@0.5",
         match="--yardstick: none for layer type(s) readout; at the base width, train with an eps on the readout")


def test_adafactor_per_layer_eps_scales_with_twice_g(cli):
    """Adafactor's eps meets v = g²: per-layer eps (n/b)^-2g (issue 10, item 6)."""
    code, out, err = cli("epsilon", "--optim", "adafactor", "--param", "mfp", "--width", "65536",
                         "--grad-rms", "hidden=1e-12@1024", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["eps"] == 1e-30 and doc["eps_added_to"] == "v = g²"
    assert doc["per_layer_eps_exponent"]["hidden"] == -3.0
    L = doc["layers"]["hidden"]
    assert L["target"]["eps_ratio"] == pytest.approx(1e-30 / (1e-12 * 64**-1.5) ** 2)
    rec = doc["recommendation"]
    assert rec["action"] == "per-layer" and "--optim adafactor" in rec["command"]
    x = rec["base_eps"]
    for n in (1024, 65536):  # eps_l / s² is the same at every width
        assert x * (n / 1024) ** -3.0 / (1e-12 * (n / 1024) ** -1.5) ** 2 == pytest.approx(x / 1e-24)


def test_bad_decrease_cells(cli, tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("width,layer,step,grad_rms,decrease\n64,readout,1,1e-3,0.1\n128,readout,1,5e-4,0.1\n")
    _bad(cli, "epsilon", str(p), match="column 'decrease' needs its partner 'decrease_no_eps'")
    p.write_text("width,layer,step,grad_rms,decrease,decrease_no_eps\n64,readout,1,1e-3,inf,0.1\n")
    _bad(cli, "epsilon", str(p), match="line 2, column 'decrease'")
    p.write_text("width,layer,step,grad_rms,decrease,decrease_no_eps,eps\n64,readout,1,1e-3,0.1,0.2,-1\n")
    _bad(cli, "epsilon", str(p), match="line 2, column 'eps'")
