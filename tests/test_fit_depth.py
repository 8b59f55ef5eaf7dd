"""fit --scale-by depth: the LR's depth exponent from a depth column, with the width machinery."""

import json

import numpy as np
import pytest

from helpers import assert_bad_input
from scaleadvise.analysis.fit import FitOptions, fit_sweep
from scaleadvise.analysis.fit_synth import synthetic_sweep

DEPTHS, LRS = [2, 4, 8, 16], 2.0 ** np.arange(-12, -2, 0.5)


def _depth_sweep(tmp_path, k: float, widths=(64,), name="sweeps.csv"):
    """The synthetic law with the depth as its axis, at one or more fixed widths (one sweep each)."""
    import pandas as pd

    frames = []
    for i, w in enumerate(widths):
        f = synthetic_sweep(DEPTHS, LRS, k=k + 0.5 * i, noise=0.002, seeds=2, rng=i).rename(columns={"width": "depth"})
        frames.append(f.assign(width=w, param="mup", optim="adamw"))
    path = tmp_path / name
    pd.concat(frames).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("k", [0.0, -0.5, -1.0])
def test_recovers_the_depth_exponent(tmp_path, k):
    doc = fit_sweep(str(_depth_sweep(tmp_path, k)), FitOptions(scale_by="depth", bootstrap=200)).doc
    (res,) = doc["groups"]
    lo, hi = res["lr_exponent_ci"]
    # One draw: the interval's calibration is test_fit_coverage's job; here it must sit at the
    # truth (within its own width) and the estimate close to it.
    assert lo - (hi - lo) <= k <= hi + (hi - lo) and abs(res["lr_exponent"] - k) < 0.1
    assert doc["scale_by"] == "depth" and res["widths"] == DEPTHS  # the axis keeps its key
    assert "width" not in res["verdict"] and ("depth" in res["verdict"] or "transfers" in res["verdict"])


def test_each_width_is_its_own_sweep(tmp_path):
    doc = fit_sweep(str(_depth_sweep(tmp_path, -0.5, widths=(32, 64))), FitOptions(scale_by="depth", bootstrap=0)).doc
    ks = {g["key"]["width"]: g["lr_exponent"] for g in doc["groups"]}
    assert ks == pytest.approx({32: -0.5, 64: 0.0}, abs=0.1)


def test_width_stays_the_default(tmp_path):
    """The same file fitted across width has one width: no exponent (the depth column is ignored)."""
    doc = fit_sweep(str(_depth_sweep(tmp_path, -0.5)), FitOptions(bootstrap=0)).doc
    assert doc["scale_by"] == "width" and doc["groups"][0]["lr_exponent"] is None


def test_cli(cli, tmp_path):
    path = _depth_sweep(tmp_path, -1.0)
    code, out, err = cli("fit", str(path), "--scale-by", "depth", "--target-depth", "64", "--bootstrap", "0", "--json")
    assert code == 0, err
    res = json.loads(out)["groups"][0]
    assert res["predicted_lr"] == pytest.approx(2.0 ** -6 * (64 / 2) ** -1.0, rel=0.2)
    code, out, err = cli("fit", str(path), "--scale-by", "depth", "--bootstrap", "0")
    assert code == 0 and "· L^k" in out and "depth" in out.splitlines()[1] + out


@pytest.mark.parametrize("args,match", [
    (("--scale-by", "layers"), "--scale-by: 'layers' is not 'width' or 'depth'"),
    (("--target-depth", "8"), "--target-depth/--depth-col need --scale-by depth"),
    (("--scale-by", "depth", "--target-width", "8"), "with --scale-by depth the target is --target-depth"),
    (("--scale-by", "depth", "--depth-col", "n_blocks"), "column 'n_blocks' (given for depth) not found"),
])
def test_bad_flags(cli, tmp_path, args, match):
    assert_bad_input(cli, "fit", str(_depth_sweep(tmp_path, 0.0)), *args, match=match)


def test_missing_depth_column(cli, tmp_path):
    path = tmp_path / "w.csv"
    synthetic_sweep([32, 64], LRS).to_csv(path, index=False)
    code, out, err = cli("fit", str(path), "--scale-by", "depth")
    assert code == 2 and "depth" in err
