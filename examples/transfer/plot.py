"""The transfer figure: per setting, eval loss vs base LR at each width (Figure 4's top row),
and the optimal base LR vs width with the fitted power law beside the paper's exponent.

    python examples/transfer/plot.py examples/transfer/results/cpu    # redraw from sweeps.csv + summary.json
"""

import csv
import json
import math
import os
from pathlib import Path

LABELS = {"sp-global": "SP + Adam, global LR", "sp-per-layer": "SP + Adam, per-layer (full align.)",
          "mup-per-layer": "muP + Adam, per-layer (full align.)"}
SETTING_OF = {"sp-global": ("stp", "global"), "sp-per-layer": ("stp", "per-layer-full"),
              "mup-per-layer": ("mup", "per-layer-full")}


def _curves(rows: list[dict], param: str, setting: str) -> dict[int, list[tuple[float, float]]]:
    """width -> [(lr, mean loss over seeds)], NaN (diverged) left out."""
    acc: dict[tuple[int, float], list[float]] = {}
    for r in rows:
        if r["param"] == param and r["setting"] == setting:
            loss = float(r["loss"])
            if math.isfinite(loss):
                acc.setdefault((int(r["width"]), float(r["lr"])), []).append(loss)
    out: dict[int, list[tuple[float, float]]] = {}
    for (w, lr), v in sorted(acc.items()):
        out.setdefault(w, []).append((lr, sum(v) / len(v)))
    return out


def plot_transfer(rows: list[dict], summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in LABELS if n in summary["settings"]]
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4.2 * (len(names) + 1), 4.0))
    cmap = plt.get_cmap("viridis")
    widths = sorted({int(r["width"]) for r in rows})
    color = {w: cmap(i / max(len(widths) - 1, 1)) for i, w in enumerate(widths)}
    for ax, name in zip(axes, names):
        curves = _curves(rows, *SETTING_OF[name])
        best = min((l for c in curves.values() for _, l in c), default=1.0)
        for w, pts in curves.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, color=color[w], label=f"width {w}")
            lr, loss = min(pts, key=lambda p: p[1])
            ax.plot([lr], [loss], "*", ms=11, color=color[w], mec="k", mew=0.5)
        ax.set_xscale("log", base=2)
        ax.set_ylim(best - 0.05, best + 1.0)
        ax.set_xlabel("base learning rate (at the base width)")
        ax.set_ylabel("held-out loss (nats/byte)")
        ax.set_title(LABELS[name], fontsize=10)
        ax.legend(fontsize=7)
    ax = axes[-1]
    for i, name in enumerate(names):
        s = summary["settings"][name]
        opt = [(o["width"], o["lr_refined"]) for o in s["optima"] if o.get("lr_refined")]
        col = f"C{i}"
        ax.plot([w for w, _ in opt], [lr for _, lr in opt], "o", color=col)
        k, ci = s["lr_exponent"], s["lr_exponent_ci"]
        if k is not None and opt:
            # The fitted line through the optima's geometric mean (least squares passes through it).
            lw = sum(math.log2(w) for w, _ in opt) / len(opt)
            ly = sum(math.log2(lr) for _, lr in opt) / len(opt)
            xs = [min(w for w, _ in opt), max(w for w, _ in opt)]
            ci_text = "" if ci is None or None in ci else f" [{ci[0]:+.2f}, {ci[1]:+.2f}]"
            ax.plot(xs, [2.0 ** (ly + k * (math.log2(x) - lw)) for x in xs], "-", color=col,
                    label=f"{name}: k={k:+.2f}{ci_text} (paper {s['paper']:+.2f})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("width n")
    ax.set_ylabel("optimal base LR (parabola vertex)")
    ax.set_title("optimal LR vs width: lr* ∝ n^k, 95% interval", fontsize=10)
    ax.legend(fontsize=7)
    cfg = summary["config"]
    fig.suptitle(f"NanoDO on stdlib bytes, depth {cfg['depth']}, head dim {cfg['head_dim']}, "
                 f"{cfg['steps']} steps, base width {cfg['widths'][0]} ({summary['scale']} scale)", fontsize=11)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


if __name__ == "__main__":
    import sys

    folder = Path(sys.argv[1])
    with open(folder / "sweeps.csv") as f:
        table = list(csv.DictReader(f))
    plot_transfer(table, json.loads((folder / "summary.json").read_text()), folder / "transfer.png")
    print(f"wrote {folder / 'transfer.png'}")
