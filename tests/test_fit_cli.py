"""`scaleadvise fit` as a user runs it: output contracts, plot, and every bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from scaleadvise.analysis.fit_synth import synthetic_sweep

WIDTHS = [128, 256, 512, 1024]
LRS = 2.0 ** np.arange(-16, -2, 0.5)


@pytest.fixture
def sweep(tmp_path):
    df = synthetic_sweep(WIDTHS, LRS, k=-1.0, lr0=2.0**-6, noise=0.003, seeds=2, rng=3)
    path = tmp_path / "sweeps.csv"
    df.to_csv(path, index=False)
    return path


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err  # one line, no traceback
    assert lines[0].startswith("scaleadvise: error: ")
    return lines[0]


def test_human_output(cli, sweep):
    code, out, err = cli("fit", str(sweep), "--target-width", "16384", "--bootstrap", "100")
    assert code == 0, err
    assert "refined LR*" in out and "max stable LR" in out
    assert "does not transfer" in out and "per doubling of width" in out
    assert "at width 16384: lr*" in out
    assert "Traceback" not in err


def test_json_contract(cli, sweep):
    code, out, _ = cli("fit", str(sweep), "--target-width", "16384", "--json", "--bootstrap", "100")
    doc = json.loads(out)  # exactly one JSON document on stdout
    assert code == 0
    (g,) = doc["groups"]
    for field in ("key", "optima", "lr_exponent", "lr_exponent_ci", "max_stable_lr_exponent", "transfer",
                  "predicted_lr", "predicted_lr_ci"):
        assert field in g
    assert [o["width"] for o in g["optima"]] == WIDTHS
    assert {"width", "lr", "loss"} <= set(g["optima"][0])
    assert g["lr_exponent_ci"][0] <= -1.0 <= g["lr_exponent_ci"][1]
    assert g["predicted_lr_ci"][0] <= 2.0**-6 * (16384 / 128) ** -1 <= g["predicted_lr_ci"][1]
    assert g["transfer"] is False


def test_json_without_target_has_no_prediction(cli, sweep):
    _, out, _ = cli("fit", str(sweep), "--json", "--bootstrap", "0")
    g = json.loads(out)["groups"][0]
    assert "predicted_lr" not in g and g["lr_exponent_ci_bootstrap"] is None and g["lr_exponent_ci"] is not None


def test_group_by_theory_and_plot(cli, tmp_path):
    a = synthetic_sweep(WIDTHS, LRS, k=-1.0, lr0=2.0**-6, noise=0.002, seeds=2).assign(param="stp", optim="adam")
    b = synthetic_sweep(WIDTHS, LRS, k=0.0, lr0=2.0**-9, noise=0.002, seeds=2).assign(param="mup", optim="adam")
    path = tmp_path / "two.csv"
    pd.concat([a, b]).to_csv(path, index=False)
    png = tmp_path / "fit.png"
    code, out, err = cli("fit", str(path), "--group-by", "param,optim", "--setting", "global", "--plot", str(png),
                         "--json", "--target-width", "8192", "--bootstrap", "50")
    assert code == 0, err
    doc = json.loads(out)
    assert [g["key"] for g in doc["groups"]] == [{"param": "mup", "optim": "adam"}, {"param": "stp", "optim": "adam"}]
    stp = doc["groups"][1]
    assert stp["interpretation"]["predicted_lr_exponent"]["full"] == -1.0  # Table 1: STP Adam hidden/readout 1/n
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_group_by_leaving_out_a_varying_column_warns(cli, tmp_path):
    a = synthetic_sweep(WIDTHS, LRS, k=-1.0, lr0=2.0**-6, noise=0.002, seeds=1).assign(param="stp", optim="adam")
    b = synthetic_sweep(WIDTHS, LRS, k=0.0, lr0=2.0**-9, noise=0.002, seeds=1).assign(param="mup", optim="adam")
    path = tmp_path / "two.csv"
    pd.concat([a, b]).to_csv(path, index=False)
    code, out, err = cli("fit", str(path), "--group-by", "optim", "--json", "--bootstrap", "0")
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["groups"]) == 1 and doc["groups"][0]["runs"] == len(a) + len(b)  # pooled, as asked
    assert any("column 'param' takes 2 values (mup, stp) but is not in --group-by" in w for w in doc["warnings"])
    _, out, _ = cli("fit", str(path), "--json", "--bootstrap", "0")  # default grouping separates them
    assert len(json.loads(out)["groups"]) == 2 and not any("--group-by" in w for w in json.loads(out)["warnings"])


def test_plot_without_matplotlib_is_a_clear_error(cli, sweep, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, _, err = cli("fit", str(sweep), "--plot", str(tmp_path / "x.png"))
    assert code == 2 and "pip install 'scaleadvise[plot]'" in _error_line(err)
    assert not (tmp_path / "x.png").exists()


def test_jsonl_aliases_and_overrides(cli, tmp_path):
    df = synthetic_sweep(WIDTHS, LRS, k=-0.5, lr0=2.0**-8)
    df = df.rename(columns={"width": "d_model", "lr": "learning_rate", "loss": "eval_loss"})
    path = tmp_path / "runs.jsonl"
    df.to_json(path, orient="records", lines=True)
    code, out, _ = cli("fit", str(path), "--json", "--bootstrap", "0")
    doc = json.loads(out)
    assert code == 0 and doc["columns"]["width"] == "d_model"
    assert doc["groups"][0]["lr_exponent"] == pytest.approx(-0.5, abs=1e-6)
    other = tmp_path / "odd.tsv"
    df.rename(columns={"learning_rate": "peak"}).to_csv(other, sep="\t", index=False)
    code, out, _ = cli("fit", str(other), "--lr-col", "peak", "--json", "--bootstrap", "0")
    assert code == 0 and json.loads(out)["groups"][0]["lr_exponent"] == pytest.approx(-0.5, abs=1e-6)


# --------------------------------------------------------------------------- bad input: errors (exit 2)


def test_missing_file(cli, tmp_path):
    code, _, err = cli("fit", str(tmp_path / "nope.csv"))
    assert code == 2 and "nope.csv: no such file" in _error_line(err)


def test_missing_column_lists_found_and_tried(cli, tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("width,lr,score\n128,0.1,3.0\n")
    code, _, err = cli("fit", str(path))
    line = _error_line(err)
    assert code == 2 and "missing column 'loss'" in line and "eval_loss" in line and "'score'" in line
    assert "--loss-col" in line


def test_non_numeric_cell_names_line_and_column(cli, tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("width,lr,loss\n128,0.1,3.0\n128,abc,3.1\n")
    code, _, err = cli("fit", str(path))
    assert code == 2 and "line 3, column 'lr': 'abc' is not a number" in _error_line(err)


@pytest.mark.parametrize("column,value", [("lr", "0"), ("lr", "-0.01"), ("width", "0"), ("width", "-128")])
def test_non_positive_lr_or_width(cli, tmp_path, column, value):
    row = {"width": "256", "lr": "0.1", "loss": "3.0"} | {column: value}
    path = tmp_path / "s.csv"
    path.write_text(f"width,lr,loss\n128,0.1,3.0\n{row['width']},{row['lr']},{row['loss']}\n")
    code, _, err = cli("fit", str(path))
    assert code == 2 and f"line 3, column '{column}'" in _error_line(err) and "must be > 0" in err


def test_unknown_group_by_column(cli, sweep):
    code, _, err = cli("fit", str(sweep), "--group-by", "param")
    assert code == 2 and "--group-by: column 'param' not in" in _error_line(err)


def test_step_without_step_column(cli, sweep):
    code, _, err = cli("fit", str(sweep), "--step", "100")
    assert code == 2 and "no step column" in _error_line(err)


@pytest.mark.parametrize("args,needle", [(["--setting", "sideways"], "--setting: unknown setting"),
                                         (["--optimum", "best"], "--optimum"),
                                         (["--param", "xyz", "--optim", "adam", "--setting", "global"], "xyz")])
def test_bad_flags(cli, sweep, args, needle):
    code, _, err = cli("fit", str(sweep), *args)
    assert code == 2 and needle in _error_line(err)


def test_unknown_file_type_and_empty_file(cli, tmp_path):
    bad = tmp_path / "s.xlsx"
    bad.write_text("x")
    code, _, err = cli("fit", str(bad))
    assert code == 2 and "unknown file type" in _error_line(err)
    empty = tmp_path / "e.csv"
    empty.write_text("")
    code, _, err = cli("fit", str(empty))
    assert code == 2 and "empty" in _error_line(err)


# --------------------------------------------------------------------------- bad input: warnings (exit 0)


def test_width_with_every_run_diverged_is_a_warning(cli, tmp_path):
    df = synthetic_sweep(WIDTHS, LRS, k=-1.0, lr0=2.0**-6)
    df.loc[df["width"] == 1024, "loss"] = np.nan
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    code, out, err = cli("fit", str(path), "--json", "--bootstrap", "0")
    assert code == 0
    assert "every run diverged (NaN/inf) at width 1024" in err
    g = json.loads(out)["groups"][0]
    assert g["optima"][-1]["lr"] is None and g["lr_exponent"] == pytest.approx(-1.0, abs=1e-6)


def test_fewer_than_two_widths_reports_optima_without_exponent(cli, tmp_path):
    path = tmp_path / "s.csv"
    synthetic_sweep([256], LRS, lr0=2.0**-7).to_csv(path, index=False)
    code, out, err = cli("fit", str(path), "--json", "--target-width", "4096")
    assert code == 0 and "no exponent can be fitted" in err
    g = json.loads(out)["groups"][0]
    assert g["lr_exponent"] is None and g["predicted_lr"] is None and g["transfer"] is None
    assert g["optima"][0]["lr_refined"] == pytest.approx(2.0**-7, rel=1e-6)
    code, out, _ = cli("fit", str(path))  # the human table still shows the width's optimum
    assert code == 0 and "256" in out and "no exponent" in out


def test_fewer_than_three_lrs_is_not_refined(cli, tmp_path):
    df = synthetic_sweep(WIDTHS, LRS, k=-1.0, lr0=2.0**-6)
    keep = (df["width"] != 512) | df["lr"].isin([2.0**-9, 2.0**-8])
    path = tmp_path / "s.csv"
    df[keep].to_csv(path, index=False)
    code, out, err = cli("fit", str(path), "--json", "--bootstrap", "0")
    assert code == 0 and "fewer than three LRs at width 512" in err
    rec = json.loads(out)["groups"][0]["optima"][2]
    assert rec["refined"] is False and rec["n_lrs"] == 2


def test_optimum_at_the_sweep_edge_warns_which_way(cli, tmp_path):
    df = synthetic_sweep(WIDTHS, LRS, k=-1.0, lr0=2.0**-6)
    df = df[~((df["width"] == 1024) & (df["lr"] > 2.0**-10))]  # 1024's optimum (2^-9) is cut off
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    code, _, err = cli("fit", str(path), "--bootstrap", "0")
    assert code == 0 and "largest LR swept at width 1024: extend the sweep upward" in err


def test_help_shows_worked_examples(cli):
    code, out, _ = cli("fit", "--help")
    assert code == 0 and "scaleadvise fit sweeps.csv --target-width 16384" in out and "--transfer-tol" in out


def test_progress_bar_reports_every_replicate():
    from scaleadvise.cli.fit import _progress

    with _progress(True) as start:
        advance = start("all runs", 10)
        for _ in range(10):
            advance(1)
    with _progress(False) as none:
        assert none is None


# --------------------------------------------------------------------------- the same run twice


def _dup_table(tmp_path, name: str, **kw):
    """A two-seed sweep whose run (width 256, lr LRS[9], seed 1) appears a second time, appended
    at the end with another loss (a rerun logged into the same file)."""
    df = synthetic_sweep(WIDTHS, LRS, k=-1.0, lr0=2.0**-6, noise=0.003, seeds=2, rng=3, **kw)
    twin = df[(df["width"] == 256) & (df["lr"] == LRS[9]) & (df["seed"] == 1)].assign(loss=lambda d: d["loss"] + 0.5)
    both = pd.concat([df, twin], ignore_index=True)
    first = int(np.flatnonzero((both["width"] == 256) & (both["lr"] == LRS[9]) & (both["seed"] == 1))[0])
    path = tmp_path / name
    if name.endswith(".csv"):
        both.to_csv(path, index=False)
    elif name.endswith(".tsv"):
        both.to_csv(path, sep="\t", index=False)
    elif name.endswith(".jsonl"):
        both.to_json(path, orient="records", lines=True)
    else:
        both.to_parquet(path)
    return path, df, first, len(both) - 1


@pytest.mark.parametrize("name,where", [("s.csv", "line {}"), ("s.tsv", "line {}"), ("s.jsonl", "record {}"),
                                        ("s.parquet", "row {}")])
def test_the_same_run_twice_is_an_error_naming_both_rows(cli, tmp_path, name, where):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    path, _, first, last = _dup_table(tmp_path, name)
    code, out, err = cli("fit", str(path), "--json")
    line = _error_line(err)
    offset = 2 if "line" in where else 1  # CSV/TSV: the header is line 1
    assert code == 2 and out == ""
    assert f"{where.format(first + offset)} and {where.format(last + offset)} are the same run" in line
    assert "width=256" in line and "seed=1" in line and "--duplicates last" in line


def test_duplicates_last_keeps_the_last_and_says_so(cli, tmp_path):
    path, df, _, _ = _dup_table(tmp_path, "s.csv")
    code, out, err = cli("fit", str(path), "--json", "--bootstrap", "0", "--duplicates", "last")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["runs"] == len(df)  # counted once
    assert any("kept the last of each" in w for w in doc["warnings"])
    # The run kept is the appended one (its loss + 0.5), and the earlier row is gone.
    from scaleadvise.analysis.fit import FitOptions, load_runs

    runs, *_ = load_runs(str(path), FitOptions(duplicates="last"))
    at = (runs.widths[runs.width] == 256) & (runs.lrs[runs.lr] == LRS[9])
    twin = df[(df["width"] == 256) & (df["lr"] == LRS[9])].sort_values("seed")["loss"].to_numpy()
    assert sorted(runs.loss[at]) == pytest.approx(sorted([twin[0], twin[1] + 0.5]))
    code, _, err = cli("fit", str(path), "--duplicates", "first")
    assert code == 2 and "--duplicates: 'first'" in _error_line(err)


def test_an_appended_log_of_steps_is_caught(cli, tmp_path):
    # Every logged step of a run written twice (a resumed logger appending to the same file).
    df = synthetic_sweep(WIDTHS[:2], LRS, k=-1.0, lr0=2.0**-6, seeds=2, steps=[100, 200, 300], rng=1)
    run = df[(df["width"] == 128) & (df["lr"] == LRS[5]) & (df["seed"] == 0)]
    path = tmp_path / "steps.csv"
    pd.concat([df, run], ignore_index=True).to_csv(path, index=False)
    code, _, err = cli("fit", str(path))
    assert code == 2 and "are the same run (width=128" in _error_line(err) and "step=100" in err
    code, out, err = cli("fit", str(path), "--json", "--bootstrap", "0", "--duplicates", "last")
    assert code == 0 and json.loads(out)["runs"] == len(df) // 3


def test_without_a_seed_column_only_identical_rows_are_the_same_run(cli, tmp_path):
    df = synthetic_sweep(WIDTHS, LRS, k=-1.0, lr0=2.0**-6, noise=0.003, seeds=2, rng=3).drop(columns="seed")
    path = tmp_path / "unnamed.csv"
    df.to_csv(path, index=False)  # two unnamed seeds per cell, different losses: averaged as before
    code, out, _ = cli("fit", str(path), "--json", "--bootstrap", "0")
    assert code == 0 and json.loads(out)["runs"] == len(df)
    pd.concat([df, df.iloc[[7]]]).to_csv(path, index=False)  # one row appended again, unchanged
    code, _, err = cli("fit", str(path))
    assert code == 2 and f"line 9 and line {len(df) + 2} are the same run" in _error_line(err)
    assert "add a seed column" in err


def test_an_optimum_at_the_sweep_edge_gets_no_interval(cli, tmp_path):
    # Width 1024's optimum (2^-9) is cut off: the best LR left is the largest swept, and the
    # optimum could lie anywhere above it. An interval for k would be falsely narrow.
    df = synthetic_sweep(WIDTHS, LRS, k=-1.0, lr0=2.0**-6, noise=0.003, seeds=2, rng=3)
    path = tmp_path / "s.csv"
    df[~((df["width"] == 1024) & (df["lr"] > 2.0**-10))].to_csv(path, index=False)
    code, out, err = cli("fit", str(path), "--json", "--bootstrap", "0", "--target-width", "4096")
    g = json.loads(out)["groups"][0]
    assert code == 0 and g["lr_exponent"] is not None
    assert g["lr_exponent_ci"] is None and g["predicted_lr_ci"] is None and g["transfer"] is None
    assert "no interval" in g["verdict"] and "edge of the sweep at width 1024" in g["verdict"]
