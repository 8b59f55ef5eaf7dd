"""The run plan: one folder per (width, depth, lr, seed), what each run must do next, and
the command that does it.

Pure and stdlib-only (it reads run folders, it starts nothing). A run's folder tells
its state (the one-run contract of the emitted script, docs in BRIEF/DESIGN):

    result.json says "done" or "diverged"   -> skip     (a row of sweeps.csv)
    otherwise, checkpoint.pt exists          -> resume   (python SCRIPT ... --resume)
    otherwise                                -> fresh    (the folder is emptied first)

A sweep folder holds `sweep.json`, the identity of the runs in it. A rerun with another
grid (more LRs, more seeds) is fine: each run is its own folder and rows never mix
across grid points. A rerun that would put runs of a *different experiment* beside the
old ones is refused: another script (by content, not path), another --steps, other
script arguments, or depth swept in one and not the other.
"""

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from scaleadvise.errors import UserError
from scaleadvise.sweep.grid import Grid

RESULT, CHECKPOINT, LOG = "result.json", "checkpoint.pt", "run.log"
MANIFEST, CSV = "sweep.json", "sweeps.csv"
FINISHED = ("done", "diverged")

# Flags the sweep sets on every run, and the sweep flag to use instead. Script arguments
# must not set them (argparse takes the last value and unique prefixes: `-- --step 100`
# would quietly override --steps and make the folder names lie).
SWEEP_FLAGS = {"--out": "--out", "--width": "--widths", "--depth": "--depths", "--lr": "--lrs", "--seed": "--seeds",
               "--steps": "--steps", "--threads": "--threads-per-run", "--resume": None}
_NAME = re.compile(r"^w(\d+)(?:_d(\d+))?_lr([0-9.e+-]+)_s(\d+)$")


@dataclass(frozen=True)
class Run:
    """One point of the grid; ``depth`` None means the script's own depth (not swept)."""

    width: int
    depth: int | None
    lr: float
    seed: int

    @property
    def name(self) -> str:
        """The run's folder: w{W}_d{D}_lr{LR:.6g}_s{S} (the _d part only when depth is swept)."""
        depth = "" if self.depth is None else f"_d{self.depth}"
        return f"w{self.width}{depth}_lr{self.lr:.6g}_s{self.seed}"

    def flags(self) -> list[str]:
        depth = [] if self.depth is None else ["--depth", str(self.depth)]
        return ["--width", str(self.width), *depth, "--lr", repr(self.lr), "--seed", str(self.seed)]


def parse_run_name(name: str) -> Run | None:
    """The Run a folder name stands for (its LR rounded to 6 digits), or None."""
    m = _NAME.match(name)
    if not m:
        return None
    try:
        lr = float(m.group(3))
    except ValueError:
        return None
    return Run(int(m.group(1)), None if m.group(2) is None else int(m.group(2)), lr, int(m.group(4)))


def read_result(run_dir: Path) -> dict | None:
    """The run's result.json, or None when it is missing or not a JSON object (a run
    killed before writing it, or a file the script did not write)."""
    try:
        doc = json.loads((run_dir / RESULT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def decide(run_dir: Path) -> str:
    """skip | resume | fresh, from what the run's folder holds."""
    result = read_result(run_dir)
    if result is not None and result.get("status") in FINISHED:
        return "skip"
    return "resume" if (run_dir / CHECKPOINT).is_file() else "fresh"


@dataclass(frozen=True)
class PlannedRun:
    run: Run
    action: str  # skip | resume | fresh
    run_dir: Path


def make_plan(grid: Grid, out: Path) -> list[PlannedRun]:
    plan = []
    for width, depth, lr, seed in grid.points():
        run = Run(width, depth, lr, seed)
        run_dir = out / run.name
        plan.append(PlannedRun(run, decide(run_dir) if run_dir.is_dir() else "fresh", run_dir))
    return plan


# ---- the sweep's identity (sweep.json) ------------------------------------------------

@dataclass(frozen=True)
class Identity:
    """What makes two runs at the same grid point the same experiment."""

    script_sha256: str
    steps: int | None  # None: the script's default
    script_args: tuple[str, ...]
    depth_axis: bool

    def to_dict(self, script: Path) -> dict:
        return {"scaleadvise_sweep": 1, "script": str(script), **asdict(self), "script_args": list(self.script_args)}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(out: Path) -> Identity | None:
    """The identity recorded in OUT/sweep.json; None when OUT has none."""
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return Identity(str(doc["script_sha256"]), None if doc["steps"] is None else int(doc["steps"]),
                        tuple(str(a) for a in doc["script_args"]), bool(doc["depth_axis"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        what = e.strerror if isinstance(e, OSError) else "not a sweep.json written by scaleadvise sweep"
        raise UserError(f"--out {out}: cannot read {MANIFEST} ({what})") from None


def check_identity(out: Path, mine: Identity) -> bool:
    """Whether OUT already belongs to this sweep (True) or is new/empty (False); UserError
    when its runs would mix with ours, naming what differs."""
    theirs = read_manifest(out)
    if theirs is None:
        if out.is_dir() and any(out.iterdir()):
            raise UserError(f"--out {out}: not empty and not a sweep folder (no {MANIFEST}); "
                            "use a new or empty folder")
        return False
    diffs = []
    if theirs.script_sha256 != mine.script_sha256:
        diffs.append("the script's content differs")
    if theirs.steps != mine.steps:
        diffs.append(f"--steps {_or_default(theirs.steps)} there, {_or_default(mine.steps)} here")
    if theirs.script_args != mine.script_args:
        diffs.append(f"script args {list(theirs.script_args)} there, {list(mine.script_args)} here")
    if theirs.depth_axis != mine.depth_axis:
        diffs.append("depth is swept there" if theirs.depth_axis else "depth is not swept there")
    if diffs:
        raise UserError(f"--out {out}: holds runs of another sweep ({'; '.join(diffs)}), whose results would mix "
                        f"with these: use a new --out (or delete {out / MANIFEST} to mix them knowingly)")
    return True


def _or_default(steps: int | None) -> str:
    return "(script default)" if steps is None else str(steps)


# ---- commands -------------------------------------------------------------------------

def check_script_args(args: list[str], depth_axis: bool) -> None:
    """Script arguments may set anything but what the sweep sets per run."""
    owned = [f for f in SWEEP_FLAGS if depth_axis or f != "--depth"]
    for arg in args:
        flag = arg.split("=", 1)[0]
        if not flag.startswith("--") or len(flag) < 3:
            continue
        for f in owned:
            if f.startswith(flag):  # argparse accepts unique prefixes: --step means --steps
                use = SWEEP_FLAGS[f]
                hint = f"use scaleadvise sweep {use}" if use else "a rerun resumes by itself"
                raise UserError(f"script args: {arg} sets {f}, which the sweep sets for each run ({hint})")


def run_command(script: Path, planned: PlannedRun, steps: int | None, threads: int, device: str | None,
                script_args: list[str]) -> list[str]:
    """The script's arguments for one run (the Python interpreter is the worker's own)."""
    return [str(script), "--out", str(planned.run_dir), *planned.run.flags(),
            *([] if steps is None else ["--steps", str(steps)]), *(["--resume"] if planned.action == "resume" else []),
            "--threads", str(threads), *([] if device is None else ["--device", device]), *script_args]
