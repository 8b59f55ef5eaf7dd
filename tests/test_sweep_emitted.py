"""`scaleadvise sweep` on the real emitted training script (`scaleadvise emit-train`), under
a local Ray runtime: a tiny NanoDO on CPU, one thread per run. The fake script of
tests/test_sweep_cli.py covers the sweep's own behaviour; this checks that the emitted
script and the sweep keep the same one-run contract (flags, result.json, exit codes,
checkpoints on SIGINT/SIGTERM, --resume)."""

import csv
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ray")

TINY = ("--param", "mup", "--optim", "adam", "--width", "16", "--depth", "1", "--head-dim", "8", "--context", "16",
        "--vocab", "64", "--base-width", "16")
def run_flags(log_every: int = 5) -> tuple[str, ...]:
    return ("--batch-size", "4", "--eval-every", "1000", "--eval-batches", "1", "--log-every", str(log_every),
            "--grads-every", "0", "--align-every", "0", "--compile", "off")


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("emitted") / "train.py"
    r = subprocess.run(["scaleadvise", "emit-train", *TINY, "-o", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    help_text = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True).stdout
    if "--sweep-lr" in help_text:
        pytest.skip("the emitted script still has its own sweep mode: the one-run script is not on this branch yet")
    return path


def _sweep(script: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scaleadvise", "sweep", str(script), *args], capture_output=True,
                          text=True, timeout=600, **kw)


def test_a_small_sweep_of_the_emitted_script(script, tmp_path, cli):
    out = tmp_path / "sweep"
    args = ("--widths", "16,32", "--lrs", "2^-8:2^-6:2", "--steps", "10", "--out", str(out), "--json",
            "--", *run_flags())
    r = _sweep(script, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["runs"]["done"] + doc["runs"]["diverged"] == 4 and doc["runs"]["failed"] == 0
    with open(out / "sweeps.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["width"], float(r["lr"])) for r in rows] == [(w, lr) for w in ("16", "32")
                                                            for lr in (2.0 ** -8, 2.0 ** -6)]
    for row in rows:
        assert row["param"] == "mup" and row["optim"] == "adam" and row["step"] == "10" and row["seed"] == "0"
        assert row["diverged"] == "1" or 0 < float(row["loss"]) < math.log(64) + 1  # learns from about ln(vocab)
        res = json.loads((out / f"w{row['width']}_lr{float(row['lr']):.6g}_s0" / "result.json").read_text())
        assert {"status", "step", "steps", "width", "depth", "lr", "seed", "train_loss", "eval_loss",
                "parameterization", "optimizer", "seconds"} <= set(res)
        assert (res["width"], res["lr"], res["steps"]) == (int(row["width"]), float(row["lr"]), 10)
    code, fit_out, err = cli("fit", str(out / "sweeps.csv"), "--json", "--bootstrap", "0")
    assert code == 0, err
    assert [o["width"] for o in json.loads(fit_out)["groups"][0]["optima"]] == [16, 32]

    again = _sweep(script, *args)
    assert again.returncode == 0 and json.loads(again.stdout)["runs"]["skipped"] == 4


@pytest.mark.slow  # the fake script covers this path under Ray in the default run
def test_a_bad_script_flag_is_the_script_s_one_line(script, tmp_path):
    r = _sweep(script, "--widths", "16", "--lrs", "1e-3", "--steps", "2", "--out", str(tmp_path / "s"),
               "--", "--batch-size", "0")
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("scaleadvise: error: run w16_lr0.001_s0: ") and "--batch-size" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_and_resume_the_emitted_script(script, tmp_path, signum):
    """Stopped while training: the runs checkpoint (exit 130/143), a rerun resumes them, and
    their metrics.csv has every step once."""
    out = tmp_path / "sweep"
    args = ("--widths", "16", "--lrs", "2^-8,2^-7", "--steps", "1000", "--out", str(out), "--", *run_flags(1))
    proc = subprocess.Popen([sys.executable, "-m", "scaleadvise", "sweep", str(script), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = [out / "w16_lr0.00390625_s0", out / "w16_lr0.0078125_s0"]
    t0 = time.time()
    while not all((d / "metrics.csv").exists() and len((d / "metrics.csv").read_text().splitlines()) > 20
                  for d in runs):
        assert proc.poll() is None and time.time() - t0 < 300, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"scaleadvise: sweep interrupted ({signum.name})")
    status = {d: json.loads((d / "result.json").read_text())["status"] for d in runs}
    stopped = [d for d in runs if status[d] == "stopped"]  # a run may just have finished (timing)
    assert stopped and all(status[d] == "done" for d in runs if d not in stopped), status
    assert all((d / "checkpoint.pt").exists() for d in stopped)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

    r = _sweep(script, "--json", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["runs"]["resumed"] == len(stopped)
    for d in runs:
        with open(d / "metrics.csv") as f:
            steps = [int(row["step"]) for row in csv.DictReader(f)]
        assert steps == sorted(set(steps)) and steps[-1] == 1000  # resumed, no step logged twice
