"""scaleadvise/sweep/task.py: one run, a process of the script, as a Ray task runs it (here
called directly; tests/test_sweep_runner.py stops it the way ray.cancel does)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scaleadvise.sweep import task

FAKE = Path(__file__).with_name("sweep_fake_train.py")


def test_task_runs_the_script_with_its_own_python_and_logs(tmp_path):
    run_dir = tmp_path / "r"
    (run_dir).mkdir()
    (run_dir / "stale").write_text("x")
    spec = {"name": "r", "run_dir": str(run_dir), "fresh": True, "cwd": str(tmp_path), "env": {"OMP_NUM_THREADS": "1"},
            "args": [str(FAKE), "--out", str(run_dir), "--steps", "2"]}
    res = task.run_one(spec)
    assert res["rc"] == 0 and res["result"]["status"] == "done" and not res["stopped"]
    assert not (run_dir / "stale").exists()  # a fresh run starts in an empty folder
    log = (run_dir / "run.log").read_text()
    assert log.startswith(f"$ python {FAKE} --out") and res["error"] == ""
    # a resume keeps the folder and removes the old result before the new one is written
    res = task.run_one({**spec, "fresh": False, "args": spec["args"][:-1] + ["4", "--resume"]})
    assert res["rc"] == 0 and res["result"]["step"] == 4
    assert (run_dir / "starts.log").read_text() == "fresh 0\nresume 2\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_run_whose_worker_dies_is_told_to_stop(tmp_path):
    """The launcher: if the process that started the script dies (a Ray worker killed),
    the script gets SIGTERM and checkpoints instead of training on unattended."""
    run_dir = tmp_path / "r"
    code = ("import sys, subprocess\nfrom scaleadvise.sweep import task\n"
            f"subprocess.Popen([sys.executable, '-c', task.LAUNCHER, str(__import__('os').getpid()), {str(FAKE)!r}, "
            f"'--out', {str(run_dir)!r}, '--steps', '10000', '--step-seconds', '0.01'])\n"
            "import time; time.sleep(1.5)\n")
    parent = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert parent.returncode == 0
    t0 = time.time()
    while time.time() - t0 < 20 and not (run_dir / "result.json").exists():
        time.sleep(0.1)
    res = json.loads((run_dir / "result.json").read_text())
    assert res["status"] == "stopped" and 0 < res["step"] < 10000


def test_last_line_is_the_script_s_own(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("$ python train.py --out x\nstep 1\ntrain.py: error: --batch-size 0: must be >= 1\n\n")
    assert task.last_line(str(log)) == "train.py: error: --batch-size 0: must be >= 1"
    log.write_text("$ python train.py --out x\n")
    assert task.last_line(str(log)) == ""
    assert task.last_line(str(tmp_path / "missing.log")) == ""
