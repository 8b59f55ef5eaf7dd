"""Reduced end-to-end run of examples/epsilon/reproduce.py (paper §4.3, Figure 7).

Trains MFP + Adam NanoDO models on CPU through `scaleadvise emit-train`, `python train.py`
and `scaleadvise epsilon` (about 30 s of compute with two cores free, minutes when shared).
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
                    "--out", str(out), "--work", str(base / "work")], check=True, timeout=1500, cwd=ROOT)
    result = json.loads((out / "results.json").read_text())
    result["_out"] = out
    return result


@pytest.mark.slow
def test_init_gradient_exponents_match_table1_for_mfp(quick):
    # Table 1 (gradient column) for MFP: hidden n^-1.5, embedding and readout n^-1.
    g = quick["g_at_init_by_type"]
    assert abs(g["hidden"] - 1.5) < 0.2, g
    assert abs(g["embedding"] - 1.0) < 0.3, g
    assert abs(g["readout"] - 1.0) < 0.3, g


@pytest.mark.slow
def test_hidden_sqrt_v_shrinks_fastest_during_training(quick):
    # §4.3: MFP's hidden layers have the steepest exponent, so they meet eps first.
    g = _mean_by_type(quick["g_measured"], quick["layer_types"])
    assert g["hidden"] > g["embedding"] + 0.3 and g["hidden"] > g["readout"], g
    assert g["hidden"] > 0.9, g


@pytest.mark.slow
def test_prediction_is_inside_the_trained_range_and_extrapolates(quick):
    widths = quick["config"]["widths"]
    n = quick["predicted_width"]
    assert math.isfinite(n) and max(quick["config"]["measure"]) < n < max(widths), n
    factors = [quick["predicted_lr_factor"][str(w)] for w in widths]
    assert all(a > b for a, b in zip(factors, factors[1:])), factors  # eps bites more with width
    # The fitted laws, extrapolated past the measured widths, land on the per-layer runs' sqrt(v).
    assert 0.5 < quick["sqrt_v_measured_over_fit_at_largest_width"]["median"] < 2.0
    assert quick["recommendation"]["action"] == "per-layer" and quick["base_eps"] < quick["eps"]


@pytest.mark.slow
def test_constant_eps_loss_gap_opens_with_width(quick):
    rows = {r["width"]: r for r in quick["per_width"]}
    small, large = min(rows), max(rows)
    # The mitigations win at the largest width, and the constant-eps gap grows with width (Fig. 7).
    assert rows[large]["loss adam-atan2"] < rows[large]["loss constant"]
    assert rows[large]["loss per-layer"] < rows[large]["loss constant"]
    assert rows[large]["gap vs per-layer"] > rows[small]["gap vs per-layer"] + 0.1
    assert abs(rows[small]["gap vs per-layer"]) < 0.1  # eps is harmless where sqrt(v) is large
    for name in ("reproduce.png", "grads_small.csv", "epsilon.json", "losses.csv"):
        assert (quick["_out"] / name).stat().st_size > 0
