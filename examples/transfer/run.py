"""Hyperparameter transfer across width on real text (Everett et al. 2024, §4.2, Figure 4, Table I1).

Trains the paper's NanoDO Transformer (C.1) at several widths over a learning-rate grid
in 2^0.5 steps, using only `scaleadvise emit-train`, `scaleadvise sweep` (one process of
the emitted script per run, on a local Ray runtime) and `scaleadvise fit`, on a byte-level corpus of the Python standard library's sources (real
text that ships with every Python; the emitted script holds out its last 5% for the eval
loss). Three settings, each with Adam:

  sp-global      SP init, one global LR (c = 0 everywhere)   paper: k = -0.95 (Table I1, fixed step, STP)
  sp-per-layer   SP + the per-layer exponents of Table 1     paper: k = -0.05 (Figure 4, STP, full alignment)
  mup-per-layer  muP + the per-layer exponents of Table 1    paper: k = -0.06 (Figure 4, muP, full alignment)

The swept quantity is the *base* LR at the base width (the smallest width); the
per-layer settings multiply it by (n/b)^-c_l. `fit` reports k in lr*(n) ∝ n^k with a
95% interval: a prescription that transfers gives k ≈ 0.

Each width's window is a stretch of the 2^0.5 lattice around a prior guess of the optimum
(slope -0.5 per doubling for the global LR, 0 for the per-layer settings); each setting
is one `scaleadvise sweep` of every width over the union of their windows. Whenever
`fit` reports the best LR at the edge of a width's grid, two more LRs are run beyond
that edge (the same sweep folder, a larger grid), until the optimum is bracketed (loss
rising on both sides).

Scales (same step count at every width: the paper's fixed-step setting):
  smoke  widths 16-64, depth 1, 60 steps            minutes on 2 CPU cores (the slow test)
  cpu    widths 32-256, depth 2, head dim 16, 300 steps   ~15-30 min on 2 CPU cores
  gpu    widths 128-2048, depth 4, head dim 128, 500 steps, bf16   estimated <= 10 min per width on one H100

    python examples/transfer/run.py --scale cpu
    python examples/transfer/run.py --scale gpu --device cuda

Writes results/<scale>/ here: sweeps.csv (merged), fit.json (`scaleadvise fit --json`),
fit.png (`fit --plot`), summary.json, transfer.png. Training runs go to work/ (not committed).
"""

import argparse
import csv
import dataclasses
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from scaleadvise.provenance import machine

HERE = Path(__file__).resolve().parent
VOCAB = 256  # byte-level tokens


@dataclasses.dataclass(frozen=True)
class Scale:
    widths: tuple[int, ...]
    head_dim: int  # fixed: width = heads x head_dim (the paper co-scales heads with width, C.1)
    depth: int
    context: int
    batch: int
    steps: int
    center: float  # log2 of the prior optimal base LR at the base width (pilot run, see README)
    half_window: float  # octaves each side of the prior optimum
    eval_batches: int
    corpus_mb: float
    jobs: int  # runs side by side (one CPU thread each) or one at a time (GPU)
    extra: tuple[str, ...] = ()  # further flags for the emitted script

    @property
    def base_width(self) -> int:
        return self.widths[0]


SCALES = {
    "smoke": Scale((16, 32, 64), 8, 1, 32, 8, 60, -5.0, 1.0, 4, 1.0, 2),
    "cpu": Scale((32, 64, 128, 256), 16, 2, 64, 16, 300, -6.0, 2.0, 16, 4.0, 2),
    # torch.compile is off: a sweep builds a fresh model per run and compiling each would cost more
    # than the run itself at the small widths (the estimate in the README assumes eager bf16).
    "gpu": Scale((128, 256, 512, 1024, 2048), 128, 4, 256, 32, 500, -7.0, 1.5, 16, 16.0, 1,
                 ("--compile", "off")),
}


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    param: str  # emit-train --param
    global_lr: bool  # one LR for every layer at every width (c = 0), SP init
    fit_setting: str  # `fit --setting` vocabulary
    prior_slope: float  # where to centre each width's LR window (octaves per doubling)
    paper: float
    paper_source: str


SETTINGS = (
    Setting("sp-global", "stp", True, "global", -0.5, -0.95, "Table I1, fixed-step global Adam, STP"),
    Setting("sp-per-layer", "stp", False, "per-layer-full", 0.0, -0.05, "Figure 4, per-layer Adam, STP"),
    Setting("mup-per-layer", "mup", False, "per-layer-full", 0.0, -0.06, "Figure 4, per-layer Adam, muP"),
)
SWEEP_FIELDS = ("setting", "param", "optim", "width", "lr", "loss", "step", "seed", "diverged")
MAX_EXTENSIONS = 4


def say(text: str) -> None:
    print(text, flush=True)


def lattice(lo: float, hi: float) -> list[float]:
    """Base LRs 2^lo .. 2^hi on the 2^0.5 lattice (lo, hi are rounded onto it)."""
    a, b = round(2 * lo), round(2 * hi)
    return [2.0 ** (k / 2) for k in range(a, b + 1)]


def window(scale: Scale, setting: Setting, width: int) -> list[float]:
    """A width's initial LR grid: centred on the prior optimum, shifted by the prior slope."""
    mid = scale.center + setting.prior_slope * math.log2(width / scale.base_width)
    return lattice(mid - scale.half_window, mid + scale.half_window)


def run_cmd(cmd: list[str], log: Path | None, env: dict | None = None, ok: tuple[int, ...] = (0,)) -> str:
    """Run a command as a user would; its stdout is returned, its stderr goes to `log`."""
    if log is None:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    else:
        with open(log, "a") as f:
            f.write(f"$ {shlex.join(cmd)}\n")
            f.flush()
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, env=env)
    if res.returncode not in ok:
        tail = res.stderr if log is None else log.read_text()[-2000:]
        raise SystemExit(f"command failed ({res.returncode}): {shlex.join(cmd)}\n{tail}")
    return res.stdout


def read_sweeps(paths: list[Path], setting: Setting) -> list[dict]:
    """Rows of `scaleadvise sweep`'s sweeps.csv files, tagged with the setting. The
    global-LR runs are STP's (a, b) with one LR for every layer, so they are written as
    param stp, setting global: the names `fit` compares with the theory."""
    rows = []
    for p in paths:
        if p.exists():
            with open(p) as f:
                rows += [{**r, "setting": setting.fit_setting, "param": setting.param} for r in csv.DictReader(f)]
    return rows


def write_sweeps(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, SWEEP_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: (r["setting"], r["param"], int(r["width"]), float(r["lr"]))))
    os.replace(tmp, path)


def fit_json(csv_path: Path, *flags: str) -> dict:
    return json.loads(run_cmd(["scaleadvise", "fit", str(csv_path), "--json", *flags], None))


def sweep(args, scale: Scale, setting: Setting, script: Path, widths: list[int], lrs: list[float],
          commands: list) -> dict:
    """One `scaleadvise sweep` (widths x lrs) into work/<setting>/: a rerun of the example, or a
    larger grid in a later round, adds runs to the same sweep folder (finished runs are skipped)."""
    out = Path(args.work) / setting.name
    resources = ["--gpus-per-run", "1"] if args.device != "cpu" else \
        ["--cpus-per-run", "1", "--threads-per-run", "1"]  # small models scale badly across threads
    cmd = ["scaleadvise", "sweep", str(script), "--widths", ",".join(map(str, widths)),
           "--lrs", ",".join(repr(x) for x in lrs), "--steps", str(scale.steps), "--out", str(out),
           "--max-parallel", str(args.jobs), *resources, "--json",
           "--", "--data", str(Path(args.work) / "corpus.txt"), "--batch-size", str(scale.batch),
           "--eval-every", str(scale.steps), "--eval-batches", str(scale.eval_batches),
           "--log-every", str(max(1, scale.steps // 5)), "--grads-every", "0", "--align-every", "0",
           *scale.extra]
    commands.append(shlex.join(cmd))
    t0 = time.perf_counter()
    doc = json.loads(run_cmd(cmd, Path(args.work) / f"{setting.name}.log"))
    runs = doc["runs"]
    say(f"  {setting.name:13s} widths {','.join(map(str, widths)):>10s}: {runs['planned']} runs "
        f"({runs['skipped']} already done, {runs['diverged']} diverged, {runs['failed']} failed) "
        f"in {time.perf_counter() - t0:4.0f} s")
    return doc


def sweep_setting(args, scale: Scale, setting: Setting, script: Path, commands: list) -> Path:
    """Sweep every width over the union of their LR windows, then, wherever `fit` finds a
    width's optimum at the edge of its grid, two more LRs beyond that edge for that width,
    until every optimum is bracketed."""
    widths = list(scale.widths)
    lrs = sorted({lr for w in widths for lr in window(scale, setting, w)})
    out = Path(sweep(args, scale, setting, script, widths, lrs, commands)["sweeps_csv"])
    for _ in range(MAX_EXTENSIONS):
        optima = fit_json(out, "--group-by", "none", "--bootstrap", "0")["groups"][0]["optima"]
        swept = {w: sorted(float(r["lr"]) for r in read_sweeps([out], setting) if int(r["width"]) == w)
                 for w in widths}
        more: dict[tuple[float, ...], list[int]] = {}
        for rec in optima:
            w = int(rec["width"])
            if rec["lr"] is None or rec.get("edge") == "low":  # every run diverged, or the lowest LR is best
                lo = math.log2(swept[w][0])
                more.setdefault(tuple(lattice(lo - 1.0, lo - 0.5)), []).append(w)
            elif rec.get("edge") == "high":
                hi = math.log2(swept[w][-1])
                more.setdefault(tuple(lattice(hi + 0.5, hi + 1.0)), []).append(w)
        if not more:
            return out
        for ext, ws in more.items():
            say(f"  {setting.name} widths {ws}: optimum at the grid's edge; adding LRs {[f'{x:.3g}' for x in ext]}")
            sweep(args, scale, setting, script, ws, list(ext), commands)
    say(f"  {setting.name}: an optimum is still at the grid edge after {MAX_EXTENSIONS} extensions")
    return out


def emit(args, scale: Scale, setting: Setting, commands: list) -> Path:
    """The setting's training script. Per-layer settings: `emit-train --param P`. The global
    LR: the STP prescription with c = 0 for every layer (one LR for all layers at every
    width: the "global" setting of Table I1), written by `prescribe --json`, edited, and
    emitted with `emit-train --prescription`."""
    work = Path(args.work)
    script = work / f"train_{setting.name}.py"
    model = ["--param", setting.param, "--optim", "adam", "--width", str(scale.base_width), "--depth",
             str(scale.depth), "--head-dim", str(scale.head_dim), "--context", str(scale.context), "--vocab",
             str(VOCAB), "--base-width", str(scale.base_width), "--base-lr", repr(2.0 ** scale.center)]
    if setting.global_lr:
        pres_cmd = ["scaleadvise", "prescribe", *model, "--json"]
        commands.append(shlex.join(pres_cmd) + "  # then c = 0 for every layer")
        doc = json.loads(run_cmd(pres_cmd, work / "emit.log"))
        for layer in doc["layers"].values():
            layer["c"] = 0.0
        pres = work / f"prescription_{setting.name}.json"
        pres.write_text(json.dumps(doc, indent=1) + "\n")
        cmd = ["scaleadvise", "emit-train", "--prescription", str(pres), "-o", str(script)]
    else:
        cmd = ["scaleadvise", "emit-train", *model, "-o", str(script)]
    commands.append(shlex.join(cmd))
    run_cmd(cmd, work / "emit.log")
    return script


def unigram_entropy(path: Path) -> float:
    """Entropy (nats) of the byte distribution of the held-out tail (the script's last 5%):
    the loss of the best model that ignores context."""
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    held = data[len(data) - len(data) // 20:]
    p = np.bincount(held, minlength=VOCAB) / held.size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def summarize(fit: dict, scale_name: str, scale: Scale, extra: dict) -> dict:
    by_key = {(g["key"].get("param"), g["key"].get("setting")): g for g in fit["groups"]}
    out = {}
    for s in SETTINGS:
        g = by_key.get((s.param, s.fit_setting))
        if g is None:
            continue
        ci = g["lr_exponent_ci"]
        out[s.name] = {
            "lr_exponent": g["lr_exponent"], "lr_exponent_ci": ci, "lr_exponent_ci_t": g["lr_exponent_ci_t"],
            "paper": s.paper, "paper_source": s.paper_source,
            "paper_inside_ci": None if ci is None or None in ci else bool(ci[0] <= s.paper <= ci[1]),
            "transfer": g["transfer"], "verdict": g["verdict"],
            "optima": [{k: o.get(k) for k in ("width", "lr", "lr_refined", "loss", "edge", "n_lrs")}
                       for o in g["optima"]],
            "theory": (g.get("interpretation") or {}).get("message"),
        }
    return {"scale": scale_name, "config": dataclasses.asdict(scale), "settings": out, **extra}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda for --scale gpu, else cpu)")
    ap.add_argument("--jobs", type=int, default=None, help="runs side by side (default: the scale's)")
    ap.add_argument("--work", default=None, help="training runs (default: work/<scale> here; not committed)")
    ap.add_argument("--results", default=None, help="results folder (default: results/<scale> here)")
    args = ap.parse_args()
    scale = SCALES[args.scale]
    args.device = args.device or ("cuda" if args.scale == "gpu" else "cpu")
    args.jobs = args.jobs or (scale.jobs if args.device == "cpu" else 1)
    args.work = Path(args.work or HERE / "work" / args.scale)
    results = Path(args.results or HERE / "results" / args.scale)
    args.work.mkdir(parents=True, exist_ok=True)
    t_start, info = time.perf_counter(), machine(load_average_start=list(os.getloadavg()))

    from scaleadvise.corpus import build_corpus
    corpus = build_corpus(args.work / "corpus.txt", int(scale.corpus_mb * (1 << 20)))
    h_unigram = unigram_entropy(args.work / "corpus.txt")
    say(f"corpus: {corpus['bytes']:,} bytes from {corpus['files']} stdlib files (Python {corpus['python']}); "
        f"held-out unigram entropy {h_unigram:.3f} nats")
    commands: list[str] = []
    scripts = {s.name: emit(args, scale, s, commands) for s in SETTINGS}
    say(f"{len(SETTINGS)} sweeps (widths {list(scale.widths)}), {scale.steps} steps per run, "
        f"{args.jobs} runs at a time on {args.device}")
    parts = {s.name: sweep_setting(args, scale, s, scripts[s.name], commands) for s in SETTINGS}

    rows = [r for s in SETTINGS for r in read_sweeps([parts[s.name]], s)]
    sweeps = results / "sweeps.csv"
    write_sweeps(sweeps, rows)
    fit_cmd = ["scaleadvise", "fit", str(sweeps), "--group-by", "param,setting", "--json",
               "--plot", str(results / "fit.png")]
    commands.append(shlex.join(fit_cmd))
    fit = json.loads(run_cmd(fit_cmd, None))
    (results / "fit.json").write_text(json.dumps(fit, indent=1) + "\n")
    wall = time.perf_counter() - t_start
    info["load_average_end"] = list(os.getloadavg())
    summary = summarize(fit, args.scale, scale, {
        "machine": info, "device": args.device, "jobs": args.jobs, "wall_time_s": round(wall, 1),
        "corpus": {**corpus, "path": os.path.relpath(corpus["path"], HERE)}, "unigram_entropy_nats": h_unigram,
        "runs": len(rows), "commands": [c.replace(str(HERE) + "/", "") for c in commands],
        "warnings": fit["warnings"]})
    (results / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    from plot import plot_transfer  # examples/transfer/plot.py (the script's folder is on sys.path)
    plot_transfer(rows, summary, results / "transfer.png")

    say(f"\n{'setting':14s} {'k (lr* ~ n^k)':>14s} {'95% interval':>18s} {'paper':>7s}  verdict")
    for name, s in summary["settings"].items():
        ci = s["lr_exponent_ci"]
        ci_text = "none" if ci is None or None in ci else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"
        k = "none" if s["lr_exponent"] is None else f"{s['lr_exponent']:+.2f}"
        say(f"{name:14s} {k:>14s} {ci_text:>18s} {s['paper']:+7.2f}  {s['verdict']}")
    for w in fit["warnings"]:
        say(f"warning: {w}")
    say(f"wall time {wall / 60:.1f} min; results in {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
