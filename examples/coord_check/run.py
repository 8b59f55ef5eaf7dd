"""Coordinate-check gallery: activation sizes across widths for stp, ntk, mup, mfp, umup
with their prescriptions, and SP with one global LR as the cautionary case.

Reproduces the coordinate check of Tensor Programs V (Yang et al. 2021; microsoft/mup) and
unit scaling on the paper's NanoDO Transformer (Everett et al. 2024, C.1), the model
`scaleadvise emit-train` writes. For each parameterization it asks the tool for the
prescription (`scaleadvise prescribe --json`: Adam, full alignment, per-layer LR
exponents of Table 1), tunes one base LR at the base width, then trains widths
64..1024 (head dim fixed) for a few constant-LR Adam steps on byte tokens of the
standard library's sources and records, on a fixed held-out batch, the RMS of every
activation and of its change since step 0. It fits the width exponent of each and
compares it with the exponent the theory derives from the prescription
(scaleadvise.torch.coord_check.expected_slopes).

    python examples/coord_check/run.py              # ~2.5 min on 2 idle CPU cores
    python examples/coord_check/run.py --quick      # widths 32..256, 5 steps: ~20 s

Writes results.json, coord_check.png (h_t), coord_check_delta.png (h_t - h_0) and
slopes.png (measured vs theory) next to this file.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scaleadvise.corpus import build_corpus
from scaleadvise.script.template.data import batch_offsets, gather_batch
from scaleadvise.torch.coord_check import coord_check, expected_slopes, slope
from scaleadvise.provenance import machine

HERE = Path(__file__).resolve().parent
PARAMS = ("stp", "ntk", "mup", "mfp", "umup")
SP_GLOBAL = "sp-global"  # stp's init, one global LR: coord_check.plain_prescription
CASES = (*PARAMS, SP_GLOBAL)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", default="64,128,256,512,1024", help="model widths (head dim fixed)")
    ap.add_argument("--base-width", type=int, default=None, help="width where the base LR is tuned (default: "
                                                                  "the smallest width)")
    ap.add_argument("--steps", type=int, default=10, help="Adam steps at a constant LR")
    ap.add_argument("--seeds", default="0,1,2", help="seeds; RMS values are averaged over them")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--context", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8, help="sequences per step (and in the probe batch)")
    ap.add_argument("--lr-grid", default="-10:0", help="log2 base LRs tried at the base width, START:STOP")
    ap.add_argument("--tune-steps", type=int, default=40, help="steps per base-LR trial at the base width")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads for widths >= 512 (smaller "
                                                            "models use 1: two threads on a shared 2-core "
                                                            "machine make them many times slower)")
    ap.add_argument("--out", default=str(HERE), help="output directory")
    ap.add_argument("--quick", action="store_true", help="widths 32..256, 5 steps (a smoke run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.widths, args.steps, args.context, args.head_dim, args.seeds = "32,64,128,256", 5, 16, 16, "0"
    return args


def prescription(param: str, args: argparse.Namespace, base_width: int) -> dict:
    """The tool's own answer, through its CLI, as a user would get it."""
    cmd = [sys.executable, "-m", "scaleadvise", "prescribe", "--param", param, "--optim", "adam",
           "--width", str(base_width), "--base-width", str(base_width), "--model", "nanodo",
           "--depth", str(args.depth), "--head-dim", str(args.head_dim), "--context", str(args.context),
           "--vocab", "256", "--json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def tune_base_lr(pres: dict, width: int, grid: list[float], batches, probe) -> tuple[float, dict]:
    """The base LR with the lowest training loss over the last 10 of ``len(batches(0))``
    steps at the base width (the muTransfer recipe: tune small, transfer by the exponents).
    A longer horizon than the check's own few steps: those favour the largest LR that
    survives them."""
    torch.set_num_threads(1)
    scores = {}
    for lr in grid:
        tail = coord_check(pres, [width], batches, probe, seeds=(0,), base_lr=lr)["loss"][0][-10:]
        scores[lr] = sum(tail) / len(tail) if all(math.isfinite(x) for x in tail) else math.inf
    return min(scores, key=scores.get), scores


def check_widths(pres: dict, widths: list[int], threads: int, **kw) -> dict:
    """coord_check one width at a time, with 1 thread below width 512, merged."""
    parts = []
    for w in widths:
        torch.set_num_threads(1 if w < 512 else threads)
        parts.append(coord_check(pres, [w], **kw))
    out = {**parts[0], "widths": widths, "loss": [p["loss"][0] for p in parts]}
    for key in ("h", "delta"):
        out[key] = {n: [p[key][n][0] for p in parts] for n in parts[0]["coordinates"]}
    return out


def summarize(data: dict, expected: dict, steps: int) -> dict:
    """Measured width exponents beside the theory's, per coordinate."""
    w = data["widths"]
    out = {}
    for n in data["coordinates"]:
        out[n] = {"h0": slope(w, [r[0] for r in data["h"][n]]), "h0_theory": expected[n]["h0"],
                  "h": slope(w, [r[steps] for r in data["h"][n]]), "h_theory": expected[n]["h"],
                  "delta": slope(w, [r[steps] for r in data["delta"][n]]), "delta_theory": expected[n]["delta"],
                  "delta_by_step": [slope(w, [r[t] for r in data["delta"][n]]) for t in range(1, steps + 1)],
                  # local exponent at the widest 3 widths: the theory's exponents are asymptotic
                  "delta_top3": slope(w[-3:], [r[steps] for r in data["delta"][n][-3:]])}
    return out


LABELS = {"embed": "embedding output", "readout": "logits"}


def label(name: str) -> str:
    if name in LABELS:
        return LABELS[name]
    parts = name.split(".")
    what = {"attn": "attention out", "mlp": "MLP out"}.get(parts[2], "") if len(parts) > 2 else "residual stream"
    return f"block {int(parts[1]) + 1} {what}"


def _minor_label(v: float, _pos) -> str:
    """Label the 2x and 5x minor ticks of a log axis (a narrow range may hold no decade)."""
    lead = round(v / 10 ** math.floor(math.log10(v)))
    return f"{v:g}" if lead in (2, 5) else ""


def plot_grid(results: dict, key: str, path: Path, rows: list[str], steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    cases = list(results)
    fig, axes = plt.subplots(len(rows), len(cases), figsize=(3.0 * len(cases), 2.5 * len(rows)), squeeze=False)
    cmap = plt.get_cmap("viridis")
    first = 0 if key == "h" else 1
    for j, case in enumerate(cases):
        r = results[case]
        w = r["data"]["widths"]
        for i, name in enumerate(rows):
            ax = axes[i][j]
            for t in range(first, steps + 1):
                ys = [v[t] for v in r["data"][key][name]]
                ax.plot(w, ys, "o-", ms=3, lw=1.2, color=cmap(t / steps), label=f"t={t}")
            s = r["slopes"][name]
            theory = s["h_theory" if key == "h" else "delta_theory"]
            ax.set_title(f"{case}: {label(name)}\nslope t={steps}: {s[key]:+.2f} (theory {theory:+.1f})", fontsize=8)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            lo, hi = ax.get_ylim()  # at least a factor 8 in view, so that flat looks flat
            mid = math.sqrt(lo * hi)
            if hi / lo < 8:
                ax.set_ylim(mid / math.sqrt(8), mid * math.sqrt(8))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
            ax.tick_params(labelsize=7)
            if i == len(rows) - 1:
                ax.set_xlabel("width n", fontsize=8)
            if j == 0:
                ax.set_ylabel("RMS " + ("h_t" if key == "h" else "(h_t - h_0)"), fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, title="step t", title_fontsize=8)
    what = "activations h_t" if key == "h" else "activation change h_t - h_0"
    fig.suptitle(f"Coordinate check, NanoDO (pre-LN), Adam: RMS of {what} vs width, one line per step "
                 f"(flat = width-stable; SP global LR grows)", fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def plot_slopes(results: dict, path: Path, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.2))
    names = results[CASES[0]]["data"]["coordinates"]
    cmap = plt.get_cmap("tab10")
    width = 0.8 / len(names)
    for j, case in enumerate(results):
        for k, n in enumerate(names):
            x = j - 0.4 + (k + 0.5) * width
            s = results[case]["slopes"][n]
            ax.plot([x - width / 2, x + width / 2], [s["delta_theory"]] * 2, "k-", lw=2,
                    label="theory" if j == 0 and k == 0 else None)
            ax.plot(x, s["delta"], "o", color=cmap(k), ms=6, label=label(n) if j == 0 else None)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks(range(len(results)), list(results))
    ax.set_ylabel(f"width exponent of RMS(h_t - h_0), t={steps}")
    ax.set_xlabel("parameterization (per-layer prescription; sp-global: SP, one LR)")
    ax.set_title("Measured slope of log RMS(Δh) vs log width (dots) and the theory's (bars, from a, b, c)")
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _json_safe(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def main(argv=None) -> int:
    args = parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    base_width = args.base_width or min(widths)
    lo, hi = (int(x) for x in args.lr_grid.split(":"))
    grid = [2.0 ** k for k in range(lo, hi + 1)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    corpus = build_corpus(Path(tempfile.gettempdir()) / "scaleadvise-stdlib-2mb.txt", 2 << 20)
    tokens = np.frombuffer(Path(corpus["path"]).read_bytes(), dtype=np.uint8)
    cut = len(tokens) * 19 // 20  # the emitted script's split: the last 5% is held out
    train, held = tokens[:cut], tokens[cut:]

    def batches_of(steps: int):
        def batches(seed: int):
            return [gather_batch(train, batch_offsets(len(train), args.context, args.batch, seed, i), args.context)
                    for i in range(steps)]
        return batches

    def probe(seed: int):
        return gather_batch(held, batch_offsets(len(held), args.context, args.batch, seed, 0), args.context)[0]

    print(f"corpus: {corpus['bytes']} bytes of Python {corpus['python']} stdlib; widths {widths}, "
          f"{args.steps} steps, seeds {seeds}", flush=True)
    prescriptions = {p: prescription(p, args, base_width) for p in PARAMS}
    results: dict = {}
    for case in CASES:
        plain = case == SP_GLOBAL
        pres = prescriptions["stp" if plain else case]
        t0 = time.perf_counter()
        if plain:  # SP's one LR is tuned as stp's: both are the same model at the base width
            lr, scores = results["stp"]["base_lr"], results["stp"]["lr_scores"]
        else:
            lr, scores = tune_base_lr(pres, base_width, grid, batches_of(args.tune_steps), probe)
        print(f"== {case}: base LR {lr:.4g} (2^{math.log2(lr):.0f}) at width {base_width}", flush=True)
        data = check_widths(pres, widths, args.threads, batches=batches_of(args.steps), probe=probe, seeds=seeds,
                            base_lr=lr, plain=plain, progress=lambda s: print(f"   {s}", flush=True))
        expected = expected_slopes(pres, plain=plain)
        results[case] = {"base_lr": lr, "lr_scores": scores, "layers": {t: {k: v[k] for k in ("a", "b", "c")}
                                                                        for t, v in pres["layers"].items()},
                         "data": data, "expected": expected, "slopes": summarize(data, expected, args.steps),
                         "seconds": time.perf_counter() - t0}
        if plain:
            results[case]["layers"] = {t: {"a": 0.0, "b": 0.0 if t == "embedding" else 0.5, "c": 0.0}
                                       for t in pres["layers"]}

    depth = args.depth
    rows = ["embed", f"blocks.{depth - 1}.attn", f"blocks.{depth - 1}.mlp", f"blocks.{depth - 1}", "readout"]
    plot_grid(results, "h", out / "coord_check.png", rows, args.steps)
    plot_grid(results, "delta", out / "coord_check_delta.png", rows, args.steps)
    plot_slopes(results, out / "slopes.png", args.steps)
    wall = time.perf_counter() - t_start
    doc = {"what": "coordinate check: width exponents of activation RMS, measured vs theory",
           "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
           "config": {"widths": widths, "base_width": base_width, "steps": args.steps, "seeds": seeds,
                      "depth": depth, "head_dim": args.head_dim, "context": args.context, "batch": args.batch,
                      "vocab": 256, "optimizer": "adam (betas 0.9, 0.98; constant LR, no warmup)",
                      "alignment": "full", "lr_grid": grid, "tune_steps": args.tune_steps,
                      "threads": {"width < 512": 1, "width >= 512": args.threads}, "corpus": corpus},
           "machine": machine(), "wall_seconds": wall, "results": results}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(_json_safe(doc), indent=1))
    os.replace(tmp, out / "results.json")

    print(f"\nwidth exponent of RMS(h_t - h_0) at t={args.steps}, measured (theory)")
    names = results[CASES[0]]["data"]["coordinates"]
    print(f"{'coordinate':26s}" + "".join(f"{c:>14s}" for c in CASES))
    for n in names:
        cells = (results[c]["slopes"][n] for c in CASES)
        print(f"{label(n):26s}" + "".join(f"{s['delta']:+8.2f} ({s['delta_theory']:+.1f})" for s in cells))
    init = (results[c]["slopes"]["readout"] for c in CASES)
    print("logits at init: " + ", ".join(f"{c} {s['h0']:+.2f} ({s['h0_theory']:+.1f})" for c, s in zip(CASES, init)))
    sp = results[SP_GLOBAL]["slopes"]
    print("sp-global, widest 3 widths only: " + ", ".join(f"{label(n)} {sp[n]['delta_top3']:+.2f}" for n in rows))
    print(f"sp-global, {label(rows[2])} by step t=1..{args.steps}: "
          + " ".join(f"{v:+.2f}" for v in sp[rows[2]]["delta_by_step"]))
    print(f"wrote {out / 'results.json'}, coord_check.png, coord_check_delta.png, slopes.png; wall {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
