"""The emitted script as a process: DDP / FSDP under torchrun (gloo, CPU), Ctrl-C and SIGTERM
from outside, and resume after a real kill."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

COMMON = ["--device", "cpu", "--batch-size", "8", "--log-every", "1", "--eval-batches", "1",
          "--grads-every", "3", "--align-every", "0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["--param", "mup", "--optim", "adam", "--width", "64", "--base-width", "64", "--base-lr", "1e-2",
        "--depth", "2", "--head-dim", "16", "--context", "32", "--vocab", "256"]


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("script") / "train.py"
    proc = subprocess.run([sys.executable, "-m", "scaleadvise", "emit-train", *TINY, "-o", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return str(path)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single(script: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, *args], env=ENV, capture_output=True, text=True, timeout=300)


def _torchrun(script: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master-port", str(_port()), script, *args],
                          env=ENV, capture_output=True, text=True, timeout=300)


def _col(path, column: str) -> list[float]:
    with open(path, newline="") as f:
        return [float(r[column]) for r in csv.DictReader(f)]


def test_ddp_two_processes_match_one(tmp_path, script):
    """Two gloo ranks each take half of every global batch: same losses as one process
    (up to the order of the gradient all-reduce's float sums)."""
    args = ["--steps", "6", *COMMON]
    one = _single(script, [*args, "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    two = _torchrun(script, [*args, "--out", str(tmp_path / "two"), "--distributed", "ddp"])
    assert two.returncode == 0, two.stderr
    a, b = _col(tmp_path / "one" / "metrics.csv", "train_loss"), _col(tmp_path / "two" / "metrics.csv", "train_loss")
    assert len(a) == len(b) == 6
    assert b == pytest.approx(a, rel=1e-5)
    assert a[-1] < a[0]
    g1, g2 = _col(tmp_path / "one" / "grads.csv", "grad_rms"), _col(tmp_path / "two" / "grads.csv", "grad_rms")
    assert g2 == pytest.approx(g1, rel=1e-4)
    assert json.loads((tmp_path / "two" / "result.json").read_text())["status"] == "done"


@pytest.mark.slow
def test_fsdp_matches_and_resumes(tmp_path, script):
    args = ["--steps", "6", *COMMON]
    one = _single(script, [*args, "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    part = _torchrun(script, [*args, "--out", str(tmp_path / "fsdp"), "--distributed", "fsdp", "--stop-at", "3"])
    assert part.returncode == 0, part.stderr
    rest = _torchrun(script, [*args, "--out", str(tmp_path / "fsdp"), "--distributed", "fsdp", "--resume"])
    assert rest.returncode == 0, rest.stderr
    a, b = _col(tmp_path / "one" / "metrics.csv", "train_loss"), _col(tmp_path / "fsdp" / "metrics.csv", "train_loss")
    assert b == pytest.approx(a, rel=1e-5)
    g1, g2 = _col(tmp_path / "one" / "grads.csv", "grad_rms"), _col(tmp_path / "fsdp" / "grads.csv", "grad_rms")
    assert g2 == pytest.approx(g1, rel=1e-4)  # shard sums of squares reduced over ranks


def _start(script: str, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, script, *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for_step(proc: subprocess.Popen, step: int, timeout: float = 240) -> list[str]:
    """Lines of stdout up to the one logging `step` (the banner first)."""
    lines, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        assert line, f"the run ended early: {proc.wait()} {proc.stderr.read()}"
        lines.append(line)
        if line.startswith(f"step {step}/"):
            return lines
    raise AssertionError("no log line in time")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_from_outside_saves_and_resume_finishes(tmp_path, script, signum):
    """Ctrl-C (SIGINT) or a scheduler's SIGTERM mid-run: one line, exit 130 / 143, a
    checkpoint and no temporary file; --resume continues and logs no step twice."""
    out = tmp_path / "run"
    args = ["--steps", "100000", *COMMON, "--grads-every", "0", "--out", str(out)]
    proc = _start(script, args)
    lines = _wait_for_step(proc, 2)
    assert lines[0].startswith("NanoDO width 64, depth 2, 4 heads") and "ETA ~" in lines[2]  # the banner first
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    assert stderr.count("\n") == 1 and f"stopped by {signal.Signals(signum).name} at step" in stderr, stderr
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "stopped" and result["steps"] == 100000
    assert sorted(os.listdir(out)) == ["checkpoint.pt", "metrics.csv", "result.json"]
    stopped = result["step"]
    more = _single(script, [*args, "--resume", "--stop-at", str(stopped + 3)])
    assert more.returncode == 0, more.stderr
    steps = [int(s) for s in _col(out / "metrics.csv", "step")]
    assert steps == list(range(1, stopped + 4))  # every step once


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tmp_path, script):
    args = ["--steps", "60", *COMMON, "--grads-every", "0"]
    straight = _single(script, [*args, "--out", str(tmp_path / "a")])
    assert straight.returncode == 0, straight.stderr
    out = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, script, *args, "--out", str(out), "--ckpt-every", "5"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240  # kill mid-run: a checkpoint saved and steps logged after it
    while time.time() < deadline and proc.poll() is None and not (
            (out / "checkpoint.pt").exists() and (out / "metrics.csv").exists()
            and len((out / "metrics.csv").read_text().splitlines()) > 12):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(_col(out / "metrics.csv", "train_loss"))
    resumed = _single(script, [*args, "--out", str(out), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert _col(out / "metrics.csv", "train_loss") == _col(tmp_path / "a" / "metrics.csv", "train_loss")
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    assert killed_at < 60 or proc.returncode == 0  # (if the run finished first, the test is weaker)


def test_sigkill_during_a_checkpoint_leaves_nothing_that_blocks(tmp_path, script):
    """A kill inside torch.save leaves checkpoint.pt.tmp (simulated: the process is killed at
    the moment its temporary file appears); the next start or resume removes it."""
    out = tmp_path / "k"
    args = ["--steps", "100000", *COMMON, "--grads-every", "0", "--ckpt-every", "1", "--out", str(out)]
    proc = _start(script, args)
    deadline = time.time() + 240
    while not (out / "checkpoint.pt.tmp").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.002)
    proc.kill()
    proc.communicate()
    (out / "checkpoint.pt.tmp").write_bytes(b"torn")  # whether or not the kill landed inside the save
    logged = int(_col(out / "metrics.csv", "step")[-1]) if (out / "metrics.csv").exists() else 0
    resume = ["--resume"] if (out / "checkpoint.pt").exists() else []
    resumed = _single(script, [*args, *resume, "--stop-at", str(logged + 2)])
    assert resumed.returncode == 0, resumed.stderr
    assert not (out / "checkpoint.pt.tmp").exists()
