"""From runs to `sweeps.csv`, the table `scaleadvise fit` reads.

One row per finished run (result.json "done" or "diverged"), keyed by the run's folder
name, so a run can never appear twice however often the sweep is rerun or resumed. The
table is rewritten whole and atomically (temp file + os.replace) after every finished
run: a reader, or an interrupted sweep, only ever sees a complete file.

Columns (docs/CONTRACTS.md, the sweep CSV read by `fit`): width, lr, loss, step, seed, param,
optim, diverged; plus depth (after width) when depth is swept, for `fit --scale-by depth`.
A diverged run's loss is NaN at the planned last step (`fit` treats NaN as unstable,
paper C.1).
"""

import csv
import io
import math
import os
import tempfile
from pathlib import Path

from scaleadvise.sweep.plan import FINISHED, Run, parse_run_name, read_result

SWEEP_COLUMNS = ("width", "lr", "loss", "step", "seed", "param", "optim", "diverged")


def fields(depth_axis: bool) -> tuple[str, ...]:
    return SWEEP_COLUMNS[:1] + ("depth",) + SWEEP_COLUMNS[1:] if depth_axis else SWEEP_COLUMNS


def _finite(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def make_row(run: Run, result: dict) -> dict:
    """The sweeps.csv row of a finished run. The grid point comes from the plan (the
    exact LR the run was given; a folder name holds it to 6 digits only, so the LR
    result.json echoes is used when it agrees); the outcome from result.json."""
    lr = _finite(result.get("lr"))
    if lr is None or f"{lr:.6g}" != f"{run.lr:.6g}":
        lr = run.lr
    loss = None
    if result.get("status") != "diverged":  # eval loss, else the training loss the script ended with
        loss = _finite(result.get("eval_loss"))
        loss = _finite(result.get("train_loss")) if loss is None else loss
    # A diverged run is recorded at its planned last step (result "steps"), as the runs that
    # finished are: `fit` compares runs at their final step and would drop a run that
    # "stopped early" instead of reading its NaN as unstable.
    step = result.get("step") if loss is not None else result.get("steps", result.get("step"))
    row = {"width": run.width, "lr": lr, "loss": math.nan if loss is None else loss,
           "step": step if isinstance(step, int) and not isinstance(step, bool) else "",
           "seed": run.seed, "param": str(result.get("parameterization") or ""),
           "optim": str(result.get("optimizer") or ""), "diverged": int(loss is None)}
    if run.depth is not None:
        row["depth"] = run.depth
    return row


def scan(out: Path, depth_axis: bool) -> dict[str, dict]:
    """Rows of every finished run already in OUT (from this plan or an earlier grid)."""
    rows: dict[str, dict] = {}
    if not out.is_dir():
        return rows
    for entry in sorted(out.iterdir()):
        run = parse_run_name(entry.name)
        if run is None or (run.depth is not None) != depth_axis or not entry.is_dir():
            continue
        result = read_result(entry)
        if result is not None and result.get("status") in FINISHED:
            rows[entry.name] = make_row(run, result)
    return rows


def _sort_key(row: dict):
    return (row["param"], row["optim"], row["width"], row.get("depth", 0), row["lr"], row["seed"])


def render_csv(rows: dict[str, dict], depth_axis: bool) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fields(depth_axis), lineterminator="\n")
    w.writeheader()
    for row in sorted(rows.values(), key=_sort_key):
        w.writerow({k: repr(v) if isinstance(v, float) and math.isfinite(v) else v for k, v in row.items()})
    return buf.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Write text to path via a temp file in the same folder and os.replace: readers see
    the old file or the new one, never a part. The file gets the user's umask (not the
    temp file's 0600); the temp file is removed on every path."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_csv(path: Path, rows: dict[str, dict], depth_axis: bool) -> None:
    write_atomic(path, render_csv(rows, depth_axis))
