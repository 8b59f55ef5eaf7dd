"""examples/transfer: hyperparameter transfer across width on real text.

The fast tests check the LR grids the example builds (2^0.5 lattice, windows that move
with the prior slope) and its scales; the slow test runs the smoke scale end to end
(emit-train -> scaleadvise sweep -> fit) on the standard-library byte corpus and checks real values.
"""

import csv
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "transfer"


def _load():
    spec = importlib.util.spec_from_file_location("transfer_run", EXAMPLE / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


run = _load()


def test_lattice_is_half_octave_steps():
    lrs = run.lattice(-8.0, -4.0)
    assert len(lrs) == 9
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]
    assert all(math.isclose(r, 2 ** 0.5, rel_tol=1e-12) for r in ratios)
    assert lrs[0] == 2.0 ** -8 and lrs[-1] == 2.0 ** -4


def test_windows_follow_the_prior_slope():
    scale = run.SCALES["cpu"]
    glob, per = run.SETTINGS[0], run.SETTINGS[1]
    assert glob.global_lr and glob.fit_setting == "global" and not per.global_lr
    base = run.window(scale, glob, scale.base_width)
    wide = run.window(scale, glob, scale.widths[-1])  # 3 doublings at slope -1/2: 1.5 octaves lower
    assert math.isclose(math.log2(base[0] / wide[0]), 1.5)
    assert run.window(scale, per, scale.widths[-1]) == run.window(scale, per, scale.base_width)
    for s in run.SETTINGS:  # every grid holds the prior optimum strictly inside
        for w in scale.widths:
            g = run.window(scale, s, w)
            mid = 2.0 ** (scale.center + s.prior_slope * math.log2(w / scale.base_width))
            assert g[0] < mid < g[-1]


def test_gpu_scale_is_the_issue_s():
    gpu = run.SCALES["gpu"]
    assert gpu.widths == (128, 256, 512, 1024, 2048) and gpu.head_dim == 128
    assert all(w % gpu.head_dim == 0 for w in gpu.widths)
    cpu = run.SCALES["cpu"]
    assert cpu.widths[0] == 32 and cpu.widths[-1] == 256


def test_read_sweeps_tags_rows_with_the_setting(tmp_path):
    p = tmp_path / "sweeps.csv"
    p.write_text("width,lr,loss,step,seed,param,optim,diverged\n32,0.01,2.5,10,0,sp-global,adam,0\n")
    rows = run.read_sweeps([p, tmp_path / "missing.csv"], run.SETTINGS[0])
    assert rows == [{"width": "32", "lr": "0.01", "loss": "2.5", "step": "10", "seed": "0", "param": "stp",
                     "optim": "adam", "diverged": "0", "setting": "global"}]


@pytest.mark.slow
def test_smoke_scale_end_to_end(tmp_path):
    res, work = tmp_path / "res", tmp_path / "work"
    proc = subprocess.run([sys.executable, str(EXAMPLE / "run.py"), "--scale", "smoke", "--work", str(work),
                           "--results", str(res)], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((res / "summary.json").read_text())
    assert set(summary["settings"]) == {"sp-global", "sp-per-layer", "mup-per-layer"}
    assert summary["wall_time_s"] > 0 and summary["machine"]["cores"] >= 1 and summary["commands"]
    assert (res / "transfer.png").stat().st_size > 20_000 and (res / "fit.png").exists()

    # The merged sweep is accepted by `fit` as a user would call it: three sweeps.
    fit = subprocess.run(["scaleadvise", "fit", str(res / "sweeps.csv"), "--group-by", "param,setting", "--json",
                          "--bootstrap", "0"], capture_output=True, text=True)
    assert fit.returncode == 0, fit.stderr
    groups = json.loads(fit.stdout)["groups"]
    assert len(groups) == 3

    h = summary["unigram_entropy_nats"]
    assert 2.0 < h < 5.6  # bytes of Python source: far below ln 256 = 5.55, far above 0
    widths = summary["config"]["widths"]
    for name, s in summary["settings"].items():
        k, ci = s["lr_exponent"], s["lr_exponent_ci"]
        assert k is not None and ci is not None and all(math.isfinite(v) for v in ci), name
        assert ci[0] <= k <= ci[1], name
        assert [o["width"] for o in s["optima"]] == widths, name
        for o in s["optima"]:  # the grid was extended until the optimum lies inside it
            assert o["edge"] is None, (name, o)
            assert o["loss"] < h - 0.1, (name, o)  # the model uses context: beats the unigram model
        # Wider is better at the best LR, at the same step count.
        assert s["optima"][-1]["loss"] < s["optima"][0]["loss"], name

    # At the base width the per-layer LR is the base LR (c only acts through (n/b)^-c):
    # the global and per-layer SP runs are the same run.
    with open(res / "sweeps.csv") as f:
        rows = [r for r in csv.DictReader(f) if int(r["width"]) == widths[0] and r["param"] == "stp"]
    glob = {r["lr"]: float(r["loss"]) for r in rows if r["setting"] == "global"}
    per = {r["lr"]: float(r["loss"]) for r in rows if r["setting"] == "per-layer-full"}
    shared = set(glob) & set(per)
    assert len(shared) >= 3
    assert all(math.isclose(glob[lr], per[lr], rel_tol=1e-4) for lr in shared)
