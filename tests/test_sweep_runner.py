"""scaleadvise/sweep/runner.py and task.py without Ray: the scheduling loop on an engine of
threads that runs the real task (a subprocess of tests/sweep_fake_train.py per run) and
stops a run the way ray.cancel does (KeyboardInterrupt raised in the task's thread).
The same paths under a real Ray runtime: tests/test_sweep_cli.py."""

import concurrent.futures
import csv
import ctypes
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from scaleadvise.errors import UserError
from scaleadvise.sweep import task
from scaleadvise.sweep.grid import parse_grid
from scaleadvise.sweep.runner import SweepConfig, classify, run_sweep

FAKE = Path(__file__).with_name("sweep_fake_train.py")


class ThreadEngine:
    """submit / wait / cancel / shutdown, as ray_engine.RayEngine, on threads."""

    def __init__(self, workers: int = 4):
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)
        self.threads: dict = {}
        self.running = self.peak = 0
        self.lock = threading.Lock()

    def submit(self, spec):
        fut = self.pool.submit(self._run, spec)
        return fut

    def _run(self, spec):
        with self.lock:
            self.threads[spec["name"]] = threading.get_ident()
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            return task.run_one(spec)
        finally:
            with self.lock:
                self.running -= 1
                self.threads.pop(spec["name"], None)

    def wait(self, handles, timeout):
        done, _ = concurrent.futures.wait(handles, timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        out = []
        for f in done:
            if f.cancelled():
                out.append((f, concurrent.futures.CancelledError()))
            else:
                out.append((f, f.exception() or f.result()))
        return out

    def cancel(self, handles, force=False):
        time.sleep(0.3)  # let tasks that just started reach their wait loop
        for f in handles:
            if not f.cancel():
                for tid in list(self.threads.values()):  # ray.cancel: KeyboardInterrupt in the task
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(KeyboardInterrupt))
                break

    def is_cancelled(self, error):
        return isinstance(error, concurrent.futures.CancelledError)

    def shutdown(self):
        self.pool.shutdown(wait=True)


def _cfg(out: Path, *script_args: str, widths="32,64", lrs="2^-9:2^-7:1", seeds="0", **kw) -> SweepConfig:
    return SweepConfig(script=FAKE, grid=parse_grid(widths, lrs, seeds, kw.pop("depths", None)), out=out,
                       script_args=list(script_args), **kw)


def _rows(out: Path) -> list[dict]:
    with open(out / "sweeps.csv") as f:
        return list(csv.DictReader(f))


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_outcomes_of_a_sweep(tmp_path):
    out = tmp_path / "s"
    engine = ThreadEngine()
    summary = run_sweep(_cfg(out, "--diverge-above", "0.005", "--crash-width", "128", widths="32,64,128", steps=5),
                        engine_factory=lambda cfg: engine)
    assert (summary.planned, summary.fresh, summary.done, summary.diverged, summary.failed) == (9, 9, 4, 2, 3)
    assert summary.exit_code == 1
    assert {f["run"] for f in summary.failures} == {f"w128_lr{lr}_s0" for lr in ("0.00195312", "0.00390625",
                                                                               "0.0078125")}
    assert all(f["error"] == "exit 1: RuntimeError: width 128 crashes" for f in summary.failures)
    rows = _rows(out)
    assert len(rows) == 6 == summary.rows  # finished runs only: done and diverged
    div = [r for r in rows if r["diverged"] == "1"]
    assert {r["width"] for r in div} == {"32", "64"} and all(r["loss"] == "nan" and r["step"] == "5" for r in div)
    done = {(r["width"], float(r["lr"])): float(r["loss"]) for r in rows if r["diverged"] == "0"}
    assert done[("64", 2.0 ** -8)] == pytest.approx(2 + 16 / 64 + 1 / 5)  # the fake's loss at its last step
    assert json.loads((out / "sweep.json").read_text())["steps"] == 5
    assert _no_temp_files(out)

    # A rerun: finished runs are skipped, the failed ones start again (and fail again).
    again = run_sweep(_cfg(out, "--diverge-above", "0.005", "--crash-width", "128", widths="32,64,128", steps=5),
                      engine_factory=lambda cfg: ThreadEngine())
    assert (again.skipped, again.fresh, again.failed, again.rows) == (6, 3, 3, 6)


def test_nothing_to_do_starts_no_engine(tmp_path):
    out = tmp_path / "s"
    run_sweep(_cfg(out, steps=3), engine_factory=lambda cfg: ThreadEngine())
    before = (out / "sweeps.csv").stat().st_mtime_ns

    def no_engine(cfg):
        raise AssertionError("the engine was started with nothing to run")

    summary = run_sweep(_cfg(out, steps=3), engine_factory=no_engine)
    assert summary.skipped == 6 and summary.exit_code == 0 and summary.engine is None
    assert (out / "sweeps.csv").stat().st_mtime_ns == before  # unchanged content is not rewritten
    (out / "sweeps.csv").unlink()
    run_sweep(_cfg(out, steps=3), engine_factory=no_engine)
    assert len(_rows(out)) == 6  # but a lost sweeps.csv is rebuilt from the run folders


def test_a_larger_grid_adds_runs_and_keeps_the_old_rows(tmp_path):
    out = tmp_path / "s"
    run_sweep(_cfg(out, lrs="2^-9", steps=3), engine_factory=lambda cfg: ThreadEngine())
    summary = run_sweep(_cfg(out, lrs="2^-9,2^-8", seeds="0,1", steps=3), engine_factory=lambda cfg: ThreadEngine())
    assert (summary.skipped, summary.done, summary.rows) == (2, 6, 8)
    assert len({(r["width"], r["lr"], r["seed"]) for r in _rows(out)}) == 8


def test_dry_run_writes_nothing(tmp_path):
    out = tmp_path / "s"

    def no_engine(cfg):
        raise AssertionError

    summary = run_sweep(_cfg(out, dry_run=True, depths="2,4"), engine_factory=no_engine)
    assert not out.exists()
    assert summary.planned == 12 and [p["action"] for p in summary.plan] == ["fresh"] * 12
    assert summary.plan[0]["run"] == "w32_d2_lr0.00195312_s0"


def test_max_parallel_is_respected(tmp_path):
    engine = ThreadEngine(workers=4)
    run_sweep(_cfg(tmp_path / "s", "--step-seconds", "0.02", steps=5, max_parallel=1),
              engine_factory=lambda cfg: engine)
    assert engine.peak == 1


def test_a_run_that_refuses_its_input_stops_the_sweep_and_leaves_nothing(tmp_path):
    out = tmp_path / "s"
    with pytest.raises(UserError) as e:
        run_sweep(_cfg(out, "--refuse", max_parallel=1), engine_factory=lambda cfg: ThreadEngine())
    assert str(e.value) == "run w32_lr0.00195312_s0: fake_train: error: --refuse: this script refuses every input"
    assert not out.exists()


def test_an_unknown_script_flag_is_the_script_s_one_line(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    with pytest.raises(UserError, match=r"unrecognized arguments: --bogus") as e:
        run_sweep(_cfg(out, "--bogus", "1"), engine_factory=lambda cfg: ThreadEngine())
    assert "\n" not in str(e.value)
    assert list(out.iterdir()) == []  # the empty folder the user made is left as it was, empty


def test_a_script_that_writes_no_result_is_refused(tmp_path):
    with pytest.raises(UserError, match="does not follow the one-run contract"):
        run_sweep(_cfg(tmp_path / "s", "--no-result", max_parallel=1), engine_factory=lambda cfg: ThreadEngine())


def _interrupt_when(out: Path, predicate, signum=signal.SIGINT, timeout=60.0) -> threading.Thread:
    def fire():
        t0 = time.time()
        while not predicate() and time.time() - t0 < timeout:
            time.sleep(0.05)
        os.kill(os.getpid(), signum)

    t = threading.Thread(target=fire, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interruption_checkpoints_and_a_rerun_resumes(tmp_path, signum):
    out = tmp_path / "s"
    cfg = _cfg(out, "--step-seconds", "0.05", steps=60, lrs="2^-9:2^-6:1", widths="32", max_parallel=2)
    # the first two runs finish, then the next two are stopped while they train
    first = [out / f"w32_lr{lr}_s0" for lr in ("0.00195312", "0.00390625")]
    later = [out / f"w32_lr{lr}_s0" for lr in ("0.0078125", "0.015625")]
    t = _interrupt_when(out, lambda: all((d / "metrics.csv").exists() and
                                         len((d / "metrics.csv").read_text().splitlines()) > 5 for d in later),
                        signum)
    summary = run_sweep(cfg, engine_factory=lambda cfg: ThreadEngine())
    t.join()
    assert summary.interrupted == signum and summary.exit_code == 128 + signum
    assert (summary.done, summary.stopped) == (2, 2)
    assert len(_rows(out)) == 2 and _no_temp_files(out)
    for d in later:
        assert json.loads((d / "result.json").read_text())["status"] == "stopped"
        assert (d / "checkpoint.pt").exists()

    again = run_sweep(cfg, engine_factory=lambda cfg: ThreadEngine())
    assert (again.skipped, again.resumed, again.done, again.exit_code) == (2, 2, 2, 0)
    assert len(_rows(out)) == 4
    for d in first:
        assert (d / "starts.log").read_text() == "fresh 0\n"  # finished runs never start again
    for d in later:
        starts = (d / "starts.log").read_text().split("\n")
        assert starts[0] == "fresh 0" and starts[1].startswith("resume ") and int(starts[1].split()[1]) > 5
        steps = [int(line.split(",")[0]) for line in (d / "metrics.csv").read_text().splitlines()[1:]]
        assert steps == list(range(1, 61))  # resumed without a duplicated row


def test_interrupted_before_the_first_checkpoint_leaves_no_folder(tmp_path):
    out = tmp_path / "s"
    cfg = _cfg(out, "--step-seconds", "0.05", steps=40, widths="32", lrs="2^-9")
    t = _interrupt_when(out, lambda: (out / "w32_lr0.00195312_s0" / "run.log").exists())
    summary = run_sweep(cfg, engine_factory=lambda cfg: ThreadEngine())
    t.join()
    assert summary.interrupted == signal.SIGINT
    # the fake checkpoints on SIGTERM at any step, so the run may have one; if not, no trace
    run = out / "w32_lr0.00195312_s0"
    assert (run / "checkpoint.pt").exists() or not out.exists()


@pytest.mark.parametrize("rc, result, stopped, kind", [
    (0, {"status": "done"}, False, "done"),
    (1, {"status": "diverged"}, False, "diverged"),
    (0, {"status": "diverged"}, False, "diverged"),
    (1, None, False, "failed"),  # a traceback is exit 1 too: only result.json says "diverged"
    (1, {"status": "stopped"}, False, "failed"),
    (2, None, False, "bad_input"),
    (2, None, True, "bad_input"),
    (0, None, False, "not_one_run"),
    (0, None, True, "stopped"),
    (143, {"status": "stopped"}, True, "stopped"),
    (143, {"status": "stopped"}, False, "failed"),  # someone else stopped it: report it, it resumes next time
    (-9, None, False, "failed"),
    (None, None, True, "stopped"),
    (0, {"status": "done"}, True, "done"),  # it finished just as the sweep stopped
    (0, {"status": "stopped"}, False, "stopped"),  # the script's --stop-at: resumes on a rerun
])
def test_classify(rc, result, stopped, kind):
    assert classify(rc, result, stopped) == kind


def test_a_depth_axis_names_runs_and_adds_the_depth_column(tmp_path):
    out = tmp_path / "s"
    summary = run_sweep(_cfg(out, widths="32", lrs="2^-8", depths="2,4", seeds="0,1", steps=3),
                        engine_factory=lambda cfg: ThreadEngine())
    assert summary.done == 4
    assert sorted(p.name for p in out.glob("w*")) == ["w32_d2_lr0.00390625_s0", "w32_d2_lr0.00390625_s1",
                                                      "w32_d4_lr0.00390625_s0", "w32_d4_lr0.00390625_s1"]
    rows = _rows(out)
    assert list(rows[0]) == ["width", "depth", "lr", "loss", "step", "seed", "param", "optim", "diverged"]
    assert [(r["depth"], r["seed"]) for r in rows] == [("2", "0"), ("2", "1"), ("4", "0"), ("4", "1")]
    for d in out.glob("w*"):  # each run was given its depth
        assert json.loads((d / "result.json").read_text())["depth"] == int(d.name.split("_")[1][1:])


def test_one_sweep_at_a_time_per_folder(tmp_path):
    import fcntl

    out = tmp_path / "s"
    run_sweep(_cfg(out, lrs="2^-9", steps=2), engine_factory=lambda cfg: ThreadEngine())
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running sweep holds it
    try:
        with pytest.raises(UserError, match="another scaleadvise sweep is running in it"):
            run_sweep(_cfg(out, lrs="2^-9,2^-8", steps=2), engine_factory=lambda cfg: ThreadEngine())
    finally:
        os.close(fd)
    assert (out / "sweep.json").exists() and len(_rows(out)) == 2  # the other sweep's folder is untouched


def test_a_failed_first_sweep_removes_the_folders_it_made(tmp_path):
    out = tmp_path / "a" / "b" / "s"
    with pytest.raises(UserError):
        run_sweep(_cfg(out, "--refuse"), engine_factory=lambda cfg: ThreadEngine())
    assert list(tmp_path.iterdir()) == []


class DyingEngine(ThreadEngine):
    """Ray's processes killed under the sweep: wait() raises after the first run finished."""

    def wait(self, handles, timeout):
        done = super().wait(handles, timeout)
        if done and getattr(self, "died", False):
            raise RuntimeError("the raylet died")
        self.died = bool(done)
        return done


def test_an_engine_failure_stops_the_sweep_and_keeps_what_finished(tmp_path):
    out = tmp_path / "s"
    summary = run_sweep(_cfg(out, steps=2, max_parallel=1), engine_factory=lambda cfg: DyingEngine())
    assert summary.engine_error == "the raylet died" and summary.exit_code == 1
    assert summary.done == 1 and len(_rows(out)) == 1 and (out / "sweep.json").exists()
    # the run that finished while the engine died is in its folder: the rerun finds it
    again = run_sweep(_cfg(out, steps=2, max_parallel=1), engine_factory=lambda cfg: ThreadEngine())
    assert again.skipped == 2 and again.done == 4 and again.exit_code == 0 and len(_rows(out)) == 6
