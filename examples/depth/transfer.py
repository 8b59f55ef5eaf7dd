"""LR transfer across depth, and App. G's weight-decay cross-check across width, on real text at CPU scale.

depth  (the default): base-LR sweeps at depths 2, 4, 8, 16 at a fixed width, for each depth
       parameterization (none, depth-mup alpha = 1/2, completep alpha = 1; muP in width,
       AdamW, per-layer epsilon, base depth 2), then `scaleadvise fit --scale-by depth`:
       lr*(L) ∝ L^k with a 95% interval per parameterization. A depth parameterization
       that transfers gives k ≈ 0; with none the branch LR must fall as depth grows.
appg   Everett et al. 2024 App. G: a width-transfer sweep (widths 32..128 at depth 2, muP +
       AdamW with the per-layer exponents) without and with independent weight decay λ per
       step (timescale τ = 1/λ a fraction of the run, Wang & Aitchison 2024), then
       `scaleadvise fit`: does the fitted width exponent k move when decay is on?

Runs are made in-process by `scaleadvise.torch.parameterize` on the emitted script's NanoDO
(examples/depth/common.py), two at a time with one torch thread each, and written in the
columns `scaleadvise sweep` writes (width, depth, lr, loss, step, seed, param, optim,
diverged) plus the grouping column (depth_param or weight_decay). run_sweep.sh drives the
same experiment through `scaleadvise emit-train` + `scaleadvise sweep` once those are on main.

    python examples/depth/transfer.py depth          # ~15-25 min on 2 busy CPU cores
    python examples/depth/transfer.py appg           # ~10-15 min
    python examples/depth/transfer.py depth --quick  # a smoke run, ~1 min

Writes results/<experiment>_sweeps.csv, results/<experiment>_fit.json (`fit --json`) and
results/<experiment>_fit.png (`fit --plot`).
"""

import argparse
import concurrent.futures
import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

COLUMNS = ("width", "depth", "lr", "loss", "step", "seed", "param", "optim", "diverged", "depth_param",
           "weight_decay", "seconds")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=("depth", "appg"))
    ap.add_argument("--depths", default="2,4,8,16")
    ap.add_argument("--base-depth", type=int, default=2)
    ap.add_argument("--widths", default="32,64,128", help="appg: widths (depth experiment: the first one)")
    ap.add_argument("--width", type=int, default=32, help="depth experiment: the width")
    ap.add_argument("--lrs", default="-8:-2:1", help="log2 base LRs START:STOP:STEP (inclusive)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=32)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--eval-batches", type=int, default=32, help="held-out batches in the final loss")
    ap.add_argument("--weight-decay", type=float, default=None, help="appg: λ per step (default 2/steps: τ = half "
                                                                      "the run)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 depths/widths, 4 LRs, 30 steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.depths, args.widths, args.lrs, args.steps, args.seeds = "2,4", "32,64", "-10:-4:2", 30, "0"
    return args


def lattice(spec: str) -> list[float]:
    start, stop, step = (float(x) for x in spec.split(":"))
    n = int(round((stop - start) / step)) + 1
    return [2.0 ** (start + i * step) for i in range(n)]


def plan(args) -> list[dict]:
    """One dict of train() arguments per run."""
    common = dict(steps=args.steps, batch=args.batch, context=args.context, head_dim=args.head_dim, param="mup",
                  eval_batches=args.eval_batches)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    if args.experiment == "depth":
        for dp in ("none", "depth-mup", "completep"):
            for L in (int(d) for d in args.depths.split(",")):
                runs += [dict(common, width=args.width, depth=L, lr=lr, base_width=args.width, depth_param=dp,
                              base_depth=args.base_depth, seed=s) for lr in lattice(args.lrs) for s in seeds]
    else:
        widths = [int(w) for w in args.widths.split(",")]
        lam = args.weight_decay if args.weight_decay is not None else 2.0 / args.steps
        for wd in (None, lam):
            for w in widths:
                runs += [dict(common, width=w, depth=args.base_depth, lr=lr, base_width=widths[0], depth_param="none",
                              base_depth=args.base_depth, seed=s, weight_decay=wd)
                         for lr in lattice(args.lrs) for s in seeds]
    return runs


_DATA = None


def _run(kw: dict) -> dict:
    global _DATA
    import torch

    import common

    torch.set_num_threads(1)
    if _DATA is None:
        _DATA = common.tokens()
    return common.train(**kw, data=_DATA)


def main(argv=None) -> None:
    args = parse_args(argv)
    import common

    common.tokens()  # build the corpus once, before the workers read it
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.experiment + ("_quick" if args.quick else "")
    csv_path = out / f"{name}_sweeps.csv"
    runs, rows, t0 = plan(args), [], time.time()
    print(f"{len(runs)} runs, {args.workers} at a time", flush=True)
    with concurrent.futures.ProcessPoolExecutor(args.workers) as pool:
        for i, row in enumerate(pool.map(_run, runs), 1):
            rows.append(row)
            print(f"[{i}/{len(runs)}] {row['depth_param']:9s} w={row['width']} L={row['depth']} "
                  f"wd={row['weight_decay']:g} lr={row['lr']:.3g} loss={row['loss']:.4f} ({row['seconds']} s)",
                  flush=True)
    tmp = csv_path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, csv_path)
    minutes = (time.time() - t0) / 60
    rel = os.path.relpath(csv_path, REPO)  # run from the repository root: paths in the JSON stay relative
    fit = ([sys.executable, "-m", "scaleadvise", "fit", rel, "--scale-by", "depth", "--group-by",
            "depth_param"] if args.experiment == "depth" else
           [sys.executable, "-m", "scaleadvise", "fit", rel, "--group-by", "weight_decay"])
    fit += ["--bootstrap", str(args.bootstrap)]
    doc = json.loads(subprocess.run(fit + ["--json"], check=True, capture_output=True, text=True, cwd=REPO).stdout)
    doc["command"] = " ".join(["scaleadvise", *fit[3:]])
    doc["runs_minutes"] = round(minutes, 1)
    (out / f"{name}_fit.json").write_text(json.dumps(doc, indent=1) + "\n")
    subprocess.run(fit + ["--plot", str(out / f"{name}_fit.png")], check=True, capture_output=True, cwd=REPO)
    print(f"{len(rows)} runs in {minutes:.1f} min; fit: {doc['command']}")
    for g in doc["groups"]:
        ci = g["lr_exponent_ci"]
        k = g["lr_exponent"]
        print(f"  {g['label']}: k = {'—' if k is None else f'{k:.3f}'} "
              f"{'' if not ci else f'[{ci[0]:.3f}, {ci[1]:.3f}]'}; {g['verdict']}")


if __name__ == "__main__":
    main()
