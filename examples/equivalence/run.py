"""§3.2 at finite precision: SP = NTK and muP = MFP give the same loss curve, until epsilon.

Everett et al. 2024, §3.2 (and B.2): moving a factor n^-θ from a layer's init into
its multiplier (a += θ, b -= θ) keeps the forward pass, and scaling Adam's LR by
n^θ (c -= θ) keeps every step: SP and NTK are one network, muP and MFP another. The
paper stresses this holds "only under infinite precision" and that Adam's epsilon
breaks it (§4.3): the raw gradients of the side with the smaller multiplier are
that many times smaller, so a constant epsilon weighs more there. Adam-atan2 (C.5)
has no epsilon and keeps the symmetry.

This script, driving the tool as a user would (each step is a shell command):

1. `scaleadvise prescribe --json` gives side A (stp, mup); `scaleadvise equiv
   --to-form ntk|mfp --width ... --prescription-out` gives side B with the
   constants that make it the same network (gamma x b^θ per layer, and for MFP the
   embedding init 1 instead of C.2's 0.01);
2. `scaleadvise emit-train --prescription X.json` writes the NanoDO training script
   (paper C.1) of each side;
3. `python train.py --data corpus.txt --width W` trains both, one process per width,
   on the standard library's source bytes (scaleadvise.corpus), fp32, CPU, one thread,
   under adam-atan2 and Adam with constant eps from 1e-30 to 1e-5 (eps = 0 is refused: 0/0);
   plus two controls that must *not* match: NanoDO's real MLP (F = 4D, where mlp.down's
   fan-in 4n makes one LR per layer type off by 2x, as `equiv` warns) and side B at
   the tool's default constants (the unadjusted base LR).

It reports max |loss_A - loss_B| over the training curve for each case and width,
writes results.csv, curves.csv, results.json and equivalence.png here, and prints a
table. About 5 minutes (309 s measured) on one core of a 2-core AMD EPYC, single-threaded torch.

    flock /tmp/scaleadvise-heavy.lock python examples/equivalence/run.py
"""

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scaleadvise.provenance import machine

HERE = Path(__file__).resolve().parent
PAIRS = (("stp", "ntk"), ("mup", "mfp"))
# (label, optimizer, eps, model yaml, widths, how side B is made)
CASES = (
    ("adam-atan2", "adam-atan2", None, "nanodo-ffn1.yaml", (64, 128, 256), "equiv"),
    ("eps=1e-30", "adam", 1e-30, "nanodo-ffn1.yaml", (64, 256), "equiv"),
    ("eps=1e-12", "adam", 1e-12, "nanodo-ffn1.yaml", (64,), "equiv"),
    ("eps=1e-9", "adam", 1e-9, "nanodo-ffn1.yaml", (64, 256), "equiv"),
    ("eps=1e-7", "adam", 1e-7, "nanodo-ffn1.yaml", (64, 256), "equiv"),
    ("eps=1e-5", "adam", 1e-5, "nanodo-ffn1.yaml", (64, 256), "equiv"),
    ("atan2, F=4D", "adam-atan2", None, "nanodo-ffn4.yaml", (64, 256), "equiv"),
    ("atan2, unadjusted", "adam-atan2", None, "nanodo-ffn1.yaml", (64, 256), "default"),
)


def sh(cmd: list[str], env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    print("  $ " + " ".join(cmd), flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr[-2000:]}")
    return res


def prescriptions(work: Path, a: str, b: str, optim: str, model: str, how: str, args) -> tuple[Path, Path, dict]:
    """Side A from `prescribe --json`; side B from `equiv --prescription-out` (or the
    tool's own default B for the unadjusted control). Both at the smallest width:
    the equivalent gammas are width-independent (gamma x b^θ) and train.py re-derives
    every value at each width it trains."""
    common = ["--optim", optim, "--width", "64", "--base-width", str(args.base_width),
              "--base-lr", repr(args.base_lr), "--model", str(HERE / model)]
    tag = f"{a}-{b}-{optim}-{Path(model).stem}-{how}"
    pa, pb = work / f"{tag}-A.json", work / f"{tag}-B.json"
    pa.write_text(sh(["scaleadvise", "prescribe", "--param", a, *common, "--json"]).stdout)
    if how == "default":
        pb.write_text(sh(["scaleadvise", "prescribe", "--param", b, *common, "--json"]).stdout)
        return pa, pb, {}
    out = sh(["scaleadvise", "equiv", "--param", a, "--to-form", b, *common, "--prescription-out", str(pb), "--json"])
    return pa, pb, json.loads(out.stdout)["at_width"]


def train(pres: Path, out: Path, widths, eps, args, corpus: Path) -> dict[int, dict]:
    """The script `emit-train --prescription pres` writes, run at each width; per width the
    loss curve and final sqrt(v) per tensor."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    script = out / "train.py"
    sh(["scaleadvise", "emit-train", "--prescription", str(pres), "-o", str(script)])
    runs = {}
    for w in widths:
        sub = out / f"w{w}"
        cmd = [sys.executable, str(script), "--data", str(corpus), "--width", str(w), "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--lr", repr(args.base_lr), "--log-every", "1",
               "--eval-every", str(args.steps), "--grads-every", str(args.steps), "--align-every", "0",
               "--device", "cpu", "--dtype", "fp32", "--threads", "1", "--out", str(sub)]
        sh(cmd + ([] if eps is None else ["--eps", repr(eps)]), env={**os.environ, "OMP_NUM_THREADS": "1"})
        with open(sub / "metrics.csv") as f:
            loss = [float(r["train_loss"]) for r in csv.DictReader(f)]
        sqrt_v: dict[str, float] = {}
        if (sub / "grads.csv").exists():
            with open(sub / "grads.csv") as f:
                rows = list(csv.DictReader(f))
            last = max((int(r["step"]) for r in rows), default=0)
            sqrt_v = {r["layer"]: float(r["sqrt_v_rms"]) for r in rows if int(r["step"]) == last}
        runs[w] = {"loss": loss, "sqrt_v": sqrt_v}
    return runs


def per_type(sqrt_v: dict[str, float], pres: Path) -> dict[str, float]:
    """Median sqrt(v) RMS per layer type (types from the prescription's tensor list)."""
    import statistics

    types = {t["name"]: t["layer_type"] for t in json.loads(pres.read_text())["tensors"]}
    out: dict[str, list[float]] = {}
    for name, v in sqrt_v.items():
        out.setdefault(types.get(name, "?"), []).append(v)
    return {t: statistics.median(v) for t, v in out.items()}


def compare(la: list[float], lb: list[float]) -> dict:
    n = min(len(la), len(lb))
    bad = next((i + 1 for i in range(n) if not (math.isfinite(la[i]) and math.isfinite(lb[i]))), None)
    good = n if bad is None else bad - 1
    diff = [abs(la[i] - lb[i]) for i in range(good)]
    first = next((i + 1 for i, d in enumerate(diff) if d > 0), None)
    return {"steps": n, "nonfinite_at": bad, "max_abs_diff": max(diff) if diff else math.nan,
            "max_rel_diff": max((d / abs(la[i]) for i, d in enumerate(diff)), default=math.nan),
            "first_step_differing": first, "final_A": la[n - 1], "final_B": lb[n - 1], "diff": diff}


def train_in_process(pres_path: Path, corpus: Path, width: int, dtype: str, args) -> list[float]:
    """The fp32-vs-fp64 check: the emitted script has no float64 mode (--dtype is
    auto|bf16|fp32), so this trains the same NanoDO from the same template modules
    (init, multipliers, LR groups, Adam-atan2, data order, schedule) in one process,
    in either precision, with the loss kept in that precision."""
    import torch
    import torch.nn.functional as F

    from scaleadvise.script.emit import script_prescription
    from scaleadvise.script.template.data import Batches, load_tokens
    from scaleadvise.script.template.nanodo import build_model, model_size, tensor_name
    from scaleadvise.script.template.train import lr_factor
    from scaleadvise.torch.apply import param_groups
    from scaleadvise.torch.optim import AdamAtan2

    torch.set_num_threads(1)
    before = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))  # parameters (and so every product) in this dtype
    try:
        pres = script_prescription(json.loads(pres_path.read_text()), depth_free=False)
        size = model_size(pres, width)
        tokens, _, _ = load_tokens(str(corpus), size["vocab"], size["context"], "auto", 0)
        batches = Batches(tokens, size["context"], args.batch_size, 0, 1, 0, torch.device("cpu"))
        model, values = build_model(pres, size, args.base_lr, 0, "cpu")
        groups = param_groups((p, values[tensor_name(n)]) for n, p in model.named_parameters())
        for g in groups:
            g["peak_lr"] = g["lr"]
        opt = AdamAtan2(groups, lr=0.0, betas=(0.9, 0.98))
        losses, warmup = [], max(1, args.steps // 10)  # train.py's default warmup for short runs
        for step in range(args.steps):
            for g in opt.param_groups:
                g["lr"] = g["peak_lr"] * lr_factor(step, args.steps, warmup)
            x, y = batches.next()
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        return losses
    finally:
        torch.set_default_dtype(before)


def plot(rows: list[dict], curves: dict, path: Path, floor: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    colors = {c[0]: plt.cm.tab10(i) for i, c in enumerate(CASES)}
    for r, (a, b) in enumerate(PAIRS):
        ax = axes[r, 0]
        for label in ("adam-atan2", "eps=1e-5", "atan2, unadjusted"):
            la, lb = curves[(a, label, 256)]
            ax.plot(range(1, len(la) + 1), la, color=colors[label], lw=1.4, label=f"{a}, {label}")
            ax.plot(range(1, len(lb) + 1), lb, color=colors[label], lw=1.4, ls="--", label=f"{b}, {label}")
        ax.set(xlabel="step", ylabel="train loss (bytes, nats)", title=f"{a} (solid) vs {b} (dashed), width 256")
        ax.legend(fontsize=7)
        ax = axes[r, 1]
        for label, *_ in CASES:
            if (a, label, 256) not in curves or label == "eps=0":
                continue
            d = [max(x, floor) for x in compare(*curves[(a, label, 256)])["diff"]]
            ax.semilogy(range(1, len(d) + 1), d, color=colors[label], lw=1.2, label=label)
        ax.set(xlabel="step", ylabel=f"|loss_A - loss_B|  (0 drawn at {floor:g})",
               title=f"{a} vs {b}: difference along training, width 256")
        ax.legend(fontsize=7, ncol=2)
        ax = axes[r, 2]
        for w, marker in ((64, "o"), (256, "s")):
            pts = [(x["eps"], max(x["max_abs_diff"], floor)) for x in rows
                   if x["pair"] == f"{a}/{b}" and x["width"] == w and x["optimizer"] == "adam"
                   and x["eps"] and x["model"] == "nanodo-ffn1" and math.isfinite(x["max_abs_diff"])]
            ax.loglog(*zip(*sorted(pts)), marker=marker, label=f"Adam, constant eps, width {w}")
            atan = next(x for x in rows if x["pair"] == f"{a}/{b}" and x["case"] == "adam-atan2" and x["width"] == w)
            ax.axhline(max(atan["max_abs_diff"], floor), ls=":", color="C2" if w == 64 else "C3",
                       label=f"adam-atan2, width {w}")
        r128 = next(x for x in rows if x["pair"] == f"{a}/{b}" and x["case"] == "adam-atan2" and x["width"] == 128)
        ax.axhline(max(r128["max_abs_diff"], floor), ls="--", color="grey",
                   label="adam-atan2, width 128 (128^-1/2 rounds: fp32 floor)")
        ax.set(xlabel="Adam epsilon", ylabel="max |loss_A - loss_B| over the curve",
               title=f"{a} vs {b}: a constant epsilon breaks the symmetry")
        ax.legend(fontsize=7)
    fig.suptitle("abc-symmetry at finite precision (Everett et al. 2024, §3.2, §4.3, C.5): NanoDO, fp32, CPU")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100, help="training steps per run")
    ap.add_argument("--batch-size", type=int, default=8, help="sequences of 64 bytes per step")
    ap.add_argument("--base-lr", type=float, default=2.0 ** -8, help="base LR of side A at the base width")
    ap.add_argument("--base-width", type=int, default=64, help="base width b of both prescriptions")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", default=str(HERE), help="where results and the plot go")
    args = ap.parse_args()
    t0 = time.time()
    work = Path(args.work or tempfile.mkdtemp(prefix="scaleadvise-equivalence-"))
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from scaleadvise.corpus import build_corpus

    corpus = build_corpus(work / "corpus.txt", 1 << 20)
    print(f"corpus: {corpus['bytes']} bytes from {corpus['files']} stdlib files (Python {corpus['python']})")

    rows, curves, equiv_docs, cache = [], {}, {}, {}
    for a, b in PAIRS:
        for label, optim, eps, model, widths, how in CASES:
            print(f"== {a} vs {b}: {label} (widths {', '.join(map(str, widths))})", flush=True)
            pa, pb, eq = prescriptions(work, a, b, optim, model, how, args)
            if eq:
                equiv_docs[f"{a}->{b} {optim} {Path(model).stem}"] = {k: v for k, v in eq.items() if k != "tensors"}
            runs = {}
            for side, pres in (("A", pa), ("B", pb)):
                key = (pres.read_text(), eps, widths)  # side A of the unadjusted control = the atan2 run
                if key not in cache:
                    cache[key] = train(pres, work / f"run-{a}-{b}-{len(cache)}", widths, eps, args,
                                       Path(corpus["path"]))
                runs[side] = cache[key]
            for w in widths:
                la, lb = runs["A"][w]["loss"], runs["B"][w]["loss"]
                c = compare(la, lb)
                curves[(a, label, w)] = (la, lb)
                va, vb = per_type(runs["A"][w]["sqrt_v"], pa), per_type(runs["B"][w]["sqrt_v"], pb)
                rows.append({"pair": f"{a}/{b}", "case": label, "optimizer": optim, "eps": eps,
                             "model": Path(model).stem, "width": w, "side_B": how,
                             **{k: v for k, v in c.items() if k != "diff"},
                             **{f"sqrt_v_{s}_{t}": v[t] for s, v in (("A", va), ("B", vb)) for t in sorted(v)}})
                print(f"   width {w}: max|dL| = {c['max_abs_diff']:.3g}  first step differing: "
                      f"{c['first_step_differing']}  non-finite at: {c['nonfinite_at']}", flush=True)

    # fp32 vs fp64 at width 128, where 128^-1/2 is irrational: multiplying by it rounds,
    # so the two sides differ by float rounding; in float64 that floor should drop ~1e9x.
    precision = []
    for a, b in PAIRS:
        pa, pb, _ = prescriptions(work, a, b, "adam-atan2", "nanodo-ffn1.yaml", "equiv", args)
        for dtype in ("float32", "float64"):
            la, lb = (train_in_process(p, Path(corpus["path"]), 128, dtype, args) for p in (pa, pb))
            c = compare(la, lb)
            precision.append({"pair": f"{a}/{b}", "width": 128, "dtype": dtype, "optimizer": "adam-atan2",
                              **{k: v for k, v in c.items() if k != "diff"}})
            print(f"== {a} vs {b}, adam-atan2, width 128, {dtype} (template modules, in process): "
                  f"max|dL| = {c['max_abs_diff']:.3g}", flush=True)

    wall = time.time() - t0
    floor = 1e-9
    fields = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
    with open(out / "results.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=fields)
        wr.writeheader()
        wr.writerows(rows)
    with open(out / "curves.csv", "w", newline="") as f:
        f.write("pair,case,width,step,loss_A,loss_B\n")
        for (a, label, w), (la, lb) in curves.items():
            f.writelines(f"{a},{label},{w},{i + 1},{x!r},{y!r}\n" for i, (x, y) in enumerate(zip(la, lb)))
    meta = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "wall_s": round(wall, 1),
            "machine": machine(torch_threads=1), "corpus": corpus, "settings": vars(args) | {"context": 64, "depth": 2,
                                                                               "head_dim": 32, "vocab": 256},
            "equiv": equiv_docs, "results": rows, "precision": precision}
    (out / "results.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    plot(rows, curves, out / "equivalence.png", floor)

    print(f"\n{'pair':9} {'case':18} {'width':>5} {'max|dL|':>10} {'first≠':>6} {'NaN at':>6} "
          f"{'final A':>8} {'final B':>8}  sqrt(v) hidden A/B")
    for r in rows:
        sv = (f"{r.get('sqrt_v_A_hidden', math.nan):.2g}/{r.get('sqrt_v_B_hidden', math.nan):.2g}"
              if "sqrt_v_A_hidden" in r else "")
        print(f"{r['pair']:9} {r['case']:18} {r['width']:>5} {r['max_abs_diff']:>10.3g} "
              f"{str(r['first_step_differing'] or '-'):>6} {str(r['nonfinite_at'] or '-'):>6} "
              f"{r['final_A']:>8.4f} {r['final_B']:>8.4f}  {sv}")
    for r in precision:
        print(f"{r['pair']:9} {'atan2 ' + r['dtype']:18} {r['width']:>5} {r['max_abs_diff']:>10.3g} "
              f"{str(r['first_step_differing'] or '-'):>6} {'-':>6} {r['final_A']:>8.4f} {r['final_B']:>8.4f}")
    print(f"\nwall {wall:.0f} s; wrote results.csv, curves.csv, results.json, equivalence.png in {out}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
