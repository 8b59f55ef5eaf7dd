"""Epsilon underflow predicted before it happens (Everett et al. 2024, §4.3, Figure 7, C.5).

Mean-field parameterization (MFP) + Adam on the NanoDO Transformer, byte-level text
(the Python standard library's sources, `scaleadvise.corpus`), all through the tool:

1. `scaleadvise emit-train --param mfp --optim adam --eps EPS` and `python train.py`
   at small widths (16, 32, 64) writing grads.csv (RMS of sqrt(v) per tensor);
2. `scaleadvise epsilon grads.csv --eps EPS --param mfp --json`: per-tensor power laws
   sqrt(v) ~ n^-g and the per-layer base epsilon it recommends;
3. train widths 16..256 with (a) the constant EPS, (b) the recommended per-layer
   epsilon eps_l = base_eps·(n/b)^-g_l (`emit-train --eps per-layer`), (c) Adam-atan2
   (no epsilon), and (d) the per-layer run at half the base LR (a loss yardstick);
   same per-layer LR prescription, base LR, seeds, steps, data;
4. compare the predicted crossing width with the observed one.

Pre-registered comparison (fixed before any step-3 run was looked at):

* Predicted n_pred: Adam's update is lr·m/(sqrt(v) + eps), so with r = eps/sqrt(v) the
  effective LR is cut by sqrt(v)/(sqrt(v)+eps) = 1/(1+r) (§4.3). r = 1 (the tool's 100%
  threshold) halves it, r = 0.1 costs 9% (a loss change lost in the noise of an LR
  optimum), r = 10 cuts it 11×. Tensors cross at different widths, so the model-level
  prediction is the width at which the parameter-weighted geometric mean of the
  effective-LR factors 1/(1+r_t(n)) reaches 1/2, with r_t(n) from the per-tensor laws
  the epsilon command fitted (parameter counts from `scaleadvise prescribe --json`).
* Observed n_obs: the width at which the constant-eps loss exceeds the per-layer-eps
  loss (same optimizer, eps kept at <= 1% of sqrt(v)) by as much as halving the base LR
  costs the per-layer run at that width: excess(n) = [L_const - L_perlayer] -
  [L_perlayer(lr/2) - L_perlayer(lr)], seed-paired means, first sign change, linear
  interpolation in log2 n. The same rule with Adam-atan2 as the reference is reported
  as a second observation.
* Goal: 1/2 <= n_pred / n_obs <= 2.

Takes about 4 min on 2 free CPU cores (measured 214 s; --quick: about 30 s). Run under
`flock /tmp/scaleadvise-heavy.lock python examples/epsilon/reproduce.py` on shared machines.
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scaleadvise.provenance import machine

HERE = Path(__file__).resolve().parent
# A small NanoDO (C.1): 2 blocks, head_dim 16, context 32, bytes. Width = heads × 16.
MODEL = ["--depth", "2", "--head-dim", "16", "--context", "32", "--vocab", "256"]
BASE_WIDTH = 64  # b: where the base LR was checked and per-layer eps is anchored (§4.3)
BASE_LR = 2.0**-4  # best of 2^-9..2^-2 at width 64, 200 steps (README: LR check)
EPS = 3e-5  # constant eps under test: its predicted crossing lands mid-range (README)
CONFIGS = {
    "full": dict(widths=[16, 32, 64, 128, 256], measure=[16, 32, 64], seeds=[0, 1], steps=200, batch=32,
                 eval_batches=16, grads_every=25),
    "quick": dict(widths=[16, 32, 64, 128], measure=[16, 32], seeds=[0], steps=80, batch=16,
                  eval_batches=8, grads_every=20),
}
VARIANTS = ("constant", "per-layer", "adam-atan2", "per-layer lr/2")
COMMANDS: list[str] = []


def sh(cmd: list[str], **kw) -> str:
    """Run a command as a user would, record it, return stdout; fail loudly."""
    COMMANDS.append(" ".join(str(c) for c in cmd))
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(map(str, cmd))}\n{done.stderr[-3000:]}")
    return done.stdout


def tool() -> list[str]:
    return [sys.executable, "-m", "scaleadvise"]


def emit(path: Path, optim: str, eps_args: list[str]) -> Path:
    sh([*tool(), "emit-train", "--param", "mfp", "--optim", optim, "--width", str(BASE_WIDTH),
        "--base-width", str(BASE_WIDTH), "--base-lr", repr(BASE_LR), *MODEL, *eps_args, "-o", str(path)])
    return path


def train_jobs(jobs: list[tuple[str, list[str]]], cfg: dict, corpus: Path, parallel: int) -> None:
    """Run `python train.py` sweeps, `parallel` at a time, one thread each (small
    matrices: two single-threaded runs beat one two-threaded run on 2 cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    common = ["--data", str(corpus), "--steps", str(cfg["steps"]), "--batch-size", str(cfg["batch"]),
              "--eval-batches", str(cfg["eval_batches"]), "--eval-every", str(cfg["steps"]),
              "--log-every", str(cfg["steps"]), "--align-every", "0", "--device", "cpu"]
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < parallel:
            name, args = pending.pop(0)
            cmd = [sys.executable, *args, *common]
            COMMANDS.append("OMP_NUM_THREADS=1 " + " ".join(cmd))
            log = open(Path(args[args.index("--out") + 1]).with_suffix(".log"), "w")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append((name, proc, log, time.time()))
            print(f"  started {name}", flush=True)
        time.sleep(0.5)
        for item in list(running):
            name, proc, log, t0 = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                if proc.returncode not in (0, 1):  # 1: a run diverged, recorded in sweeps.csv
                    raise SystemExit(f"{name}: train.py exited {proc.returncode}, see {log.name}")
                print(f"  done {name} ({time.time() - t0:.0f} s)", flush=True)


def sweep_losses(out: Path) -> dict[tuple[int, int], float]:
    with open(out / "sweeps.csv", newline="") as f:
        return {(int(r["width"]), int(r["seed"])): float(r["loss"]) for r in csv.DictReader(f)}


def merge_grads(runs: list[Path], dest: Path) -> Path:
    """Concatenate each run's grads.csv (docs/CONTRACTS.md columns) adding its seed, a replicate."""
    rows = []
    for run in runs:
        for sub in sorted(run.glob("w*_s*")):
            seed = sub.name.rsplit("_s", 1)[1]
            with open(sub / "grads.csv", newline="") as f:
                rows += [{**r, "seed": seed} for r in csv.DictReader(f)]
    with open(dest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["width", "layer", "step", "seed", "grad_rms", "sqrt_v_rms"])
        w.writeheader()
        w.writerows(rows)
    return dest


# --------------------------------------------------------------------------- prediction


def tensor_counts() -> dict[str, tuple[float, float]]:
    """Per tensor (count at BASE_WIDTH, exponent k): count(n) = count_b·(n/b)^k, from two
    `prescribe --json` documents (k = 2 for D×D matrices, 1 for vectors and tables)."""
    docs = {}
    for n in (BASE_WIDTH, 2 * BASE_WIDTH):
        out = sh([*tool(), "prescribe", "--param", "mfp", "--optim", "adam", "--width", str(n),
                  "--base-width", str(BASE_WIDTH), "--model", "nanodo", *MODEL, "--json"])
        docs[n] = {t["name"]: math.prod(t["shape"]) for t in json.loads(out)["tensors"]}
    return {k: (c, math.log2(docs[2 * BASE_WIDTH][k] / c)) for k, c in docs[BASE_WIDTH].items()}


def laws(report: dict) -> dict:
    """The per-tensor sqrt(v) laws the epsilon command used, rebuilt from its JSON."""
    from scaleadvise.analysis.epsilon import GradientLaw

    t = report["target_width"]
    return {k: GradientLaw(g=L["g_used"], log_c=math.log(L["target"]["sqrt_v"]) + L["g_used"] * math.log(t))
            for k, L in report["layers"].items()}


def mean_log_lr_factor(fits: dict, counts: dict, eps: float, n: float) -> float:
    """Parameter-weighted mean of ln(1 + eps/sqrt(v)) = -ln(effective LR factor) (§4.3)."""
    num = den = 0.0
    for k, law in fits.items():
        c0, kk = counts[k]
        w = c0 * (n / BASE_WIDTH) ** kk
        num += w * math.log1p(eps / law.at(n))
        den += w
    return num / den


def predicted_width(fits: dict, counts: dict, eps: float, factor: float = 0.5) -> float:
    """Width where the geometric-mean effective LR factor reaches `factor` (bisection in
    log n; the mean ratio grows with n because every fitted g > 0)."""
    target = -math.log(factor)
    lo, hi = 0.0, math.log(1e7)
    if mean_log_lr_factor(fits, counts, eps, math.exp(hi)) < target:
        return math.inf
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_log_lr_factor(fits, counts, eps, math.exp(mid)) < target else (lo, mid)
    return math.exp((lo + hi) / 2)


# --------------------------------------------------------------------------- observation


def crossing(widths: list[int], excess: list[float]) -> tuple[float, str]:
    """First sign change of excess(n) from < 0 to >= 0, interpolated linearly in log2 n."""
    if excess[0] >= 0:
        return float(widths[0]), "at or below the smallest width"
    for (n0, e0), (n1, e1) in zip(zip(widths, excess), zip(widths[1:], excess[1:])):
        if e1 >= 0:
            x = math.log2(n0) + (0 - e0) / (e1 - e0) * (math.log2(n1) - math.log2(n0))
            return 2.0**x, "interpolated"
    return math.inf, "beyond the largest width"


def observe(losses: dict, widths: list[int], seeds: list[int]) -> dict:
    """Seed-paired loss gaps per width and the two observed crossing widths."""
    def gap(a: str, b: str, n: int) -> list[float]:
        return [losses[a][n, s] - losses[b][n, s] for s in seeds]

    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    rows = []
    for n in widths:
        rows.append({"width": n, **{f"loss {v}": mean([losses[v][n, s] for s in seeds]) for v in VARIANTS},
                     "gap vs per-layer": mean(gap("constant", "per-layer", n)),
                     "gap vs atan2": mean(gap("constant", "adam-atan2", n)),
                     "cost of lr/2": mean(gap("per-layer lr/2", "per-layer", n)),
                     "seed spread per-layer": max(losses["per-layer"][n, s] for s in seeds)
                     - min(losses["per-layer"][n, s] for s in seeds)})
    obs = {}
    for ref in ("per-layer", "atan2"):
        excess = [r[f"gap vs {ref}"] - r["cost of lr/2"] for r in rows]
        n_obs, how = crossing(widths, excess)
        obs[ref] = {"width": n_obs, "how": how, "excess": excess}
    return {"per_width": rows, "observed": obs}


def sqrt_v_by_width(grads: Path) -> dict[str, dict[int, float]]:
    """Geometric mean of sqrt_v_rms over steps and seeds, per tensor and width."""
    acc: dict[str, dict[int, list[float]]] = {}
    with open(grads, newline="") as f:
        for r in csv.DictReader(f):
            acc.setdefault(r["layer"], {}).setdefault(int(r["width"]), []).append(math.log(float(r["sqrt_v_rms"])))
    return {k: {n: math.exp(sum(v) / len(v)) for n, v in d.items()} for k, d in acc.items()}


def init_exponents(grads: Path, work: Path) -> dict[str, float]:
    """Mean fitted g per layer type from the step-1 rows alone (the init gradients Table 1
    describes), through `scaleadvise epsilon --json` on a step-1 copy of grads.csv."""
    step1 = work / "grads_step1.csv"
    with open(grads, newline="") as f, open(step1, "w", newline="") as g:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) == 1]
        w = csv.DictWriter(g, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    report = json.loads(sh([*tool(), "epsilon", str(step1), "--eps", repr(EPS), "--param", "mfp", "--json"]))
    by_type: dict[str, list[float]] = {}
    for L in report["layers"].values():
        by_type.setdefault(L["layer_type"], []).append(L["g_measured"])
    return {k: sum(v) / len(v) for k, v in by_type.items()}


def plot(result: dict, fits: dict, counts: dict, measured: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg, eps, rows = result["config"], result["eps"], result["per_width"]
    widths = [r["width"] for r in rows]
    n_pred, n_obs = result["predicted_width"], result["observed_width"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2))
    styles = {"constant": ("tab:red", "o-", f"Adam, constant eps = {eps:.0e}"),
              "per-layer": ("tab:blue", "s-", f"Adam, per-layer eps (base {result['base_eps']:.0e} at n={BASE_WIDTH})"),
              "adam-atan2": ("tab:green", "^-", "Adam-atan2 (no eps)"),
              "per-layer lr/2": ("0.6", "s--", "per-layer eps, base LR / 2 (yardstick)")}
    for v, (color, fmt, label) in styles.items():
        ax.plot(widths, [r[f"loss {v}"] for r in rows], fmt, color=color, label=label, ms=5)
        for s in cfg["seeds"]:
            ax.plot(widths, [result["losses"][v][f"{n},{s}"] for n in widths], ".", color=color, alpha=0.4)
    ax.axvline(n_pred, color="crimson", ls="--", lw=1.2, label=f"predicted crossing {n_pred:.0f}")
    if math.isfinite(n_obs):
        ax.axvline(n_obs, color="black", ls=":", lw=1.2, label=f"observed crossing {n_obs:.0f}")
    ax.axvspan(min(widths) / 1.2, max(cfg["measure"]), color="0.9", zorder=0, label="widths measured for the fit")
    ax.set(xscale="log", xlabel="width n (d_model)", ylabel=f"eval loss after {cfg['steps']} steps (nats/byte)",
           title="MFP + Adam: loss vs width (Figure 7 style)")
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)

    grid = [2.0 ** (x / 8) for x in range(8 * 3, 8 * 10 + 1)]
    colors = {"embedding": "tab:green", "hidden": "tab:blue", "readout": "tab:orange"}
    kinds = result["layer_types"]
    for k, law in fits.items():
        bx.plot(grid, [eps / law.at(n) for n in grid], color=colors[kinds[k]], lw=0.7, alpha=0.6)
        pts = sorted(measured.get(k, {}).items())
        bx.plot([n for n, _ in pts], [eps / s for _, s in pts], "o", color=colors[kinds[k]], ms=3, alpha=0.7)
    for kind, color in colors.items():
        bx.plot([], [], color=color, label=f"{kind} tensors: fit (line), measured (circles)")
    r_eff = [math.expm1(mean_log_lr_factor(fits, counts, eps, n)) for n in grid]
    bx.plot(grid, r_eff, "k-", lw=2.2, label="parameter-weighted: exp(mean ln(1+r)) - 1")
    bx.axhline(1.0, color="crimson", ls="--", lw=1, label="eps = sqrt(v): effective LR halved")
    bx.axvline(n_pred, color="crimson", ls="--", lw=1.2)
    bx.axvspan(min(cfg["measure"]) / 1.2, max(cfg["measure"]), color="0.9", zorder=0)
    bx.set(xscale="log", yscale="log", xlabel="width n", ylabel="eps / RMS sqrt(v)",
           title=f"eps = {eps:.0e} against sqrt(v): fits from `scaleadvise epsilon`")
    bx.set_xscale("log", base=2)
    bx.legend(fontsize=7, loc="upper left")
    bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced run for the tests (about 2 min)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    ap.add_argument("--work", type=Path, default=None, help="runs and corpus (default: a temporary folder)")
    ap.add_argument("--plot", type=Path, default=None, help="PNG (default: examples/epsilon/reproduce.png, "
                                                            "or OUT/reproduce.png with --quick or --out)")
    ap.add_argument("--parallel", type=int, default=2, help="training processes at once (one thread each)")
    args = ap.parse_args()
    cfg = CONFIGS["quick" if args.quick else "full"]
    t0 = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="scaleadvise-eps-"))
    work.mkdir(parents=True, exist_ok=True)
    default_out = args.out.resolve() == (HERE / "results").resolve()
    png = args.plot or (HERE / "reproduce.png" if default_out and not args.quick else args.out / "reproduce.png")
    from scaleadvise.corpus import build_corpus

    corpus = build_corpus(work / "corpus.txt", 4 << 20)
    print(f"corpus: {corpus['bytes']:,} bytes of Python {corpus['python']} stdlib; work in {work}", flush=True)

    # 1. measure sqrt(v) at small widths with the constant eps a user would have
    const = emit(work / "train_constant.py", "adam", ["--eps", repr(EPS)])
    rest = [n for n in cfg["widths"] if n not in cfg["measure"]]
    ws = lambda ns: ",".join(map(str, ns))  # noqa: E731
    runs = work / "runs"
    runs.mkdir(exist_ok=True)

    def job(variant: str, script: Path, seed: int, widths: list[int], extra: list[str] = ()) -> tuple[str, list[str]]:
        out = runs / f"{variant.replace(' ', '_').replace('/', '')}_w{'_'.join(map(str, widths))}_s{seed}"
        return f"{variant} seed {seed}", [str(script), "--widths", ws(widths), "--seeds", str(seed),
                                          "--lr", repr(BASE_LR), "--out", str(out), *extra]

    grads_flag = ["--grads-every", str(cfg["grads_every"])]
    print("1. constant eps at the small widths (grads.csv)", flush=True)
    measure_jobs = [job("constant", const, s, cfg["measure"], grads_flag) for s in cfg["seeds"]]
    train_jobs(measure_jobs, cfg, work / "corpus.txt", args.parallel)
    grads = merge_grads([Path(j[1][j[1].index("--out") + 1]) for j in measure_jobs], args.out / "grads_small.csv")

    # 2. predict with the tool
    print("2. scaleadvise epsilon", flush=True)
    report = json.loads(sh([*tool(), "epsilon", str(grads), "--eps", repr(EPS), "--param", "mfp", "--optim", "adam",
                            "--base-width", str(BASE_WIDTH), "--target-width", str(max(cfg["widths"])),
                            "--min-eps", repr(EPS), "--json", "--plot", str(args.out / "epsilon_fit.png")]))
    (args.out / "epsilon.json").write_text(json.dumps(report, indent=1))
    fits, counts = laws(report), tensor_counts()
    n_pred = predicted_width(fits, counts, EPS)
    base_eps = report["recommendation"]["base_eps"]
    print(f"   predicted crossing width {n_pred:.1f}; recommended per-layer base eps {base_eps:.0e}", flush=True)

    # 3. train the width range: constant eps, per-layer eps, Adam-atan2, and the LR/2 yardstick
    per_layer = emit(work / "train_per_layer.py", "adam", ["--eps", "per-layer", "--base-eps", repr(base_eps)])
    atan2 = emit(work / "train_atan2.py", "adam-atan2", [])
    print("3. training the width range", flush=True)
    jobs = []
    for s in cfg["seeds"]:
        jobs += [job("per-layer", per_layer, s, cfg["widths"], grads_flag), job("adam-atan2", atan2, s, cfg["widths"]),
                 job("per-layer lr/2", per_layer, s, cfg["widths"], ["--lr", repr(BASE_LR / 2)])]
        if rest:
            jobs.append(job("constant", const, s, rest))
    train_jobs(jobs, cfg, work / "corpus.txt", args.parallel)

    # 4. observe
    losses: dict[str, dict] = {v: {} for v in VARIANTS}
    for name, a in measure_jobs + jobs:
        variant = name.rsplit(" seed", 1)[0]
        losses[variant].update(sweep_losses(Path(a[a.index("--out") + 1])))
    obs = observe(losses, cfg["widths"], cfg["seeds"])
    check = merge_grads([Path(a[a.index("--out") + 1]) for n, a in jobs if n.startswith("per-layer seed")],
                        args.out / "grads_per_layer_all_widths.csv")
    measured = sqrt_v_by_width(grads)
    for k, d in sqrt_v_by_width(check).items():  # out of sample: widths beyond the fit
        measured.setdefault(k, {}).update({n: v for n, v in d.items() if n not in cfg["measure"]})
    top = max(cfg["widths"])
    fit_err = sorted(measured[k][top] / fits[k].at(top) for k in fits)
    n_obs = obs["observed"]["per-layer"]["width"]
    result = {
        "what": "epsilon underflow in MFP + Adam: predicted vs observed crossing width (paper §4.3, Fig. 7)",
        "config": {**cfg, "model": MODEL, "base_width": BASE_WIDTH, "base_lr": BASE_LR, "quick": args.quick},
        "eps": EPS, "base_eps": base_eps, "corpus": corpus,
        "predicted_width": n_pred, "observed_width": n_obs, "observed_how": obs["observed"]["per-layer"]["how"],
        "observed_width_vs_atan2": obs["observed"]["atan2"]["width"],
        "ratio_pred_over_obs": n_pred / n_obs if math.isfinite(n_obs) else None,
        "within_factor_2": bool(math.isfinite(n_obs) and 0.5 <= n_pred / n_obs <= 2),
        "earliest_tensor_crossing_100pct": report["earliest_underflow_width"]["1"],
        "predicted_lr_factor": {n: math.exp(-mean_log_lr_factor(fits, counts, EPS, n)) for n in cfg["widths"]},
        "g_measured": {k: L["g_measured"] for k, L in report["layers"].items()},
        "g_theory": report["g_theory_by_type"], "g_at_init_by_type": init_exponents(grads, work),
        "layer_types": {k: L["layer_type"] for k, L in report["layers"].items()},
        "sqrt_v_measured_over_fit_at_largest_width": {"median": fit_err[len(fit_err) // 2], "min": fit_err[0],
                                                       "max": fit_err[-1]},
        "per_width": obs["per_width"], "excess": {k: v["excess"] for k, v in obs["observed"].items()},
        "losses": {v: {f"{n},{s}": x for (n, s), x in d.items()} for v, d in losses.items()},
        "recommendation": report["recommendation"],
        "machine": machine(), "wall_time_s": time.time() - t0, "commands": COMMANDS,
    }
    plot(result, fits, counts, measured, png)
    result["plot"] = str(png)
    (args.out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    with open(args.out / "losses.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(obs["per_width"][0]))
        w.writeheader()
        w.writerows(obs["per_width"])
    print(f"\n{'width':>6} {'const':>7} {'perlay':>7} {'atan2':>7} {'lr/2':>7} {'gap':>7} {'lr/2 cost':>9}"
          f" {'LR× pred':>8}")
    for r in obs["per_width"]:
        print(f"{r['width']:>6} {r['loss constant']:7.3f} {r['loss per-layer']:7.3f} {r['loss adam-atan2']:7.3f} "
              f"{r['loss per-layer lr/2']:7.3f} {r['gap vs per-layer']:7.3f} {r['cost of lr/2']:9.3f} "
              f"{result['predicted_lr_factor'][r['width']]:8.2f}")
    ratio = result["ratio_pred_over_obs"]
    print(f"\npredicted crossing {n_pred:.0f}, observed {n_obs:.0f} ({result['observed_how']}; vs atan2: "
          f"{result['observed_width_vs_atan2']:.0f}); ratio {ratio if ratio is None else round(ratio, 2)}; "
          f"within 2x: {result['within_factor_2']}; wall {result['wall_time_s']:.0f} s; wrote {args.out}, {png}")


if __name__ == "__main__":
    main()
