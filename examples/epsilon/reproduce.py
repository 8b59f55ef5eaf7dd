"""What a constant Adam epsilon costs, predicted before it happens (Everett et al. 2024, §4.3, Fig. 7).

Mean-field parameterization (MFP) + Adam on the NanoDO Transformer, byte-level text (the
Python standard library's sources, `scaleadvise.corpus`), all through the tool:

1. `scaleadvise emit-train --param mfp --optim adam --eps EPS` and `python train.py` at
   small widths (16, 32, 64) writing grads.csv: per tensor sqrt(v) and the first-order
   decrease of each logged step with and without eps (issue 10, item 9);
2. yardsticks at the base width 64: an eps on one layer type alone (the others 1e-12), the
   share of that type's first-order decrease it leaves (its grads.csv, through
   `scaleadvise epsilon`) and the loss it costs over eps = 1e-12 everywhere;
3. `scaleadvise epsilon grads_small.csv --eps EPS --yardstick ... --loss-budget X --json`:
   the model-level crossing width with its interval;
4. train widths 16..256 with the constant EPS and with eps = 1e-12 (same seeds, data,
   steps, per-layer LR prescription) and observe where the loss gap reaches X.

The rule, EPS and X are pre-registered in PREREGISTRATION.md (committed before step 4
ran). `--stage predict` stops after step 3 (the design measurement); `--work DIR` keeps
finished runs, so a second call only trains what is missing.

Takes about 10 min on 2 shared CPU cores; --quick (the slow test) about 2 min.
Run under `flock /tmp/scaleadvise-heavy.lock python examples/epsilon/reproduce.py`.
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
BASE_WIDTH = 64  # b: where the base LR was checked and the yardsticks are measured
BASE_LR = 2.0**-4  # best of 2^-9..2^-2 at width 64, 200 steps (README: design choices)
EPS = 1e-5  # the constant under test (PREREGISTRATION.md: chosen from the design measurement)
LOSS_BUDGET = 0.05  # X: the loss cost that defines the crossing (PREREGISTRATION.md)
NEGLIGIBLE_EPS = 1e-12  # reference and yardstick runs: eps <= 1e-4 of every sqrt(v) here
LAYER_TYPES = ("embedding", "hidden", "readout")
CONFIGS = {
    "full": dict(widths=[16, 32, 64, 128, 256], measure=[16, 32, 64], seeds=[0, 1, 2, 3, 4], steps=200, batch=32,
                 eval_batches=16, grads_every=10,
                 yard_eps={"embedding": [3e-4, 1e-3], "hidden": [3e-5, 1e-4], "readout": [3e-5, 1e-4]}),
    "quick": dict(widths=[16, 32, 64, 128], measure=[16, 32, 64], seeds=[0, 1], steps=60, batch=16,
                  eval_batches=8, grads_every=10, yard_eps={"embedding": [1e-3], "hidden": [1e-4], "readout": [1e-4]}),
}
COMMANDS: list[str] = []


def sh(cmd: list) -> str:
    """Run a command as a user would, record it, return stdout; fail loudly."""
    COMMANDS.append(" ".join(str(c) for c in cmd))
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(map(str, cmd))}\n{done.stderr[-3000:]}")
    return done.stdout


def tool() -> list[str]:
    return [sys.executable, "-m", "scaleadvise"]


def emit(path: Path, eps: float) -> Path:
    sh([*tool(), "emit-train", "--param", "mfp", "--optim", "adam", "--width", str(BASE_WIDTH), "--base-width",
        str(BASE_WIDTH), "--base-lr", repr(BASE_LR), *MODEL, "--eps", repr(eps), "-o", str(path)])
    return path


def typed_eps_prescription(path: Path, eps_by_type: dict[str, float]) -> Path:
    """A training script that gives layer type T the eps eps_by_type[T] at the base width, all
    else as `emit(NEGLIGIBLE_EPS)`: the per-layer rule eps_T = base_eps·(n/b)^-e_T with b moved
    to n/2 and e_T = log2(base_eps/eps_T); every gamma_T is multiplied by 2^c_T so each LR stays
    base_lr·gamma_T. Written with `scaleadvise emit-train --prescription FILE`; trained at
    width BASE_WIDTH."""
    doc = json.loads(sh([*tool(), "prescribe", "--param", "mfp", "--optim", "adam", "--width", str(BASE_WIDTH),
                         "--base-width", str(BASE_WIDTH), "--base-lr", repr(BASE_LR), "--model", "nanodo", *MODEL,
                         "--eps", "per-layer", "--base-eps", repr(NEGLIGIBLE_EPS), "--json"]))
    doc["base_width"] = BASE_WIDTH / 2
    for t in LAYER_TYPES:
        doc["constants"][t] *= 2.0 ** doc["layers"][t]["c"]
        doc["layers"][t]["gamma"] = doc["constants"][t]
        doc["layers"][t]["eps_exponent"] = math.log2(NEGLIGIBLE_EPS / eps_by_type.get(t, NEGLIGIBLE_EPS))
    pres = path.with_suffix(".json")
    pres.write_text(json.dumps(doc))
    sh([*tool(), "emit-train", "--prescription", str(pres), "-o", str(path)])
    return path


def train_jobs(jobs: list[tuple[str, list[str]]], cfg: dict, corpus: Path, parallel: int) -> None:
    """Each job is (name, [SCRIPT, --widths W,.., --seeds S, --lr LR, --out DIR, extra...]): one
    `python SCRIPT --width W --seed S --out DIR/w{W}_s{S}` process per width (the emitted
    script trains one run; `scaleadvise sweep` would start a Ray runtime per job, which
    these few runs do not need), `parallel` at a time, one thread each. A run whose
    result.json exists is finished and skipped (--work keeps them); DIR/sweeps.csv collects
    the job's runs in `fit`'s columns once they are all done."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    common = ["--data", str(corpus), "--steps", str(cfg["steps"]), "--batch-size", str(cfg["batch"]),
              "--eval-batches", str(cfg["eval_batches"]), "--eval-every", str(cfg["steps"]),
              "--log-every", str(cfg["steps"]), "--align-every", "0", "--device", "cpu", "--threads", "1"]
    runs = []  # (job name, run dir, command)
    for name, args in jobs:
        script, rest = args[0], list(args[1:])
        widths, seed, out = (_take(rest, f) for f in ("--widths", "--seeds", "--out"))
        for w in widths.split(","):
            runs.append((f"{name} width {w}", Path(out) / f"w{w}_s{seed}", [
                sys.executable, script, "--width", w, "--seed", seed, "--out", str(Path(out) / f"w{w}_s{seed}"),
                *rest, *common]))
    pending = [r for r in runs if not (r[1] / "result.json").exists()]
    running: list = []
    while pending or running:
        while pending and len(running) < parallel:
            name, run, cmd = pending.pop(0)
            run.mkdir(parents=True, exist_ok=True)
            if (run / "checkpoint.pt").exists():  # interrupted earlier: continue it
                cmd = [*cmd, "--resume"]
            COMMANDS.append("OMP_NUM_THREADS=1 " + " ".join(cmd))
            log = open(run / "stdout.log", "w")
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log, time.time()))
        time.sleep(0.5)
        for item in list(running):
            name, proc, log, t0 = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                if proc.returncode not in (0, 1):  # 1: the run diverged (result.json says so)
                    raise SystemExit(f"{name}: train.py exited {proc.returncode}, see {log.name}")
                print(f"  done {name} ({time.time() - t0:.0f} s)", flush=True)
    for name, args in jobs:  # each job's runs as the rows `fit` reads
        out = out_of((name, args))
        rows = [json.loads((d / "result.json").read_text()) for d in sorted(out.glob("w*_s*")) if d.is_dir()]
        with open(out / "sweeps.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["width", "lr", "loss", "step", "seed", "diverged"])
            for r in rows:
                loss = r["eval_loss"] if r["status"] == "done" and r["eval_loss"] is not None else float("nan")
                w.writerow([r["width"], r["lr"], loss, r["steps"], r["seed"], int(r["status"] == "diverged")])


def _take(args: list[str], flag: str) -> str:
    """Remove FLAG VALUE from args and return VALUE."""
    i = args.index(flag)
    value = args[i + 1]
    del args[i:i + 2]
    return value


def out_of(job: tuple[str, list[str]]) -> Path:
    args = job[1]
    return Path(args[args.index("--out") + 1])


def losses_of(jobs: list) -> dict[tuple[int, int], float]:
    out = {}
    for job in jobs:
        with open(out_of(job) / "sweeps.csv", newline="") as f:
            out.update({(int(r["width"]), int(r["seed"])): float(r["loss"]) for r in csv.DictReader(f)})
    return out


def merge_grads(jobs: list, dest: Path) -> Path:
    """Concatenate the runs' grads.csv (each row carries its seed: the run identifier)."""
    rows: list[dict] = []
    for job in jobs:
        for sub in sorted(d for d in out_of(job).glob("w*_s*") if d.is_dir()):
            with open(sub / "grads.csv", newline="") as f:
                rows += list(csv.DictReader(f))
    with open(dest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dest


# --------------------------------------------------------------------------- the steps


def measure(cfg: dict, work: Path, out: Path, parallel: int) -> tuple[Path, list]:
    """Step 1: constant EPS at the small widths, grads.csv with the decrease terms."""
    script = emit(work / "train_constant.py", EPS)
    jobs = [(f"constant eps seed {s}", [str(script), "--widths", ",".join(map(str, cfg["measure"])), "--seeds",
                                        str(s), "--lr", repr(BASE_LR), "--grads-every", str(cfg["grads_every"]),
                                        "--out", str(work / "runs" / f"measure_s{s}")]) for s in cfg["seeds"]]
    train_jobs(jobs, cfg, work / "corpus.txt", parallel)
    return merge_grads(jobs, out / "grads_small.csv"), jobs


def yardsticks(cfg: dict, work: Path, parallel: int) -> tuple[list[str], dict, list]:
    """Step 2: at the base width, an eps on one layer type alone (the others negligible).

    Each run's SHARE (what its eps left the type of its first-order decrease) comes from
    `scaleadvise epsilon` on its grads.csv (model_prediction.measured); its COST is the
    seed-paired loss increase over the reference run (eps 1e-12 everywhere). Returns the
    --yardstick flags, one per type, eps level and seed, and the raw numbers."""
    ref = emit(work / "train_reference.py", NEGLIGIBLE_EPS)

    def job(name: str, out: str, extra: list[str], seed: int) -> tuple[str, list[str]]:
        return (f"{name} seed {seed}", [str(ref), *extra, "--widths", str(BASE_WIDTH), "--seeds", str(seed), "--lr",
                                        repr(BASE_LR), "--out", str(work / "runs" / f"{out}_s{seed}")])

    jobs = {"reference": [job("reference", "ref_b", [], s) for s in cfg["seeds"]]}
    for kind, levels in cfg["yard_eps"].items():
        for e in levels:
            script = typed_eps_prescription(work / f"train_yard_{kind}_{e:g}.py", {kind: e})
            jobs[f"{kind}@{e:g}"] = [(name, [str(script), *args[1:]]) for name, args in
                                    (job(f"eps {e:g} on {kind} only", f"yard_{kind}_{e:g}",
                                         ["--grads-every", str(cfg["grads_every"])], s) for s in cfg["seeds"])]
    train_jobs([j for js in jobs.values() for j in js], cfg, work / "corpus.txt", parallel)
    ref_loss = losses_of(jobs["reference"])
    flags, table = [], {}
    for key, js in jobs.items():
        if key == "reference":
            continue
        kind, e = key.split("@")
        loss = losses_of(js)
        grads = merge_grads(js, work / f"yard_{kind}_{e}.csv")
        doc = json.loads(sh([*tool(), "epsilon", str(grads), "--eps", e, "--param", "mfp", "--base-width",
                             str(BASE_WIDTH), "--json"]))
        share = doc["model_prediction"]["measured"][f"{BASE_WIDTH:g}"]["retained_by_type"][kind]
        costs = [loss[BASE_WIDTH, s] - ref_loss[BASE_WIDTH, s] for s in cfg["seeds"]]
        flags += [f"--yardstick={kind}={c!r}@{share!r}" for c in costs]
        table[key] = {"eps": float(e), "share": share, "costs": costs, "mean_cost": sum(costs) / len(costs)}
    return flags, table, jobs["reference"]


def predict(grads: Path, flags: list[str], widths: list[int], out: Path) -> dict:
    """Step 3: `scaleadvise epsilon` with the yardsticks; the loss cost at every trained width too."""
    base = [*tool(), "epsilon", str(grads), "--eps", repr(EPS), "--param", "mfp", "--optim", "adam",
            "--base-width", str(BASE_WIDTH), "--loss-budget", repr(LOSS_BUDGET), *flags, "--json"]
    report = json.loads(sh([*base, "--target-width", str(max(widths)), "--plot", str(out / "epsilon_fit.png")]))
    (out / "epsilon.json").write_text(json.dumps(report, indent=1))
    curve = {}
    for n in widths:
        m = json.loads(sh([*base, "--target-width", str(n)]))["model_prediction"]["target"]
        curve[n] = {"loss_cost": m["loss_cost"], "loss_cost_ci": m["loss_cost_ci"],
                    "retained_decrease": m["retained_decrease"], "retained_by_type": m["retained_by_type"]}
    return {"report": report, "curve": curve}


def compare(cfg: dict, work: Path, parallel: int, measure_jobs: list, ref_jobs: list) -> dict:
    """Step 4: constant EPS vs eps 1e-12 at every width, seed-paired."""
    const, ref = work / "train_constant.py", work / "train_reference.py"
    rest = [n for n in cfg["widths"] if n not in cfg["measure"]]
    others = [n for n in cfg["widths"] if n != BASE_WIDTH]
    jobs = []
    for s in cfg["seeds"]:
        if rest:
            jobs.append((f"constant seed {s}", [str(const), "--widths", ",".join(map(str, rest)), "--seeds", str(s),
                                                "--lr", repr(BASE_LR), "--out", str(work / "runs" / f"const_s{s}")]))
        jobs.append((f"reference seed {s}", [str(ref), "--widths", ",".join(map(str, others)), "--seeds", str(s),
                                             "--lr", repr(BASE_LR), "--out", str(work / "runs" / f"ref_s{s}")]))
    jobs.sort(key=lambda j: -len(j[1][j[1].index("--widths") + 1]))  # the long ones first
    train_jobs(jobs, cfg, work / "corpus.txt", parallel)
    loss_const = losses_of(measure_jobs + [j for j in jobs if j[0].startswith("constant")])
    loss_ref = losses_of(ref_jobs + [j for j in jobs if j[0].startswith("reference")])
    rows = []
    for n in cfg["widths"]:
        gaps = [loss_const[n, s] - loss_ref[n, s] for s in cfg["seeds"]]
        rows.append({"width": n, "loss constant": sum(loss_const[n, s] for s in cfg["seeds"]) / len(cfg["seeds"]),
                     "loss reference": sum(loss_ref[n, s] for s in cfg["seeds"]) / len(cfg["seeds"]),
                     "gap": sum(gaps) / len(gaps), "gap per seed": gaps})
    n_obs, how = observed_crossing([r["width"] for r in rows], [r["gap"] for r in rows], LOSS_BUDGET)
    return {"per_width": rows, "observed_width": n_obs, "observed_how": how}


def observed_crossing(widths: list[int], gaps: list[float], level: float) -> tuple[float, str]:
    """First width where the mean gap reaches `level`, linear in log2 n from the width before."""
    if gaps[0] >= level:
        return float(widths[0]), "at or below the smallest width"
    for (n0, e0), (n1, e1) in zip(zip(widths, gaps), zip(widths[1:], gaps[1:])):
        if e1 >= level:
            x = math.log2(n0) + (level - e0) / (e1 - e0) * (math.log2(n1) - math.log2(n0))
            return 2.0**x, "interpolated"
    return math.inf, "beyond the largest width"


# --------------------------------------------------------------------------- report


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, curve = result["per_width"], result["predicted_curve"]
    widths = [r["width"] for r in rows]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2))
    ax.plot(widths, [r["gap"] for r in rows], "o-", color="tab:red", label="observed: loss(eps) - loss(eps 1e-12), seed mean")
    for i, s in enumerate(result["config"]["seeds"]):
        ax.plot(widths, [r["gap per seed"][i] for r in rows], ".", color="tab:red", alpha=0.4)
    pred = [curve[str(n)]["loss_cost"] for n in widths]
    lo = [curve[str(n)]["loss_cost_ci"][0] for n in widths]
    hi = [curve[str(n)]["loss_cost_ci"][1] for n in widths]
    ax.plot(widths, pred, "s--", color="tab:blue", label="predicted loss cost (decrease + yardsticks)")
    ax.fill_between(widths, lo, hi, color="tab:blue", alpha=0.15, label="95% interval of the prediction")
    ax.axhline(LOSS_BUDGET, color="0.4", lw=1, ls=":", label=f"budget X = {LOSS_BUDGET:g}")
    m = result["prediction"]
    ax.axvline(m["crossing_width"], color="tab:blue", lw=1.2, label=f"predicted crossing {m['crossing_width']:.0f}")
    if math.isfinite(result["observed_width"]):
        ax.axvline(result["observed_width"], color="tab:red", lw=1.2, ls="-.",
                   label=f"observed crossing {result['observed_width']:.0f}")
    ax.axvspan(min(widths) / 1.1, max(result["config"]["measure"]), color="0.92", zorder=0, label="widths the fit saw")
    ax.set(xlabel="width n (d_model)", ylabel="loss cost of eps (nats/byte)",
           title=f"MFP + Adam, eps = {EPS:g}: predicted vs observed")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    colors = {"embedding": "tab:green", "hidden": "tab:blue", "readout": "tab:orange"}
    for kind, color in colors.items():
        bx.plot(widths, [curve[str(n)]["retained_by_type"].get(kind, float("nan")) for n in widths], "o-", color=color,
                label=f"{kind}: share of its first-order decrease eps leaves")
    bx.plot(widths, [curve[str(n)]["retained_decrease"] for n in widths], "k-", lw=2, label="model")
    bx.set(xlabel="width n", ylabel="retained share (fitted laws)", title="where eps takes the progress", ylim=(0, 1.02))
    bx.set_xscale("log", base=2)
    bx.grid(alpha=0.3)
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced run for the tests")
    ap.add_argument("--stage", choices=("predict", "all"), default="all",
                    help="predict: steps 1-3 only (the design measurement); all: the comparison too")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    ap.add_argument("--work", type=Path, default=None, help="runs and corpus (default: a temporary folder)")
    ap.add_argument("--parallel", type=int, default=2, help="training processes at once (one thread each)")
    ap.add_argument("--eps", type=float, default=None, help="design measurement only: another constant than the "
                                                            "pre-registered EPS")
    args = ap.parse_args()
    if args.eps is not None:
        global EPS
        EPS = args.eps
    cfg = CONFIGS["quick" if args.quick else "full"]
    t0 = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="scaleadvise-eps-"))
    (work / "runs").mkdir(parents=True, exist_ok=True)
    from scaleadvise.corpus import build_corpus

    corpus = build_corpus(work / "corpus.txt", 4 << 20)
    print(f"corpus: {corpus['bytes']:,} bytes of Python {corpus['python']} stdlib; work in {work}", flush=True)
    print("1. constant eps at the small widths (grads.csv with the decrease terms)", flush=True)
    grads, measure_jobs = measure(cfg, work, args.out, args.parallel)
    print("2. yardsticks at the base width", flush=True)
    flags, sticks, ref_jobs = yardsticks(cfg, work, args.parallel)
    print("3. scaleadvise epsilon", flush=True)
    pred = predict(grads, flags, cfg["widths"], args.out)
    m = pred["report"]["model_prediction"]
    print(f"   predicted crossing {m['crossing_width']:.1f} (interval {m['crossing_width_ci']}); "
          f"{m['verdict']['text']}", flush=True)
    result = {
        "what": "loss cost of a constant Adam eps in MFP: predicted (first-order decrease + yardsticks) vs observed",
        "config": {**cfg, "model": MODEL, "base_width": BASE_WIDTH, "base_lr": BASE_LR, "quick": args.quick},
        "eps": EPS, "loss_budget": LOSS_BUDGET, "corpus": corpus, "yardsticks": sticks, "yardstick_flags": flags,
        "prediction": m, "predicted_curve": {str(k): v for k, v in pred["curve"].items()},
        "g_init": {k: L["g_early"] for k, L in pred["report"]["layers"].items()},
        "g_init_ci": {k: L["g_early_ci"] for k, L in pred["report"]["layers"].items()},
        "g_train": {k: L["g_measured"] for k, L in pred["report"]["layers"].items()},
        "g_train_ci": {k: L["g_measured_ci"] for k, L in pred["report"]["layers"].items()},
        "g_theory": pred["report"]["g_theory_by_type"],
        "layer_types": {k: L["layer_type"] for k, L in pred["report"]["layers"].items()},
    }
    if args.stage == "all":
        print("4. the comparison: constant eps vs eps 1e-12 at every width", flush=True)
        obs = compare(cfg, work, args.parallel, measure_jobs, ref_jobs)
        n_pred, n_obs = m["crossing_width"], obs["observed_width"]
        lo, hi = m["crossing_width_ci"] or (None, None)
        result.update(obs)
        result.update({
            "ratio_pred_over_obs": n_pred / n_obs if math.isfinite(n_obs) else None,
            "within_factor_2": bool(math.isfinite(n_obs) and 0.5 <= n_pred / n_obs <= 2),
            "observed_inside_interval": None if lo is None else bool(lo <= n_obs <= hi),
        })
        png = args.out / "reproduce.png"
        if not args.quick and args.out.resolve() == (HERE / "results").resolve():
            png = HERE / "reproduce.png"
        plot(result, png)
        result["plot"] = str(png)
        with open(args.out / "losses.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["width", "loss constant", "loss reference", "gap", "predicted cost",
                                              "predicted cost lo", "predicted cost hi"])
            w.writeheader()
            for r in obs["per_width"]:
                c = pred["curve"][r["width"]]
                w.writerow({**{k: r[k] for k in ("width", "loss constant", "loss reference", "gap")},
                            "predicted cost": c["loss_cost"], "predicted cost lo": c["loss_cost_ci"][0],
                            "predicted cost hi": c["loss_cost_ci"][1]})
    result.update({"machine": machine(), "wall_time_s": time.time() - t0, "commands": COMMANDS})
    name = "results.json" if args.stage == "all" else "design.json"
    (args.out / name).write_text(json.dumps(result, indent=1, default=str))
    print(f"\n{'width':>6} {'predicted cost':>22}" + (f" {'observed gap':>13} {'per seed':>24}" if args.stage == "all" else ""))
    for n in cfg["widths"]:
        c = pred["curve"][n]
        line = f"{n:>6} {c['loss_cost']:8.3f} [{c['loss_cost_ci'][0]:5.3f}, {c['loss_cost_ci'][1]:5.3f}]"
        if args.stage == "all":
            r = next(r for r in result["per_width"] if r["width"] == n)
            line += f" {r['gap']:13.3f}   {' '.join(f'{g:6.3f}' for g in r['gap per seed'])}"
        print(line)
    print(f"\npredicted crossing {m['crossing_width']:.1f} {m['crossing_width_ci']}", end="")
    if args.stage == "all":
        print(f"; observed {result['observed_width']:.1f} ({result['observed_how']}); ratio "
              f"{result['ratio_pred_over_obs']}; within 2x: {result['within_factor_2']}", end="")
    print(f"; wall {result['wall_time_s']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
