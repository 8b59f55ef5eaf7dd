"""`scaleadvise sweep`: check the inputs, plan, run the runs on an engine, collect sweeps.csv.

The scheduling loop is engine-agnostic (ray_engine.RayEngine in the product; tests can
drive it with any object that has submit / wait / cancel / shutdown). What a run's
exit means (the one-run contract of the emitted script):

    0 + result "done"        done: a row of sweeps.csv
    1 + result "diverged"    diverged: a row with loss NaN, diverged=1; the sweep goes on
    2                        bad input: it would fail for every run, so the sweep stops
                             with that run's one-line error (exit 2)
    0 without result.json    the script is not a one-run script: stops like bad input
    stopped by the sweep     stopped: resumes from its checkpoint on a rerun (so does a
    (or 0 + "stopped")       run that stopped itself: the script's --stop-at)
    anything else            failed: reported with its log; the sweep goes on (exit 1)

SIGINT / SIGTERM: no new runs start; running ones get SIGTERM (they checkpoint); the
engine shuts down; sweeps.csv is complete (it is only ever replaced whole); folders of
runs that left nothing to resume from are removed; exit 130 / 143. Rerunning the same
command skips finished runs and resumes the stopped ones.
"""

import contextlib
import json
import os
import signal
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from scaleadvise.errors import UserError
from scaleadvise.sweep.grid import Grid
from scaleadvise.sweep.plan import (CHECKPOINT, CSV, LOG, MANIFEST, RESULT, Identity, PlannedRun, check_identity,
                                    check_script_args, file_sha256, make_plan, run_command)
from scaleadvise.sweep.results import make_row, render_csv, scan, write_atomic

EXIT_BAD_INPUT = 2
POLL_S = 0.5


class EngineError(RuntimeError):
    """The engine (Ray) failed under the sweep; the runs' folders are intact."""


@dataclass
class SweepConfig:
    script: Path
    grid: Grid
    out: Path
    steps: int | None = None
    script_args: list[str] = field(default_factory=list)
    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_parallel: int | None = None
    threads_per_run: int | None = None
    dry_run: bool = False


@dataclass
class Summary:
    out: Path
    planned: int
    skipped: int = 0
    resumed: int = 0
    fresh: int = 0
    done: int = 0
    diverged: int = 0
    failed: int = 0
    stopped: int = 0
    rows: int = 0
    sweeps_csv: Path | None = None
    failures: list[dict] = field(default_factory=list)
    interrupted: int | None = None  # the signal that stopped the sweep
    engine_error: str | None = None  # the engine failed: the sweep stopped following its runs
    engine: dict | None = None
    seconds: float = 0.0
    dry_run: bool = False
    plan: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"out": str(self.out), "sweeps_csv": None if self.sweeps_csv is None else str(self.sweeps_csv),
                "rows": self.rows, "runs": {k: getattr(self, k) for k in (
                    "planned", "skipped", "resumed", "fresh", "done", "diverged", "failed", "stopped")},
                "failures": self.failures, "interrupted": self.interrupted is not None,
                "signal": None if self.interrupted is None else signal.Signals(self.interrupted).name,
                "engine": self.engine, "engine_error": self.engine_error, "seconds": round(self.seconds, 3), "dry_run": self.dry_run,
                **({"plan": self.plan} if self.dry_run else {})}

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return 128 + self.interrupted
        return 1 if self.failed or self.engine_error else 0


class Engine(Protocol):
    def submit(self, spec: dict) -> object: ...
    def wait(self, handles: list, timeout: float) -> list[tuple[object, dict | BaseException]]: ...
    def cancel(self, handles: list, force: bool = False) -> None: ...
    def is_cancelled(self, error: BaseException) -> bool: ...
    def shutdown(self) -> None: ...


class Reporter:
    """What the sweep tells the CLI as it goes (the CLI draws a progress bar)."""

    def starting(self) -> None: ...
    def begin(self, total: int, skipped: int) -> None: ...
    def finished(self, name: str, kind: str, row: dict | None, seconds: float, detail: str) -> None: ...
    def stopping(self, signum: int) -> None: ...
    def end(self) -> None: ...


# ---- inputs ---------------------------------------------------------------------------

def check_script(script: Path) -> None:
    """The script exists, is a readable file and is Python (a syntax error would fail every run)."""
    if not script.exists():
        raise UserError(f"SCRIPT {script}: no such file")
    if script.is_dir():
        raise UserError(f"SCRIPT {script}: is a folder, not a training script")
    try:
        source = script.read_bytes()
    except OSError as e:
        raise UserError(f"SCRIPT {script}: cannot read it ({e.strerror})") from None
    if not source.strip():
        raise UserError(f"SCRIPT {script}: is empty")
    if b"\x00" in source:
        raise UserError(f"SCRIPT {script}: not a Python file (binary)")
    try:
        compile(source, str(script), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        where = f"line {e.lineno}: " if getattr(e, "lineno", None) else ""
        raise UserError(f"SCRIPT {script}: {where}not Python ({getattr(e, 'msg', e)})") from None


def check_out(out: Path) -> None:
    """--out is a folder we can write, or can be created."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"--out {out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK | (os.R_OK if parent == out else 0)):
        raise UserError(f"--out {out}: {parent} is not {'readable and ' if parent == out else ''}writable")


def check_resources(cfg: SweepConfig) -> None:
    import math

    for flag, v, lo in (("--cpus-per-run", cfg.cpus_per_run, 0.0), ("--gpus-per-run", cfg.gpus_per_run, None)):
        if not math.isfinite(v) or v < 0 or (lo is not None and v <= lo):
            raise UserError(f"{flag} {v:g}: must be a finite number {'> 0' if lo is not None else '>= 0'}")
    for flag, v in (("--max-parallel", cfg.max_parallel), ("--threads-per-run", cfg.threads_per_run)):
        if v is not None and v < 1:
            raise UserError(f"{flag} {v}: must be at least 1")
    if cfg.address is not None and not cfg.address.strip():
        raise UserError("--address: empty (use auto, HOST:PORT or ray://HOST:PORT)")
    from scaleadvise.sweep.ray_engine import check_address  # the form only; Ray is not imported

    check_address(cfg.address)


# ---- outcomes -------------------------------------------------------------------------

def classify(rc: int | None, result: dict | None, stopped_by_sweep: bool) -> str:
    """done | diverged | bad_input | not_one_run | stopped | failed (see the module docstring)."""
    status = None if result is None else result.get("status")
    if rc == 0 and status == "done":
        return "done"
    if rc in (0, 1) and status == "diverged":
        return "diverged"
    if rc == EXIT_BAD_INPUT:
        return "bad_input"
    if rc == 0 and result is None and not stopped_by_sweep:
        return "not_one_run"
    if stopped_by_sweep or (rc == 0 and status == "stopped"):  # the latter: the script's own --stop-at
        return "stopped"
    return "failed"


def _describe_failure(rc: int | None, outcome: dict) -> str:
    if rc is None:
        return "did not start"
    how = f"killed by {signal.Signals(-rc).name}" if rc < 0 and -rc in signal.valid_signals() else f"exit {rc}"
    return f"{how}: {outcome.get('error') or 'no output'}"


# ---- the sweep ------------------------------------------------------------------------

class _Signals:
    """SIGINT/SIGTERM set a flag the loop polls (the first one stops, a second forces)."""

    def __init__(self):
        self.signum: int | None = None
        self.count = 0
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        self.signum = self.signum or signum
        self.count += 1

    def install(self) -> None:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old.setdefault(s, signal.getsignal(s))
            signal.signal(s, self._handle)

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def _locked(out: Path):
    """One sweep at a time per --out (an advisory lock on the folder, gone with the process)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(f"--out {out}: another scaleadvise sweep is running in it") from None
        yield
    finally:
        os.close(fd)


def run_sweep(cfg: SweepConfig, reporter: Reporter | None = None,
              engine_factory: Callable[[SweepConfig], Engine] | None = None) -> Summary:
    """Plan and run a sweep (or only plan it with cfg.dry_run). Raises UserError for bad
    input, including a run that exits 2; returns the summary otherwise."""
    t0 = time.perf_counter()
    reporter = reporter or Reporter()
    sig = _Signals()
    if _main_thread():
        sig.install()
    try:
        summary = _sweep(cfg, reporter, engine_factory or _ray_engine, sig)
    finally:
        sig.restore()
    summary.seconds = time.perf_counter() - t0
    return summary


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _ray_engine(cfg: SweepConfig) -> Engine:
    from scaleadvise.sweep.ray_engine import RayEngine

    return RayEngine(cfg.address, cfg.cpus_per_run, cfg.gpus_per_run)


def _sweep(cfg: SweepConfig, reporter: Reporter, engine_factory, sig: _Signals) -> Summary:
    script, out = cfg.script.resolve() if cfg.script.exists() else cfg.script, cfg.out.absolute()
    check_script(script)
    check_resources(cfg)
    depth_axis = cfg.grid.depths is not None
    check_script_args(cfg.script_args, depth_axis)
    check_out(out)
    identity = Identity(file_sha256(script), cfg.steps, tuple(cfg.script_args), depth_axis)
    is_sweep = check_identity(out, identity) if out.is_dir() else False
    plan = make_plan(cfg.grid, out)
    rows = scan(out, depth_axis)
    summary = Summary(out=out, planned=len(plan), dry_run=cfg.dry_run)
    actions = Counter(p.action for p in plan)
    summary.skipped, summary.resumed, summary.fresh = actions["skip"], actions["resume"], actions["fresh"]
    todo = [p for p in plan if p.action != "skip"]
    csv_path = out / CSV
    threads = cfg.threads_per_run or max(1, int(cfg.cpus_per_run))
    user_device = any(a == "--device" or a.startswith("--device=") for a in cfg.script_args)
    device = None if user_device else ("cuda" if cfg.gpus_per_run > 0 else "cpu")

    def spec(p: PlannedRun) -> dict:
        return {"name": p.run.name, "run_dir": str(p.run_dir), "fresh": p.action == "fresh", "cwd": os.getcwd(),
                "args": run_command(script, p, cfg.steps, threads, device, cfg.script_args),
                "env": {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}}

    if cfg.dry_run:
        summary.plan = [{"run": p.run.name, "action": p.action, "args": spec(p)["args"]} for p in plan]
        summary.rows, summary.sweeps_csv = len(rows), (csv_path if csv_path.exists() else None)
        return summary
    if not todo:  # nothing to run: no engine; make sure sweeps.csv says what OUT holds
        _sync_csv(csv_path, rows, depth_axis, summary)
        return summary

    created = _missing_ancestors(out)  # folders this sweep creates (removed again if it leaves no run)
    out.mkdir(parents=True, exist_ok=True)
    started: list[PlannedRun] = []
    error, locked = None, False
    try:
        with _locked(out):
            locked = True
            if not is_sweep:
                write_atomic(out / MANIFEST, json.dumps(identity.to_dict(script), indent=1) + "\n")
            error = _execute(cfg, engine_factory, todo, spec, rows, csv_path, depth_axis, summary, reporter, sig,
                             started)
            _sync_csv(csv_path, rows, depth_axis, summary)
            if error is not None or sig.signum is not None or summary.engine_error is not None:
                _remove_empty_runs(started)
    finally:  # a sweep that leaves no run behind leaves OUT as it found it
        if locked and not is_sweep and _only_manifest(out):
            _remove_quiet(out / MANIFEST)
            for d in [out, *out.parents]:
                if d not in created:
                    break
                _rmdir_quiet(d)
    summary.interrupted = sig.signum
    if error is not None:
        raise UserError(error)
    return summary


def _execute(cfg: SweepConfig, engine_factory, todo: list[PlannedRun], spec, rows: dict, csv_path: Path,
             depth_axis: bool, summary: Summary, reporter: Reporter, sig: _Signals, started: list) -> str | None:
    """Start the engine, run the loop, shut the engine down; the bad-input error, if any."""
    engine = None
    try:
        if sig.signum is None:  # not interrupted while we planned
            reporter.starting()
            try:
                engine = engine_factory(cfg)
            except SystemExit:  # Ray's own SIGTERM handler, while it starts
                sig.signum = signal.SIGTERM
            if _main_thread():
                sig.install()  # ray.init replaces the driver's SIGTERM handler
        if engine is None:
            return None
        summary.engine = getattr(engine, "describe", lambda: None)()
        reporter.begin(len(todo), summary.skipped)
        try:
            return _loop(engine, todo, spec, cfg.max_parallel, rows, csv_path, depth_axis, summary, reporter, sig,
                         started)
        except EngineError as e:
            summary.engine_error = str(e)
            return None
    finally:
        reporter.end()
        if engine is not None:
            try:
                engine.shutdown()
            except Exception:  # already gone with the failure being reported
                pass


def _loop(engine: Engine, todo: list[PlannedRun], spec, max_parallel: int | None, rows: dict, csv_path: Path,
          depth_axis: bool, summary: Summary, reporter: Reporter, sig: _Signals, started: list) -> str | None:
    """Run ``todo`` with at most max_parallel in flight; returns the bad-input error, if any."""
    queue, inflight = deque(todo), {}
    limit = max_parallel or len(todo)
    error, cancelled, forced = None, False, False
    while queue or inflight:
        stopping = sig.signum is not None or error is not None
        if not stopping:
            while queue and len(inflight) < limit:
                p = queue.popleft()
                inflight[engine.submit(spec(p))] = p
                started.append(p)
        elif not cancelled:
            if sig.signum is not None:
                reporter.stopping(sig.signum)
            queue.clear()
            engine.cancel(list(inflight))
            cancelled = True
        elif sig.count >= 2 and not forced:
            engine.cancel(list(inflight), force=True)
            forced = True
        try:
            finished = engine.wait(list(inflight), POLL_S)
        except Exception as e:  # the engine itself failed (Ray's processes killed): no run can be followed
            raise EngineError(" ".join(str(e).split())[:300]) from None
        for handle, outcome in finished:
            p = inflight.pop(handle)
            if isinstance(outcome, BaseException) and engine.is_cancelled(outcome):
                continue  # cancelled before it started: nothing happened to it
            error = _record(p, outcome, cancelled, rows, csv_path, depth_axis, summary, reporter) or error
    return error


def _record(p: PlannedRun, outcome: dict | BaseException, cancelled: bool, rows: dict, csv_path: Path,
            depth_axis: bool, summary: Summary, reporter: Reporter) -> str | None:
    """Book one finished task: a row of sweeps.csv (rewritten whole), a count, a failure, or
    the error that stops the sweep (returned)."""
    if isinstance(outcome, BaseException):  # from the engine: the task did not return (worker crashed)
        rc, result, seconds = None, None, 0.0
        kind, detail = ("stopped" if cancelled else "failed"), " ".join(str(outcome).split())[:300]
    else:
        rc, result, seconds = outcome["rc"], outcome["result"], outcome["seconds"]
        kind, detail = classify(rc, result, outcome["stopped"] or cancelled), _describe_failure(rc, outcome)
    row, error = None, None
    if kind in ("done", "diverged"):
        row = rows[p.run.name] = make_row(p.run, result)
        write_atomic(csv_path, render_csv(rows, depth_axis))
        setattr(summary, kind, getattr(summary, kind) + 1)
    elif kind == "bad_input":
        error = f"run {p.run.name}: {outcome.get('error') or 'the script refused its input (exit 2)'}"
    elif kind == "not_one_run":
        error = (f"SCRIPT exited 0 without writing {p.run.name}/{RESULT}: it does not follow the one-run "
                 "contract of scaleadvise emit-train scripts")
    elif kind == "stopped":
        summary.stopped += 1
    else:
        summary.failed += 1
        summary.failures.append({"run": p.run.name, "exit": rc, "error": detail, "log": str(p.run_dir / LOG)})
    reporter.finished(p.run.name, kind, row, seconds, detail)
    return error


def _sync_csv(path: Path, rows: dict, depth_axis: bool, summary: Summary) -> None:
    """Write sweeps.csv from the rows unless it already says exactly that."""
    summary.rows = len(rows)
    if not rows:
        return
    text = render_csv(rows, depth_axis)
    try:
        same = path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        same = False
    if not same:
        write_atomic(path, text)
    summary.sweeps_csv = path


def _remove_empty_runs(started: list[PlannedRun]) -> None:
    """Folders of runs this invocation started fresh that hold nothing to resume from
    (stopped before their first checkpoint, or refused their input)."""
    for p in started:
        if p.action == "fresh" and p.run_dir.is_dir() and not (p.run_dir / CHECKPOINT).exists() \
                and not (p.run_dir / RESULT).exists():
            _rmtree_quiet(p.run_dir)


def _missing_ancestors(path: Path) -> set[Path]:
    """``path`` and its ancestors that do not exist yet."""
    return {p for p in [path, *path.parents] if not p.exists()}


def _only_manifest(out: Path) -> bool:
    try:
        return {e.name for e in out.iterdir()} <= {MANIFEST}
    except OSError:
        return False


def _remove_quiet(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _rmtree_quiet(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _rmdir_quiet(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:  # not empty (something else is in it) or already gone
        pass
