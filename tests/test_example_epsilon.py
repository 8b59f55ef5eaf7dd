"""Reduced end-to-end run of examples/epsilon/reproduce.py (paper §4.3, Figure 7; issue 10, item 9).

Trains MFP + Adam NanoDO models on CPU through `scaleadvise emit-train`, `python train.py`
and `scaleadvise epsilon` (a few minutes on 2 shared cores).
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]


def _mean_by_type(values: dict, types: dict) -> dict:
    acc: dict[str, list[float]] = {}
    for name, v in values.items():
        acc.setdefault(types[name], []).append(v)
    return {k: sum(v) / len(v) for k, v in acc.items()}


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("epsilon")
    out = base / "out"
    subprocess.run([sys.executable, str(ROOT / "examples" / "epsilon" / "reproduce.py"), "--quick",
                    "--out", str(out), "--work", str(base / "work")], check=True, timeout=1800, cwd=ROOT)
    result = json.loads((out / "results.json").read_text())
    result["_out"] = out
    return result


@pytest.mark.slow
def test_step_one_gradient_exponents_match_table1_for_mfp(quick):
    # Table 1 (gradient column) for MFP at initialisation (B.7): hidden n^-1.5, embedding and readout n^-1.
    g = _mean_by_type(quick["g_init"], quick["layer_types"])
    assert abs(g["hidden"] - 1.5) < 0.25, g
    assert abs(g["embedding"] - 1.0) < 0.3, g
    assert abs(g["readout"] - 1.0) < 0.3, g


@pytest.mark.slow
def test_yardsticks_leave_their_type_a_share_and_cost_loss(quick):
    for key, y in quick["yardsticks"].items():
        assert 0.0 < y["share"] < 0.95, (key, y)  # an eps on one type takes a visible share of its progress
    assert len(quick["yardstick_flags"]) == len(quick["yardsticks"]) * len(quick["config"]["seeds"])


@pytest.mark.slow
def test_prediction_has_an_interval_and_says_which_predictor(quick):
    m = quick["prediction"]
    assert m["predictor"] == "decrease+yardsticks" and m["budget"] == {"loss": quick["loss_budget"]}
    lo, hi = m["crossing_width_ci"]
    assert lo <= m["crossing_width"] <= hi
    hidden = [v for v in m["tensors"].values() if v["layer_type"] == "hidden"]
    assert all(v["lost_ratio_exponent"] > 0.5 for v in hidden)  # eps takes more of the hidden progress with width
    curve = quick["predicted_curve"]
    widths = quick["config"]["widths"]
    kept = [curve[str(n)]["retained_by_type"]["hidden"] for n in widths]
    assert all(a > b for a, b in zip(kept, kept[1:])), kept


@pytest.mark.slow
def test_constant_eps_loss_gap_opens_with_width(quick):
    rows = {r["width"]: r for r in quick["per_width"]}
    small, large = min(rows), max(rows)
    assert rows[large]["gap"] > rows[small]["gap"], rows
    assert math.isfinite(quick["observed_width"]) or quick["observed_how"] == "beyond the largest width"
    for name in ("reproduce.png", "grads_small.csv", "epsilon.json", "losses.csv"):
        assert (quick["_out"] / name).stat().st_size > 0
