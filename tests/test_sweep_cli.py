"""`scaleadvise sweep` (scaleadvise/cli/sweep.py): bad input in-process (no Ray is started
for any of it), then a few sweeps of tests/sweep_fake_train.py under a real local Ray
runtime, as a user runs them (a subprocess, signals included). Ray costs a few seconds
per start: the Ray tests are few."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import assert_bad_input

FAKE = Path(__file__).with_name("sweep_fake_train.py")
GRID = ("--widths", "32,64", "--lrs", "2^-9:2^-8:1")


def _bad(cli, tmp_path, *args, match):
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_bad_input(cli, "sweep", *args, match=match)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


@pytest.mark.parametrize("args, match", [
    (("--lrs", "2^-9:2^-8"), "--lrs '2^-9:2^-8': expected START:STOP:STEP"),
    (("--lrs", "2^-8:2^-9:1"), "STOP is below START"),
    (("--lrs", "abc"), "--lrs 'abc': not a number"),
    (("--lrs", "0,1e-3"), "positive finite"),
    (("--lrs", "nan"), "positive finite"),
    (("--widths", "0,64"), "--widths '0,64': 0 is below 1"),
    (("--widths", "-32"), "--widths '-32': -32 is below 1"),
    (("--widths", "32,x"), "'x' is not an integer"),
    (("--widths", ""), "--widths '': empty entry"),
    (("--seeds", "0,0"), "--seeds '0,0': 0 is listed twice"),
    (("--depths", "0"), "--depths '0': 0 is below 1"),
    (("--steps", "0"), "--steps"),
    (("--steps", "many"), "--steps"),
    (("--gpus-per-run", "-1"), "--gpus-per-run -1: must be a finite number >= 0"),
    (("--gpus-per-run", "nan"), "--gpus-per-run nan"),
    (("--cpus-per-run", "0"), "--cpus-per-run 0: must be a finite number > 0"),
    (("--max-parallel", "0"), "--max-parallel 0: must be at least 1"),
    (("--threads-per-run", "0"), "--threads-per-run 0: must be at least 1"),
    (("--address", " "), "--address: empty"),
    (("--address", "http://head:6379"), "--address http://head:6379: expected auto, HOST:PORT or ray://HOST:PORT"),
    (("--address", "127.0.0.1:1"), "--address 127.0.0.1:1: nothing answers at 127.0.0.1:1"),
    (("--bogus",), "No such option: --bogus"),
    (("--", "--width", "64"), "script args: --width sets --width"),
    (("--", "--steps=5"), "script args: --steps=5 sets --steps"),
])
def test_bad_flags(cli, tmp_path, args, match):
    base = dict(zip(GRID[::2], GRID[1::2]))
    flags = [a for k, v in base.items() if k not in args for a in (k, v)]
    _bad(cli, tmp_path, str(FAKE), *flags, "--out", str(tmp_path / "s"), *args, match=match)


def test_missing_flags(cli, tmp_path):
    _bad(cli, tmp_path, str(FAKE), "--lrs", "1e-3", match="Missing option '--widths'")
    _bad(cli, tmp_path, str(FAKE), "--widths", "64", match="Missing option '--lrs'")
    _bad(cli, tmp_path, "--widths", "64", "--lrs", "1e-3", match="Missing argument 'SCRIPT'")


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.py", "no such file"),
    (lambda d: d, "is a folder"),
    (lambda d: _file(d / "empty.py", ""), "is empty"),
    (lambda d: _file(d / "bad.py", "def f(:\n"), "line 1: not Python"),
    (lambda d: _file(d / "bin.py", "\x00\x01"), "not a Python file"),
])
def test_bad_script(cli, tmp_path, make, match):
    script = make(tmp_path)
    _bad(cli, tmp_path, str(script), *GRID, "--out", str(tmp_path / "s"), match=f"SCRIPT {script}")
    assert_bad_input(cli, "sweep", str(script), *GRID, "--out", str(tmp_path / "s"), match=match)


def _file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bad_out(cli, tmp_path):
    (tmp_path / "afile").write_text("x")
    _bad(cli, tmp_path, str(FAKE), *GRID, "--out", str(tmp_path / "afile"), match="exists and is not a folder")
    _bad(cli, tmp_path, str(FAKE), *GRID, "--out", str(tmp_path / "afile" / "s"), match="is not a folder")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    _bad(cli, tmp_path, str(FAKE), *GRID, "--out", str(tmp_path / "mine"), match="not empty and not a sweep folder")
    (tmp_path / "mine" / "notes.txt").unlink()
    (tmp_path / "mine" / "sweep.json").write_text("{")
    _bad(cli, tmp_path, str(FAKE), *GRID, "--out", str(tmp_path / "mine"), match="cannot read sweep.json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_out(cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _bad(cli, tmp_path, str(FAKE), *GRID, "--out", str(ro / "s"), match="is not writable")
    finally:
        ro.chmod(0o755)


def test_unwritable_out_as_root_too(cli, tmp_path, monkeypatch):
    """os.access decides; root's answer is faked here so the check runs everywhere."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path / "ro") else real(p, mode))
    (tmp_path / "ro").mkdir()
    _bad(cli, tmp_path, str(FAKE), *GRID, "--out", str(tmp_path / "ro" / "s"), match="is not writable")


def test_ray_missing_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    _bad(cli, tmp_path, str(FAKE), *GRID, "--out", str(tmp_path / "s"),
         match="scaleadvise sweep needs Ray: pip install 'scaleadvise[sweep]'")


def test_dry_run_plans_without_ray_or_files(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    code, out, err = cli("sweep", str(FAKE), *GRID, "--depths", "2,4", "--seeds", "0,1", "--steps", "30",
                         "--out", str(tmp_path / "s"), "--dry-run", "--json", "--", "--batch-size", "8")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["runs"]["planned"] == doc["runs"]["fresh"] == 16 and doc["dry_run"] and doc["sweeps_csv"] is None
    first = doc["plan"][0]
    assert first["run"] == "w32_d2_lr0.00195312_s0" and first["action"] == "fresh"
    assert first["args"][-2:] == ["--batch-size", "8"] and "--depth" in first["args"]
    assert list(tmp_path.iterdir()) == []
    code, out, _ = cli("sweep", str(FAKE), *GRID, "--out", str(tmp_path / "s"), "--dry-run")
    assert code == 0 and "4 runs: 4 to start" in out and "first command: python" in out


def test_help_has_examples(cli):
    code, out, _ = cli("sweep", "--help")
    assert code == 0
    for text in ("--widths 64,128,256 --lrs 2^-10:2^-6:0.5", "--gpus-per-run", "--address", "shared",
                 "scaleadvise fit runs/sweep/sweeps.csv", "130/143"):
        assert text in " ".join(out.split()), text


# ---- under a real local Ray runtime -----------------------------------------------------

def _sweep(*args: str, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scaleadvise", "sweep", str(FAKE), *args], capture_output=True,
                          text=True, timeout=timeout, **kw)


def _csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_small_sweep_on_ray(tmp_path, cli):
    pytest.importorskip("ray")
    out = tmp_path / "s"
    t0 = time.time()
    r = _sweep("--widths", "32,64", "--lrs", "2^-8:2^-7:1", "--seeds", "0", "--steps", "5", "--out", str(out),
               "--json", "--", "--diverge-above", "0.005")
    took = time.time() - t0
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["runs"] == {"planned": 4, "skipped": 0, "resumed": 0, "fresh": 4, "done": 2, "diverged": 2,
                           "failed": 0, "stopped": 0}
    assert doc["engine"]["address"] == "local" and doc["engine"]["cpus"] >= 1
    assert doc["sweeps_csv"] == str(out / "sweeps.csv") and doc["rows"] == 4
    rows = _csv(out / "sweeps.csv")
    assert [(r["width"], r["lr"], r["diverged"]) for r in rows] == [
        ("32", "0.00390625", "0"), ("32", "0.0078125", "1"), ("64", "0.00390625", "0"), ("64", "0.0078125", "1")]
    assert all(r["param"] == "mup" and r["optim"] == "adam" and r["step"] == "5" for r in rows)
    code, fit_out, err = cli("fit", str(out / "sweeps.csv"), "--json", "--bootstrap", "0")
    assert code == 0, err
    optima = json.loads(fit_out)["groups"][0]["optima"]
    assert [(o["width"], o["lr"], o["max_stable_lr"]) for o in optima] == [(32, 2.0 ** -8, 2.0 ** -8),
                                                                          (64, 2.0 ** -8, 2.0 ** -8)]
    for d in out.glob("w*"):
        assert (d / "run.log").read_text().startswith("$ python ")
        assert (d / "starts.log").read_text() == "fresh 0\n"

    # The same command again: everything finished, so no Ray, no run, the same sweeps.csv.
    t0 = time.time()
    again = _sweep("--widths", "32,64", "--lrs", "2^-8:2^-7:1", "--seeds", "0", "--steps", "5", "--out", str(out),
                   "--json", "--", "--diverge-above", "0.005")
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["runs"]["skipped"] == 4 and doc["engine"] is None and doc["rows"] == 4
    assert time.time() - t0 < took
    assert all((d / "starts.log").read_text() == "fresh 0\n" for d in out.glob("w*"))


def test_interrupting_a_sweep_on_ray_and_resuming_it(tmp_path):
    """SIGINT while runs train: exit 130, one line, the stopped runs saved their checkpoints,
    sweeps.csv holds exactly the finished runs; the same command then completes the sweep,
    skipping finished runs and resuming the stopped ones."""
    pytest.importorskip("ray")
    out = tmp_path / "s"
    args = ("--widths", "32", "--lrs", "2^-9:2^-6:1", "--steps", "80", "--max-parallel", "2", "--out", str(out),
            "--", "--step-seconds", "0.05")
    proc = subprocess.Popen([sys.executable, "-m", "scaleadvise", "sweep", str(FAKE), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    later = [out / f"w32_lr{lr}_s0" for lr in ("0.0078125", "0.015625")]
    t0 = time.time()
    while not all((d / "metrics.csv").exists() and len((d / "metrics.csv").read_text().splitlines()) > 5
                  for d in later):
        assert proc.poll() is None and time.time() - t0 < 120, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stdout == ""
    *log, last = stderr.strip().splitlines()  # in a log (not a terminal) a line per finished run, then one line
    assert last == ("scaleadvise: sweep interrupted (SIGINT): 2 runs finished, 2 stopped at their checkpoints; "
                    "rerun the same command to resume")
    assert len(log) == 2 and all(line.split()[0] == "done" for line in log), log
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert len(_csv(out / "sweeps.csv")) == 2
    for d in later:
        assert json.loads((d / "result.json").read_text())["status"] == "stopped" and (d / "checkpoint.pt").exists()
    assert not subprocess.run(["pgrep", "-f", str(out)], capture_output=True).stdout  # no run trains on

    r = _sweep("--json", *args)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)["runs"]
    assert (doc["skipped"], doc["resumed"], doc["done"]) == (2, 2, 2)
    rows = _csv(out / "sweeps.csv")
    assert len(rows) == 4 and all(r["step"] == "80" for r in rows)
    for d in later:
        assert (d / "starts.log").read_text().splitlines()[1].startswith("resume ")


def test_a_run_refusing_its_input_on_ray_is_one_line_and_leaves_nothing(tmp_path):
    pytest.importorskip("ray")
    r = _sweep(*GRID, "--out", str(tmp_path / "s"), "--", "--refuse")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("scaleadvise: error: run w")
    assert r.stderr.endswith(": fake_train: error: --refuse: this script refuses every input\n")
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_out_is_one_line(cli, tmp_path, monkeypatch):
    out = tmp_path / "s"
    out.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(out) else real(p, mode))
    _bad(cli, tmp_path, str(FAKE), *GRID, "--out", str(out), match="is not readable")
