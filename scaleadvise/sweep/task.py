"""One run of the sweep: a process of the training script, inside a Ray task.

Stdlib only, and shipped to Ray workers by value (ray_engine registers this module with
cloudpickle), so cluster nodes need Python and the script's own dependencies, not
scaleadvise. The run's stdout and stderr go to RUN_DIR/run.log.

Stopping: the sweep stops a run with `ray.cancel`, which raises KeyboardInterrupt in
this task. The task then sends the script SIGTERM, which the one-run contract answers
by saving a checkpoint and exiting 143, and waits for it; a second interrupt kills it.
The script runs in its own session, so a Ctrl-C in the terminal reaches the sweep only
and every run is stopped the same way. A small launcher sits between the worker and
the script: Ray's processes block SIGINT, which a child inherits, so the launcher
unblocks it; and on Linux it asks the kernel to send the script SIGTERM if its worker
dies. Ray itself kills a dead worker's children (SIGKILL, its default
kill_child_processes_on_worker_exit): after `kill -9` of the sweep the runs end at once
and a rerun resumes them from their last periodic checkpoint; where Ray does not, the
launcher's SIGTERM makes them checkpoint and stop. No run trains on unattended.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

RESULT, CHECKPOINT, LOG = "result.json", "checkpoint.pt", "run.log"  # as in plan.py (this module is stdlib only)
POLL_S = 0.2  # how often the task looks up from waiting: the latency of a stop

# argv: -c PARENT_PID SCRIPT ARGS...; exec's the script in the same process (its exit status is the run's).
LAUNCHER = """\
import os, signal, sys
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
if sys.platform.startswith("linux"):
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != int(sys.argv[1]):  # the worker died before prctl took effect
        sys.exit(143)
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def run_one(spec: dict) -> dict:
    """Run the script once as ``spec`` says; return what happened.

    spec: name, args (the script and its arguments), run_dir, fresh (empty the folder
    first), env (added to the worker's), cwd. Returns name, rc (the script's exit status,
    negative for a signal, None if it never started), result (result.json or None),
    stopped (the sweep stopped it), seconds, error (the last line of its log), host.
    """
    t0 = time.time()
    run_dir = spec["run_dir"]
    if spec["fresh"]:
        shutil.rmtree(run_dir, ignore_errors=True)  # a failed or killed earlier attempt: start clean
    os.makedirs(run_dir, exist_ok=True)
    _remove(os.path.join(run_dir, RESULT))  # a resumed run writes a new one; never read a stale "stopped"
    log_path = os.path.join(run_dir, LOG)
    env = {**os.environ, **spec["env"], "PYTHONUNBUFFERED": "1"}
    cwd = spec["cwd"] if os.path.isdir(spec["cwd"]) else run_dir
    rc, stopped, proc = None, False, None
    with open(log_path, "ab") as log:
        log.write(f"$ python {' '.join(spec['args'])}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(os.getpid()), *spec["args"]], cwd=cwd,
                                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            rc = _wait(proc)
        except BaseException:  # ray.cancel: KeyboardInterrupt (or the worker is told to exit)
            stopped = True
            rc = None if proc is None else _terminate(proc)
    return {"name": spec["name"], "rc": rc, "result": _read_json(os.path.join(run_dir, RESULT)), "stopped": stopped,
            "seconds": time.time() - t0, "error": last_line(log_path), "host": socket.gethostname()}


def _wait(proc: subprocess.Popen) -> int:
    """Wait in short slices: ray.cancel's KeyboardInterrupt is raised between bytecodes,
    so a single blocking wait() would not see it until the run ended."""
    while True:
        try:
            return proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass


def _terminate(proc: subprocess.Popen) -> int:
    """SIGTERM (the script checkpoints and exits), then wait; a second interrupt kills."""
    try:
        proc.send_signal(signal.SIGTERM)
        return _wait(proc)
    except BaseException:
        proc.kill()
        return proc.wait()


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _read_json(path: str):
    import json

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def last_line(path: str, limit: int = 8192) -> str:
    """The last line the script wrote to its log (the one-line error of the one-run
    contract); the "$ python ..." lines are the task's own."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - limit))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return next((ln.strip() for ln in reversed(lines) if ln.strip() and not ln.startswith("$ ")), "")
