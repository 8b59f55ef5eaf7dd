"""Data parallelism on CPU with gloo (torchrun in a subprocess) and resume after a real kill."""

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

from scaleadvise.core.prescribe import PrescribeRequest, prescribe  # noqa: E402

COMMON = ["--device", "cpu", "--batch-size", "8", "--log-every", "1", "--eval-batches", "1",
          "--grads-every", "3", "--align-every", "0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def pres_file(tmp_path) -> str:
    doc = prescribe(PrescribeRequest(param="mup", optim="adam", width=64, base_width=64, base_lr=1e-2, depth=2,
                                     head_dim=16, context=32, vocab=256)).to_dict()
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scaleadvise.script.template.train", *args],
                          env=ENV, capture_output=True, text=True, timeout=300)


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master-port", str(_port()), "-m", "scaleadvise.script.template.train", *args],
                          env=ENV, capture_output=True, text=True, timeout=300)


def _col(path, column: str) -> list[float]:
    with open(path, newline="") as f:
        return [float(r[column]) for r in csv.DictReader(f)]


def test_ddp_two_processes_match_one(tmp_path, pres_file):
    """Two gloo ranks each take half of every global batch: same losses as one process
    (up to the order of the gradient all-reduce's float sums)."""
    args = ["--prescription", pres_file, "--steps", "6", *COMMON]
    one = _single([*args, "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    two = _torchrun([*args, "--out", str(tmp_path / "two"), "--distributed", "ddp"])
    assert two.returncode == 0, two.stderr
    a, b = _col(tmp_path / "one" / "metrics.csv", "train_loss"), _col(tmp_path / "two" / "metrics.csv", "train_loss")
    assert len(a) == len(b) == 6
    assert b == pytest.approx(a, rel=1e-5)
    assert a[-1] < a[0]
    g1, g2 = _col(tmp_path / "one" / "grads.csv", "grad_rms"), _col(tmp_path / "two" / "grads.csv", "grad_rms")
    assert g2 == pytest.approx(g1, rel=1e-4)


@pytest.mark.slow
def test_fsdp_matches_and_resumes(tmp_path, pres_file):
    args = ["--prescription", pres_file, "--steps", "6", *COMMON]
    one = _single([*args, "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    part = _torchrun([*args, "--out", str(tmp_path / "fsdp"), "--distributed", "fsdp", "--stop-at", "3"])
    assert part.returncode == 0, part.stderr
    rest = _torchrun([*args, "--out", str(tmp_path / "fsdp"), "--distributed", "fsdp", "--resume"])
    assert rest.returncode == 0, rest.stderr
    a, b = _col(tmp_path / "one" / "metrics.csv", "train_loss"), _col(tmp_path / "fsdp" / "metrics.csv", "train_loss")
    assert b == pytest.approx(a, rel=1e-5)
    g1, g2 = _col(tmp_path / "one" / "grads.csv", "grad_rms"), _col(tmp_path / "fsdp" / "grads.csv", "grad_rms")
    assert g2 == pytest.approx(g1, rel=1e-4)  # shard sums of squares reduced over ranks


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tmp_path, pres_file):
    args = ["--prescription", pres_file, "--steps", "60", *COMMON, "--grads-every", "0"]
    straight = _single([*args, "--out", str(tmp_path / "a")])
    assert straight.returncode == 0, straight.stderr
    out = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "scaleadvise.script.template.train", *args, "--out", str(out),
                             "--ckpt-every", "5"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(_col(out / "metrics.csv", "train_loss"))
    resumed = _single([*args, "--out", str(out), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert _col(out / "metrics.csv", "train_loss") == _col(tmp_path / "a" / "metrics.csv", "train_loss")
    assert killed_at < 60 or proc.returncode == 0  # (if the run finished first, the test is weaker)
