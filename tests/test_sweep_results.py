"""scaleadvise/sweep/results.py: rows of sweeps.csv, atomic writes, no duplicates."""

import csv
import io
import json
import math
import os
from pathlib import Path

import pytest

from scaleadvise.sweep.plan import Run
from scaleadvise.sweep.results import fields, make_row, render_csv, scan, write_atomic, write_csv

DONE = {"status": "done", "step": 300, "steps": 300, "width": 64, "depth": 2, "lr": 2.0 ** -10, "seed": 0,
        "train_loss": 3.1, "eval_loss": 3.25, "parameterization": "mup", "optimizer": "adam", "seconds": 9.0}


def test_a_finished_run_is_a_fit_row():
    row = make_row(Run(64, None, 2.0 ** -10, 0), DONE)
    assert row == {"width": 64, "lr": 2.0 ** -10, "loss": 3.25, "step": 300, "seed": 0, "param": "mup",
                   "optim": "adam", "diverged": 0}


def test_a_diverged_run_is_nan_at_its_planned_last_step():
    res = {**DONE, "status": "diverged", "step": 17, "train_loss": math.nan, "eval_loss": None}
    row = make_row(Run(64, 4, 2.0 ** -6, 1), res)
    assert math.isnan(row["loss"]) and row["diverged"] == 1 and row["depth"] == 4
    assert row["step"] == 300  # `fit` compares runs at their last step; step 17 would drop the run


def test_loss_falls_back_to_train_loss_and_nan_means_diverged():
    assert make_row(Run(64, None, 0.1, 0), {**DONE, "eval_loss": None})["loss"] == 3.1
    row = make_row(Run(64, None, 0.1, 0), {**DONE, "eval_loss": math.inf, "train_loss": math.nan})
    assert math.isnan(row["loss"]) and row["diverged"] == 1


def test_the_lr_is_the_run_s_exact_value():
    # the folder name holds 6 digits; result.json's echo is used when it agrees, else the plan's
    parsed = Run(64, None, 0.000976562, 0)
    assert make_row(parsed, DONE)["lr"] == 2.0 ** -10
    assert make_row(Run(64, None, 0.5, 0), DONE)["lr"] == 0.5
    assert make_row(Run(64, None, 0.5, 0), {**DONE, "lr": "x"})["lr"] == 0.5


def test_columns():
    assert fields(False) == ("width", "lr", "loss", "step", "seed", "param", "optim", "diverged")
    assert fields(True)[:3] == ("width", "depth", "lr")


def _runs(out: Path, results: dict[str, dict | str]) -> None:
    for name, res in results.items():
        (out / name).mkdir(parents=True)
        (out / name / "result.json").write_text(res if isinstance(res, str) else json.dumps(res))


def test_scan_reads_finished_runs_only(tmp_path):
    _runs(tmp_path, {"w64_lr0.000976562_s0": DONE,
                     "w64_lr0.00195312_s0": {**DONE, "lr": 2.0 ** -9, "status": "diverged", "eval_loss": None},
                     "w64_lr0.00390625_s0": {**DONE, "status": "stopped"},
                     "w64_lr0.0078125_s0": '{"status": "do',
                     "w64_d2_lr0.001_s0": DONE,  # depth-swept name in a sweep without depth: not ours
                     "notes": DONE})
    (tmp_path / "w128_lr0.1_s0").write_text("a file, not a run")
    rows = scan(tmp_path, depth_axis=False)
    assert sorted(rows) == ["w64_lr0.000976562_s0", "w64_lr0.00195312_s0"]
    assert rows["w64_lr0.00195312_s0"]["diverged"] == 1
    assert rows["w64_lr0.000976562_s0"]["lr"] == 2.0 ** -10
    assert scan(tmp_path / "missing", False) == {}


def test_csv_is_sorted_without_duplicates_and_fit_reads_it(tmp_path, cli):
    rows = {}
    for w in (128, 64):
        for k, lr in enumerate((2.0 ** -9, 2.0 ** -8, 2.0 ** -7, 2.0 ** -6)):
            loss = 3 + 0.1 * (k - 1) ** 2 + 16 / w
            res = {**DONE, "lr": lr, "eval_loss": loss} if k < 3 else {**DONE, "status": "diverged", "eval_loss": None}
            rows[Run(w, None, lr, 0).name] = make_row(Run(w, None, lr, 0), res)
    again = Run(64, None, 2.0 ** -9, 0)  # the same run finishing again (a rerun): still one row, the latest
    rows[again.name] = make_row(again, {**DONE, "lr": again.lr, "eval_loss": 3.5})
    path = tmp_path / "sweeps.csv"
    write_csv(path, rows, depth_axis=False)
    table = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(table) == 8 and len({(r["width"], r["lr"], r["seed"]) for r in table}) == 8
    assert [int(r["width"]) for r in table] == [64] * 4 + [128] * 4
    assert table[3]["loss"] == "nan" and table[3]["diverged"] == "1" and table[3]["step"] == "300"
    code, out, err = cli("fit", str(path), "--json", "--bootstrap", "0")
    assert code == 0, err
    doc = json.loads(out)
    optima = doc["groups"][0]["optima"]
    assert [o["lr"] for o in optima] == [2.0 ** -8, 2.0 ** -8]  # read back exactly
    assert all(o["max_stable_lr"] == 2.0 ** -7 for o in optima)  # the NaN rows count as unstable


def test_write_atomic_replaces_whole_and_keeps_the_umask(tmp_path):
    path = tmp_path / "sweeps.csv"
    old = os.umask(0o022)
    try:
        write_atomic(path, "a\n")
        write_atomic(path, "b\n")
    finally:
        os.umask(old)
    assert path.read_text() == "b\n"
    assert path.stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["sweeps.csv"]


def test_write_atomic_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "sweeps.csv"
    path.write_text("old\n")

    with pytest.raises(TypeError):
        write_atomic(path, 12)  # not text: fails after the temp file exists
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["sweeps.csv"]


def test_render_writes_depth_when_swept():
    row = make_row(Run(64, 4, 0.01, 0), {**DONE, "lr": 0.01})
    text = render_csv({"x": row}, depth_axis=True)
    assert text.splitlines() == ["width,depth,lr,loss,step,seed,param,optim,diverged",
                                 "64,4,0.01,3.25,300,0,mup,adam,0"]
