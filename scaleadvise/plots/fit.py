"""The `fit --plot` figure, laid out like the paper's Figure 4.

One column per sweep group. Top: final loss against learning rate, one curve
per width coloured by width, the optimum starred. Bottom: the optimal LR (and
the largest stable LR, C.1) against width on log-log axes, the fitted power
law with its interval, and the prediction at the target width.
"""

from pathlib import Path

import numpy as np

from scaleadvise.analysis.fit_optima import Grid
from scaleadvise.analysis.powerlaw import fit_power_law
from scaleadvise.plots import check_plot_path, pyplot, save_figure


def plot_fit(doc: dict, grids: list[Grid], out: str | Path, bands: list | None = None) -> None:
    """Draw every group of a ``fit`` result and write the figure atomically to ``out``.

    ``bands`` (``FitResult.bands``) give the interval of the fitted law at any width; without
    one a group's band is the t-interval of the log-log line."""
    plt = pyplot()
    out = check_plot_path(out)
    groups = doc["groups"]
    fig, axes = plt.subplots(2, len(groups), figsize=(4.6 * len(groups) + 0.8, 8.2), squeeze=False,
                             constrained_layout=True)
    all_widths = np.unique(np.concatenate([g.widths for g in grids]))
    norm = plt.Normalize(np.log2(all_widths.min()), np.log2(max(all_widths.max(), all_widths.min() * 2)))
    cmap = plt.get_cmap("viridis")
    bands = bands or [None] * len(groups)
    for col, (res, grid, band) in enumerate(zip(groups, grids, bands)):
        _sweep_panel(axes[0, col], res, grid, cmap, norm)
        _law_panel(axes[1, col], res, doc.get("target_width"), band, doc.get("scale_by", "width"))
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(sm, ax=axes[0, :].tolist(), pad=0.01, fraction=0.04)
    ticks = np.log2(all_widths)
    bar.set_ticks(ticks if ticks.size <= 12 else ticks[:: int(np.ceil(ticks.size / 12))])
    bar.set_ticklabels([f"{2 ** t:g}" for t in bar.get_ticks()])
    bar.set_label(doc.get("scale_by", "width"))
    save_figure(fig, out)


def _sweep_panel(ax, res: dict, grid: Grid, cmap, norm) -> None:
    """Loss against LR per width; diverged/unstable points are left off, as in the paper's plots."""
    lows = []
    for i, rec in enumerate(res["optima"]):
        if rec.get("lr") is None:
            continue
        ok = np.isfinite(grid.loss[i]) & (grid.lrs <= rec["max_stable_lr"])
        color = cmap(norm(np.log2(grid.widths[i])))
        ax.plot(grid.lrs[ok], grid.loss[i, ok], "-o", ms=2.5, lw=1.2, color=color)
        ax.plot([rec["lr_refined"]], [rec["loss_refined"]], "*", ms=11, color=color, mec="black", mew=0.6, zorder=5)
        lows.append((rec["loss"], np.nanmax(grid.loss[i, ok])))
    ax.set_xscale("log", base=2)
    if lows:
        # Every width's minimum in view, plus a margin above the highest; points far up
        # the walls of the sweep would otherwise flatten the minima into one line.
        minima = np.array([a for a, _ in lows])
        top = float(np.max([b for _, b in lows]))
        span = minima.max() - minima.min()
        hi = min(top, minima.max() + max(0.6 * span, 0.06 * abs(minima.max())))
        lo = minima.min() - 0.04 * (hi - minima.min())
        ax.set_ylim(lo, hi)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final loss")
    ax.set_title(res["label"], fontsize=10)
    ax.grid(alpha=0.3, which="both")


def _law_panel(ax, res: dict, target_width, band=None, axis: str = "width") -> None:
    """lr* and max stable LR against width, log-log, with fitted power laws (Figure 4, bottom row)."""
    recs = [r for r in res["optima"] if r.get("lr") is not None]
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel(axis)
    var = "L" if axis == "depth" else "n"
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3, which="both")
    if not recs:
        return
    w = np.array([r["width"] for r in recs], float)
    refined = res["optimum_method"] == "refined"
    lr = np.array([r["lr_refined"] if refined else r["lr"] for r in recs])
    ci = np.array([r["lr_refined_ci"] if refined and r["lr_refined_ci"] else [v, v] for r, v in zip(recs, lr)], float)
    ax.errorbar(w, lr, yerr=[lr - ci[:, 0], ci[:, 1] - lr], fmt="o", color="C0", ms=5, capsize=2,
                label="optimal LR")
    ms = np.array([r["max_stable_lr"] for r in recs])
    censored = np.array([r["max_stable_censored"] for r in recs])
    ax.plot(w[~censored], ms[~censored], "^", color="C3", ms=5, label="max stable LR")
    if censored.any():
        ax.plot(w[censored], ms[censored], "^", color="C3", mfc="none", ms=5, label="max stable (lower bound)")
    x_hi = max(w.max(), target_width or 0)
    xs = 2.0 ** np.linspace(np.log2(w.min()), np.log2(x_hi), 60)
    k = res["lr_exponent"]
    if k is not None:
        fit = fit_power_law(w, lr)
        c = res["lr_constant"]
        ci = res["lr_exponent_ci"]
        label = f"lr* ∝ {var}^{k:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        ax.plot(xs, c * xs**k, "-", color="C0", lw=1.5, label=label)
        if band is not None:
            lohi = band(xs)
            ax.fill_between(xs, lohi[:, 0], lohi[:, 1], color="C0", alpha=0.15, lw=0)
        elif fit is not None and fit.dof >= 1:
            lohi = np.array([fit.predict_interval(x) for x in xs])
            ax.fill_between(xs, lohi[:, 0], lohi[:, 1], color="C0", alpha=0.15, lw=0)
    if res.get("max_stable_lr_exponent") is not None:
        km, cm = res["max_stable_lr_exponent"], res["max_stable_lr_constant"]
        ax.plot(xs, cm * xs**km, "--", color="C3", lw=1.2, label=f"max stable ∝ {var}^{km:.2f}")
    if target_width and res.get("predicted_lr") is not None:
        p, pci = res["predicted_lr"], res["predicted_lr_ci"] or [res["predicted_lr"]] * 2
        ax.errorbar([target_width], [p], yerr=[[p - pci[0]], [pci[1] - p]], fmt="D", color="black", ms=6,
                    capsize=3, label=f"at {target_width:g}: {p:.3g}")
    verdict = {True: "transfers", False: "does not transfer", None: "inconclusive"}[res["transfer"]]
    ax.set_title(f"k = {k:.2f}: {verdict}" if k is not None else "no exponent", fontsize=10)
    ax.legend(fontsize=7, loc="best", framealpha=0.85)
