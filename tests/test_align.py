"""`scaleadvise align`: summaries of alpha, omega, u (B.11) and of A (Definition 3.1), and the LR exponents
the theory gives for the measured alpha, omega, u (never for A)."""

import csv
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleadvise.analysis import align as A
from scaleadvise.core.parameterizations import get_parameterization
from scaleadvise.core.alignment import FULL, NONE
from scaleadvise.core.theory import max_stable_lr_exponents


def write_alignment(path, series, widths=(1024,)):
    """series: layer -> list of (step, A)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["width", "layer", "step", "log_alignment"])
        for n in widths:
            for layer, points in series.items():
                for step, a in points:
                    w.writerow([n, layer, step, a])
    return path


# ------------------------------------------------------------------ summaries


def test_time_mean_is_step_weighted():
    # A rises linearly from 0.5 at step 0 to 0.9 at step 1000: the mean over training is 0.7,
    # however unevenly the steps were logged.
    steps = [0, 1, 2, 5, 10, 100, 1000]
    values = [0.5 + 0.4 * s / 1000 for s in steps]
    assert A.time_mean(steps, values) == pytest.approx(0.7)
    assert A.time_mean([5], [0.6]) == 0.6


def test_summarize_start_peak_mean_final():
    tr = A.Trajectory("readout", "readout", 1024, [0, 10, 20, 40], [0.5, 0.95, 0.8, 0.7])
    s = A.summarize(tr)
    assert (s["start"], s["peak"], s["peak_step"], s["final"]) == (0.5, 0.95, 10, 0.7)
    # trapezoid: (10·0.725 + 10·0.875 + 20·0.75) / 40
    assert s["mean"] == pytest.approx((7.25 + 8.75 + 15.0) / 40)
    assert s["supports"] == "intermediate" and s["peak_supports"] == "full"


@pytest.mark.parametrize("value,verdict", [(0.5, "none"), (0.58, "none"), (0.45, "none"), (0.7, "intermediate"),
                                           (0.89, "intermediate"), (0.92, "full"), (1.0, "full")])
def test_supports(value, verdict):
    assert A.supports(value) == verdict


def test_type_summary_takes_the_largest_peak_over_layers():
    rows = [A.summarize(A.Trajectory(f"blocks.{i}.mlp.up", "hidden", 1024, [0, 1], [0.5, 0.6 + 0.05 * i]))
            for i in range(3)]
    t = A.summarize_types(rows)["hidden"]
    assert t["peak"] == pytest.approx(0.7) and t["peak_layer"] == "blocks.2.mlp.up" and t["n_layers"] == 3


# ------------------------------------------------------------------ theory mapping


@pytest.mark.parametrize("param", ["stp", "ntk", "mup", "mfp"])
@pytest.mark.parametrize("optim", ["sgd", "adam", "adafactor"])
def test_measured_full_and_none_reproduce_table_1(param, optim):
    """alpha = u = 1, omega = 1/2 measured is the full-alignment setting; all 1/2 the no-alignment one (§3.3.4)."""
    p = get_parameterization(param)
    for (alpha, omega, u), named in (((1.0, 0.5, 1.0), FULL), ((0.5, 0.5, 0.5), NONE)):
        terms = {"alpha": alpha, "omega": omega, "u": u}
        al, sources = A.measured_alignment(terms, terms, NONE if named is FULL else FULL)
        assert sources["hidden"] == sources["readout"] == {"alpha": "measured", "omega": "measured", "u": "measured"}
        assert A.lr_exponents(param, optim, al)["c"] == max_stable_lr_exponents(p.a, p.b, optim, named).c


@settings(max_examples=40, deadline=None)
@given(alpha=st.floats(0.5, 1.0), u=st.floats(0.5, 1.0), readout=st.floats(0.5, 1.0),
       param=st.sampled_from(["stp", "ntk", "mup", "mfp"]))
def test_adam_exponents_follow_the_measured_alpha_and_u(alpha, u, readout, param):
    """Adam (Table 2) with omega = 1/2: the embedding takes r_1 = 0, so the first hidden layer
    needs a + c >= max(alpha, u - r_1) = max(alpha, u), and the readout a + c >= alpha_readout."""
    p = get_parameterization(param)
    hidden = {"alpha": alpha, "omega": 0.5, "u": u}
    ro = {"alpha": readout, "omega": 0.5, "u": 0.5}
    c = A.lr_exponents(param, "adam", A.measured_alignment(hidden, ro, FULL)[0])["c"]
    assert c["hidden"] == pytest.approx(max(alpha, u) - p.a["hidden"], abs=1e-8)
    assert c["readout"] == pytest.approx(readout - p.a["readout"], abs=1e-8)


@pytest.mark.parametrize("n_hidden,c_embedding", [(1, 0.1), (2, 0.2), (8, 0.8)])
def test_hidden_omega_shrinks_residuals_with_depth(n_hidden, c_embedding):
    """omega_h = 0.6 > 1/2: each hidden layer has r_l <= 1/2 + r_(l-1) - omega (Table 2), so the
    embedding of SP + Adam needs r_1 = c_1 >= n_hidden (omega - 1/2) for r_L >= 0."""
    terms = {"alpha": 0.9, "omega": 0.6, "u": 0.9}
    al, _ = A.measured_alignment(terms, {"alpha": 0.9, "omega": 0.5, "u": 0.9}, FULL)
    assert A.lr_exponents("stp", "adam", al, n_hidden=n_hidden)["c"]["embedding"] == pytest.approx(c_embedding)


def test_out_of_range_values_are_clamped():
    al, _ = A.measured_alignment({"alpha": 0.42, "omega": 0.3, "u": 0.47}, {"alpha": 1.07, "omega": 0.5, "u": 1.2}, FULL)
    assert al.at("hidden") == (0.5, 0.5, 0.5) and al.at("readout") == (1.0, 0.5, 1.0)


def test_unmeasured_terms_and_types_keep_the_fallback():
    al, sources = A.measured_alignment({"alpha": 0.7}, None, NONE)
    assert al.at("hidden") == (0.7, 0.5, 0.7) and al.at("readout") == (0.5, 0.5, 0.5)
    assert sources["hidden"] == {"alpha": "measured", "omega": "--alignment", "u": "alpha (tandem, §3.3.4)"}
    assert set(sources["readout"].values()) == {"--alignment"}
    al, sources = A.measured_alignment({"u": 0.8, "omega": 0.6}, {"alpha": None, "omega": 0.55}, FULL)
    assert al.at("hidden") == (0.8, 0.6, 0.8) and al.at("readout") == (1.0, 0.55, 1.0)
    assert sources["hidden"]["alpha"] == "u (tandem, §3.3.4)" and sources["readout"]["u"] == "--alignment"


# ------------------------------------------------------------------ CLI


def write_terms(path, layers, widths=(1024,)):
    """layers: name -> list of (step, A, alpha, omega, u); None writes an empty cell."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["width", "layer", "step", "log_alignment", "alpha", "omega", "u"])
        for n in widths:
            for layer, points in layers.items():
                for point in points:
                    w.writerow([n, layer, *("" if v is None else v for v in point)])
    return path


def series(peak_hidden=0.7, peak_readout=0.95):
    """A alone (an alignment.csv written before alpha, omega, u were logged)."""
    up = [(0, 0.5), (10, 0.6), (100, peak_hidden), (1000, 0.65)]
    return {"blocks.0.mlp.up": up, "blocks.1.mlp.up": [(s, a - 0.02) for s, a in up],
            "readout": [(0, 0.5), (10, peak_readout), (100, 0.8), (1000, 0.75)]}


def aligned_but_low_A():
    """The issue's case: an aligned hidden update (alpha ≈ 0.95) whose A stays at 0.53-0.6."""
    hidden = [(0, 0.5, None, None, None), (10, 0.53, 0.94, 0.5, 0.80), (100, 0.60, 0.95, 0.49, 0.85),
              (1000, 0.57, 0.93, 0.48, 0.83)]
    readout = [(0, 0.5, None, None, None), (10, 0.62, 0.85, 0.5, 0.9), (100, 0.7, 0.8, 0.48, 0.8),
               (1000, 0.68, 0.75, 0.47, 0.75)]
    return {"blocks.0.mlp.up": hidden, "blocks.1.mlp.up": [(s, a, *(None if v is None else v - 0.02 for v in t))
                                                            for s, a, *t in hidden], "readout": readout}


def test_exponents_come_from_alpha_omega_u_never_from_A(cli, tmp_path):
    """SP + Adam: hidden c = max(alpha, u) at the peak (0.95), not the A the old mapping used (0.60),
    a hidden LR 4096^0.35 = 18x larger at width 4096 than the theory allows."""
    path = write_terms(tmp_path / "alignment.csv", aligned_but_low_A())
    code, out, err = cli("align", str(path), "--param", "stp", "--optim", "adam", "--json")
    assert code == 0, err
    doc = json.loads(out)
    h = doc["layer_types"]["hidden"]
    assert h["peak"] == pytest.approx(0.60) and h["alpha"]["peak"] == pytest.approx(0.95)  # A kept beside
    lr = doc["lr_exponents"]
    assert lr["measured_peak"]["c"]["hidden"] == pytest.approx(0.95)
    assert lr["measured_peak"]["c"]["readout"] == pytest.approx(0.9)  # u_readout 0.9 with r_L = 0
    assert lr["measured_peak"]["alignment"] == pytest.approx(
        {"alpha": 0.95, "omega": 0.5, "u": 0.85, "alpha_readout": 0.85, "omega_readout": 0.5, "u_readout": 0.9})
    assert lr["measured_mean"]["alignment"]["alpha"] == pytest.approx(h["alpha"]["mean"])
    assert doc["exponents_from"] == "alpha, omega, u (B.11)" and doc["refused"] is None
    assert "never used" in doc["mapping"]


def test_A_only_file_gets_no_exponents(cli, tmp_path):
    """An old alignment.csv (A alone): summaries of A, Table 1's settings, and a refusal, never alpha = u = A."""
    path = write_alignment(tmp_path / "alignment.csv", series(), widths=(512, 1024))
    code, out, err = cli("align", str(path), "--param", "mup", "--optim", "adam", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc["lr_exponents"]) == {"full", "none"}
    assert doc["exponents_from"] is None and "not derived" in doc["refused"]
    assert doc["layer_types"]["readout"]["peak"] == 0.95 and "alpha" not in doc["layer_types"]["readout"]
    code, out, err = cli("align", str(path), "--param", "mup", "--optim", "adam")
    assert code == 0 and "LR exponents not derived" in out and "measured peak" not in out
    assert "prescribe with" not in out


def test_terms_empty_on_every_row_get_no_exponents(cli, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("width,layer,step,log_alignment,alpha,omega,u\n64,readout,0,0.5,,,\n64,blocks.0.mlp.up,0,0.49,,,\n")
    code, out, err = cli("align", str(path), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc["lr_exponents"]) == {"full", "none"} and "empty as at step 0" in doc["refused"]


def test_json_report(cli, tmp_path):
    path = write_terms(tmp_path / "alignment.csv", aligned_but_low_A(), widths=(512, 1024))
    code, out, err = cli("align", str(path), "--param", "mup", "--optim", "adam", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [L["layer"] for L in doc["layers"]] == ["blocks.0.mlp.up", "blocks.1.mlp.up", "readout"]
    ro = doc["layer_types"]["readout"]
    assert (ro["start"], ro["peak"], ro["peak_step"], ro["final"]) == (0.5, 0.7, 100, 0.68)  # A, as before
    assert (ro["alpha"]["start"], ro["alpha"]["peak"], ro["alpha"]["peak_step"]) == (0.85, 0.85, 10)
    assert ro["u"]["peak"] == 0.9 and ro["omega"]["final"] == 0.47
    up = doc["layers"][0]
    assert len(up["by_width"]) == 2 and up["alpha"]["widths"] == [512, 1024] and up["u"]["peak"] == 0.85
    lr = doc["lr_exponents"]
    # muP + Adam: hidden c = max(alpha, u) - a_h = 0.95, readout c = max(alpha_r, u_r) - 1/2 = 0.4 (Table 2, r = 0).
    assert lr["measured_peak"]["c"]["hidden"] == pytest.approx(0.95)
    assert lr["measured_peak"]["c"]["readout"] == pytest.approx(0.4)
    # blocks.{0,1}.mlp.*: the emitted NanoDO, whose chain is 4 hidden layers per block (prescribe's nanodo preset)
    assert lr["measured_peak"]["n_hidden"] == doc["n_hidden"] == 8 and "nanodo" in doc["n_hidden_source"]
    assert lr["full"]["c"] == {"embedding": 0.5, "hidden": 1.0, "readout": 0.5}  # Table 1 muP Adam full
    assert lr["none"]["c"] == {"embedding": 0.5, "hidden": 0.5, "readout": 0.0}  # Table 1 muP Adam none


def test_alignment_flag_closes_the_loop_to_prescribe(cli, tmp_path):
    """The `--alignment` value `align` prints, fed to `prescribe`, gives back the exponents
    `align` derived from the measurements (hidden and readout differ: six numbers)."""
    path = write_terms(tmp_path / "alignment.csv", aligned_but_low_A(), widths=(512, 1024))
    code, out, err = cli("align", str(path), "--param", "mup", "--optim", "adam", "--json")
    assert code == 0, err
    peak = json.loads(out)["lr_exponents"]["measured_peak"]
    assert peak["alignment_flag"] == "0.95,0.5,0.85,0.85,0.5,0.9"
    code, out, err = cli("prescribe", "--param", "mup", "--optim", "adam", "--alignment", peak["alignment_flag"],
                         "--json", "--no-tensors")
    assert code == 0, err
    layers = json.loads(out)["layers"]
    assert {k: layers[k]["c"] for k in peak["c"]} == pytest.approx(peak["c"])


def test_n_hidden_reaches_the_solver(cli, tmp_path):
    layers = {"blocks.0.mlp.up": [(0, 0.5, None, None, None), (10, 0.6, 0.9, 0.6, 0.9)],
              "readout": [(0, 0.5, None, None, None), (10, 0.6, 0.9, 0.5, 0.9)]}
    path = write_terms(tmp_path / "a.csv", layers)
    c = {}
    for n in (2, 8):
        code, out, err = cli("align", str(path), "--n-hidden", str(n), "--json")
        assert code == 0, err
        c[n] = json.loads(out)["lr_exponents"]["measured_peak"]["c"]["embedding"]
    assert c == {2: pytest.approx(0.2), 8: pytest.approx(0.8)}  # SP + Adam: c_1 = n_hidden (omega - 1/2)
    code, out, err = cli("align", str(path), "--json")
    doc = json.loads(out)  # one block of the emitted NanoDO by default: 4 hidden layers
    assert (doc["n_hidden"], doc["lr_exponents"]["measured_peak"]["c"]["embedding"]) == (4, pytest.approx(0.4))


def test_chain_length_from_the_layer_names():
    def tr(*names):
        return [A.Trajectory(n, "hidden", 64, [0], [0.5]) for n in names]

    assert A.chain_length(tr("blocks.0.attn.q", "blocks.0.mlp.down", "blocks.5.attn.o"))[0] == 8  # 2 blocks
    assert A.chain_length(tr("hidden.0", "hidden.1", "hidden.2")) == (3, "the 3 hidden layers measured, as one chain")
    assert A.chain_length([A.Trajectory("readout", "readout", 64, [0], [0.5])])[0] == 1


def test_unmeasured_terms_fall_back_with_a_note(cli, tmp_path):
    """A hidden layer whose input never changes (Δz = 0: omega, u undefined): u = alpha (§3.3.4),
    omega from --alignment."""
    layers = {"blocks.0.mlp.up": [(0, 0.5, None, None, None), (10, 0.55, 0.9, None, None)],
              "readout": [(0, 0.5, None, None, None), (10, 0.6, 0.8, 0.5, 0.7)]}
    code, out, err = cli("align", str(write_terms(tmp_path / "a.csv", layers)), "--alignment", "none", "--json")
    assert code == 0, err
    doc = json.loads(out)
    peak = doc["lr_exponents"]["measured_peak"]
    assert peak["sources"]["hidden"] == {"alpha": "measured", "omega": "--alignment", "u": "alpha (tandem, §3.3.4)"}
    assert (peak["alignment"]["alpha"], peak["alignment"]["omega"], peak["alignment"]["u"]) == (0.9, 0.5, 0.9)
    assert peak["c"]["hidden"] == pytest.approx(0.9)  # SP + Adam: c = alpha, not the fallback's u
    assert any("omega, u never defined" in n for n in doc["notes"])


def test_human_output_and_plot(cli, tmp_path):
    path = write_terms(tmp_path / "alignment.csv", aligned_but_low_A(), widths=(512, 1024))
    png = tmp_path / "align.png"
    code, out, err = cli("align", str(path), "--plot", str(png))
    assert code == 0, err
    for text in ("measured peak", "Table 1", "alpha ΔW·z0", "omega W0·Δz", "u ΔW·Δz", "A (Def. 3.1)", "never used",
                 "--alignment 0.95,0.5,0.85,0.85,0.5,0.9"):
        assert text in out, text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_and_nan_term_cells_are_skipped(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("width,layer,step,log_alignment,alpha,omega,u\n1024,readout,0,0.5,,,\n"
                    "1024,readout,5,0.6,0.9,nan,0.8\n1024,readout,9,0.7,0.8,0.55,\n")
    trs = {t.metric: t for t in A.load_alignment(str(path))}
    assert trs["log_alignment"].steps == [0, 5, 9]
    assert (trs["alpha"].steps, trs["alpha"].values) == ([5, 9], [0.9, 0.8])
    assert (trs["omega"].steps, trs["u"].steps) == ([9], [5])


def test_seeds_at_the_same_step_are_averaged(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("width,layer,step,log_alignment\n1024,readout,0,0.5\n1024,readout,0,0.7\n1024,readout,5,0.8\n")
    (tr,) = A.load_alignment(str(path))
    assert tr.steps == [0, 5] and tr.values == [pytest.approx(0.6), 0.8]


def test_example_file_is_accepted(cli):
    """examples/align: the toy SP MLP (make_example.py) measured alpha far above A."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "align" / "alignment.csv"
    if not example.exists():
        pytest.skip("examples/align/alignment.csv not generated")
    code, out, _ = cli("align", str(example), "--param", "stp", "--n-hidden", "1", "--json")
    assert code == 0
    hidden = json.loads(out)["layer_types"]["hidden"]
    assert hidden["alpha"]["mean"] > hidden["mean"] + 0.25


from helpers import assert_bad_input as _bad  # noqa: E402


@pytest.mark.parametrize("content,match", [
    ("width,layer,step\n1024,readout,0\n", "missing column 'log_alignment'"),
    ("width,layer,step,log_alignment\n1024,readout,0,high\n", "line 2, column 'log_alignment'"),
    ("width,layer,step,log_alignment\n1024,readout,0,0.5\n1024,readout,1,nan\n", "line 3, column 'log_alignment'"),
    ("width,layer,step,log_alignment\n1024,gizmo,0,0.5\n", "unknown layer 'gizmo'"),
    ("width,layer,step,log_alignment\n1024,readout,-3,0.5\n", "column 'step': -3 must be >= 0"),
    ("width,layer,step,log_alignment,alpha\n1024,readout,3,0.5,inf\n", "line 2, column 'alpha': inf is not finite"),
    ("width,layer,step,log_alignment,u\n1024,readout,3,0.5,high\n", "line 2, column 'u'"),
    ("width,layer,step,log_alignment\n0,readout,3,0.5\n", "column 'width'"),
])
def test_bad_tables(cli, tmp_path, content, match):
    p = tmp_path / "a.csv"
    p.write_text(content)
    _bad(cli, "align", str(p), match=match)


@pytest.mark.parametrize("args,match", [
    (("--param", "xyz"), "--param"),
    (("--optim", "adamm"), "unknown optimizer"),
    (("--tolerance", "0.3"), "--tolerance"),
    (("--alignment", "0.7,0.5"), "--alignment"),
    (("--n-hidden", "0"), "--n-hidden"),
])
def test_bad_flags(cli, tmp_path, args, match):
    path = write_alignment(tmp_path / "a.csv", series())
    _bad(cli, "align", str(path), *args, match=match)


def test_plot_into_missing_directory_writes_nothing(cli, tmp_path):
    path = write_alignment(tmp_path / "a.csv", series())
    _bad(cli, "align", str(path), "--plot", str(tmp_path / "missing" / "a.png"), match="does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_help_has_worked_examples(cli):
    code, out, _ = cli("align", "--help")
    assert code == 0 and "Examples" in out and "alignment.csv" in out
