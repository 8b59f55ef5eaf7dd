"""`scaleadvise align`: trajectory summaries of the log alignment ratio and the LR exponents they imply."""

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
def test_measured_one_and_half_reproduce_table_1(param, optim):
    """A = 1 everywhere is the full-alignment setting, A = 1/2 the no-alignment one (§3.3.4)."""
    p = get_parameterization(param)
    for measured, named in ((1.0, FULL), (0.5, NONE)):
        al = A.measured_alignment(measured, measured, FULL)
        assert A.lr_exponents(param, optim, al)["c"] == max_stable_lr_exponents(p.a, p.b, optim, named).c


@settings(max_examples=40, deadline=None)
@given(hidden=st.floats(0.5, 1.0), readout=st.floats(0.5, 1.0), param=st.sampled_from(["stp", "ntk", "mup", "mfp"]))
def test_adam_exponents_follow_the_measured_alignment(hidden, readout, param):
    """Adam (Table 2): at r_(l-1) = 0 the hidden LR obeys a + c - alpha = 0 and the readout a + c - alpha = 0."""
    p = get_parameterization(param)
    c = A.lr_exponents(param, "adam", A.measured_alignment(hidden, readout, FULL))["c"]
    assert c["hidden"] == pytest.approx(hidden - p.a["hidden"], abs=1e-8)
    assert c["readout"] == pytest.approx(readout - p.a["readout"], abs=1e-8)


def test_out_of_range_values_are_clamped():
    al = A.measured_alignment(0.42, 1.07, FULL)
    assert al.at("hidden") == (0.5, 0.5, 0.5) and al.at("readout") == (1.0, 0.5, 1.0)


def test_unmeasured_type_keeps_the_fallback():
    al = A.measured_alignment(0.7, None, NONE)
    assert al.at("hidden") == (0.7, 0.5, 0.7) and al.at("readout") == (0.5, 0.5, 0.5)


# ------------------------------------------------------------------ CLI


def series(peak_hidden=0.7, peak_readout=0.95):
    up = [(0, 0.5), (10, 0.6), (100, peak_hidden), (1000, 0.65)]
    return {"blocks.0.mlp.up": up, "blocks.1.mlp.up": [(s, a - 0.02) for s, a in up],
            "readout": [(0, 0.5), (10, peak_readout), (100, 0.8), (1000, 0.75)]}


def test_json_report(cli, tmp_path):
    path = write_alignment(tmp_path / "alignment.csv", series(), widths=(512, 1024))
    code, out, err = cli("align", str(path), "--param", "mup", "--optim", "adam", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [L["layer"] for L in doc["layers"]] == ["blocks.0.mlp.up", "blocks.1.mlp.up", "readout"]
    ro = doc["layer_types"]["readout"]
    assert (ro["start"], ro["peak"], ro["peak_step"], ro["final"]) == (0.5, 0.95, 10, 0.75)
    assert ro["supports"] == "intermediate" and ro["peak_supports"] == "full"
    assert len(doc["layers"][0]["by_width"]) == 2
    lr = doc["lr_exponents"]
    # muP + Adam: hidden c = alpha - a_h = alpha, readout c = alpha - 1/2 (Table 2 with r = 0).
    assert lr["measured_peak"]["c"]["hidden"] == pytest.approx(0.7)
    assert lr["measured_peak"]["c"]["readout"] == pytest.approx(0.45)
    assert lr["measured_mean"]["c"]["hidden"] == pytest.approx(doc["layer_types"]["hidden"]["mean"])
    assert lr["full"]["c"] == {"embedding": 0.5, "hidden": 1.0, "readout": 0.5}  # Table 1 muP Adam full
    assert lr["none"]["c"] == {"embedding": 0.5, "hidden": 0.5, "readout": 0.0}  # Table 1 muP Adam none
    assert "max(alpha_l, u_l" in doc["mapping"]


def test_alignment_flag_closes_the_loop_to_prescribe(cli, tmp_path):
    """The `--alignment` value `align` prints, fed to `prescribe`, gives back the exponents
    `align` derived from the measurements (hidden and readout differ: six numbers)."""
    path = write_alignment(tmp_path / "alignment.csv", series(), widths=(512, 1024))
    code, out, err = cli("align", str(path), "--param", "mup", "--optim", "adam", "--json")
    assert code == 0, err
    peak = json.loads(out)["lr_exponents"]["measured_peak"]
    assert peak["alignment_flag"] == "0.7,0.5,0.7,0.95,0.5,0.95"
    code, out, err = cli("prescribe", "--param", "mup", "--optim", "adam", "--alignment", peak["alignment_flag"],
                         "--json", "--no-tensors")
    assert code == 0, err
    layers = json.loads(out)["layers"]
    assert {k: layers[k]["c"] for k in peak["c"]} == pytest.approx(peak["c"])
    assert layers["readout"]["c"] == pytest.approx(0.45)  # alpha_readout - 1/2, not the hidden 0.7 - 1/2


def test_human_output_and_plot(cli, tmp_path):
    path = write_alignment(tmp_path / "alignment.csv", series(), widths=(512, 1024))
    png = tmp_path / "align.png"
    code, out, err = cli("align", str(path), "--plot", str(png))
    assert code == 0, err
    assert "measured peak" in out and "Table 1" in out and "intermediate" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seeds_at_the_same_step_are_averaged(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("width,layer,step,log_alignment\n1024,readout,0,0.5\n1024,readout,0,0.7\n1024,readout,5,0.8\n")
    (tr,) = A.load_alignment(str(path))
    assert tr.steps == [0, 5] and tr.values == [pytest.approx(0.6), 0.8]


def test_example_file_is_accepted(cli):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "align" / "alignment.csv"
    if not example.exists():
        pytest.skip("examples/align/alignment.csv not generated")
    code, out, _ = cli("align", str(example), "--param", "mup", "--json")
    assert code == 0 and json.loads(out)["layer_types"]["readout"]["peak_supports"] == "full"


from helpers import assert_bad_input as _bad  # noqa: E402


@pytest.mark.parametrize("content,match", [
    ("width,layer,step\n1024,readout,0\n", "missing column 'log_alignment'"),
    ("width,layer,step,log_alignment\n1024,readout,0,high\n", "line 2, column 'log_alignment'"),
    ("width,layer,step,log_alignment\n1024,readout,0,0.5\n1024,readout,1,nan\n", "line 3, column 'log_alignment'"),
    ("width,layer,step,log_alignment\n1024,gizmo,0,0.5\n", "unknown layer 'gizmo'"),
    ("width,layer,step,log_alignment\n1024,readout,-3,0.5\n", "column 'step': -3 must be >= 0"),
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
