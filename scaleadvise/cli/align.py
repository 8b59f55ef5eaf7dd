"""`scaleadvise align`: measured log alignment ratios (Definition 3.1) and the LR exponents they imply."""

import re
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from scaleadvise.cli.app import app
from scaleadvise.cli.common import (
    ALIGN_HELP, OPTIM_HELP, PARAM_HELP, LayerColOpt, power, StepColOpt, WidthColOpt,
)
from scaleadvise.plots import check_plot_path, pyplot, save_figure
from scaleadvise.cli.render import console, print_json

EPILOG = """\b
Examples:
  scaleadvise align runs/d1024/alignment.csv
  scaleadvise align alignment.csv --param mup --optim adam --plot align.png
  scaleadvise align alignment.csv --param stp --optim adafactor --json

\b
alignment.csv columns: width, layer (tensor name or layer type), step,
log_alignment (A = log_fan-in ||Wz|| / (||W|| ||z||), RMS norms; paper Def. 3.1).
The theory is solved with alpha = u = measured A on hidden and readout layers
(omega kept at 1/2; §3.3.4: only max(alpha, u) enters at the maximal LRs).
"""


@app.command(epilog=EPILOG)
def align(
    table: Path = typer.Argument(..., help="Alignment table (CSV/TSV/JSONL/Parquet), e.g. alignment.csv from emit-train."),
    param: str = typer.Option("stp", "--param", help=PARAM_HELP + " The run's parameterization, for the LR exponents."),
    optim: str = typer.Option("adam", "--optim", help=OPTIM_HELP),
    alignment: str = typer.Option("full", "--alignment", help=ALIGN_HELP + " Used for layer types not measured, and for omega."),
    tolerance: float = typer.Option(0.1, "--tolerance", help="A within this of 1 supports full, of 0.5 supports none alignment."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG like the paper's Figure 2: A vs step, panels per layer type."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    width_col: WidthColOpt = None,
    layer_col: LayerColOpt = None,
    step_col: StepColOpt = None,
    log_alignment_col: Optional[str] = typer.Option(None, "--log-alignment-col", help="Column holding A."),
) -> None:
    """Summarize log alignment ratios per layer and give the LR exponents they imply.

    Per layer type and layer: start, peak, mean over training and final value of A
    (§3.4, §4.1), which alignment assumption it supports (full ≈ 1, none ≈ 0.5,
    intermediate), and the maximal stable LR exponents the theory gives at the
    measured mean and peak, beside Table 1's full- and no-alignment answers.
    """
    from scaleadvise.analysis import align as A
    from scaleadvise.errors import UserError
    from scaleadvise.core.parameterizations import get_parameterization
    from scaleadvise.core.alignment import parse_alignment
    from scaleadvise.core.optimizers import optimizer_family

    if not 0 < tolerance < 0.25:
        raise UserError(f"--tolerance: must be in (0, 0.25) so that full and none do not overlap, got {tolerance:g}")
    param = get_parameterization(param).name
    optimizer_family(optim)
    fallback = parse_alignment(alignment)
    if plot is not None:
        check_plot_path(plot)
    overrides = {"width": width_col, "layer": layer_col, "step": step_col, "log_alignment": log_alignment_col}
    trajectories = A.load_alignment(str(table), overrides)
    report = A.analyze(trajectories, param, optim, fallback, tolerance)
    report["file"] = str(table)
    if plot is not None:
        _plot(trajectories, plot)
        report["plot"] = str(plot)
    if json_out:
        print_json(report)
    else:
        _render(report)


def _render(report: dict) -> None:
    t = Table(title="Log alignment ratio A per layer (Definition 3.1)", padding=(0, 1))
    t.add_column("type")
    t.add_column("layer", overflow="fold")
    for col in ("width", "start", "peak (step)", "mean", "final"):
        t.add_column(col, justify="right")
    t.add_column("supports")
    for kind, s in report["layer_types"].items():
        t.add_row(f"[bold]{kind}[/bold]", f"[bold]all {s['n_layers']}[/bold]", ",".join(f"{w:g}" for w in s["widths"]),
                  f"{s['start']:.3f}", f"{s['peak']:.3f} ({s['peak_step']:g})", f"{s['mean']:.3f}", f"{s['final']:.3f}",
                  f"[bold]{s['supports']}[/bold]" + (f" (peak: {s['peak_supports']})" if s["peak_supports"] != s["supports"] else ""))
        for r in report["layers"]:
            if r["layer_type"] == kind:
                t.add_row("", r["layer"], ",".join(f"{w:g}" for w in r["widths"]), f"{r['start']:.3f}",
                          f"{r['peak']:.3f} ({r['peak_step']:g})", f"{r['mean']:.3f}", f"{r['final']:.3f}", r["supports"])
    console.print(t)
    lr = report["lr_exponents"]
    c = Table(title=f"Max stable LR scaling for {report['parameterization']} + {report['optimizer']} (lr ∝ n^-c)",
              padding=(0, 1))
    c.add_column("alignment used")
    c.add_column("alpha=u hidden, readout", justify="right")
    for kind in ("embedding", "hidden", "readout"):
        c.add_column(f"{kind} lr", justify="right")
    c.add_column("stable, feature learning")
    labels = {"measured_mean": "measured mean", "measured_peak": "measured peak (conservative)",
              "full": "full (Table 1)", "none": "none (Table 1)"}
    for key, label in labels.items():
        e = lr[key]
        al = e["alignment"]
        c.add_row(label, f"{al['alpha']:.2f}, {al['alpha_readout']:.2f}",
                  *(f"{power(round(e['c'][k], 3))} (c={e['c'][k]:.3g})" for k in ("embedding", "hidden", "readout")),
                  f"{'yes' if e['stable'] else 'no'}, {'yes' if e['feature_learning'] else 'no'}")
    console.print(c)
    flag = lr["measured_mean"]["alignment_flag"]
    console.print(f"prescribe with the measured mean: [bold]scaleadvise prescribe --param {report['parameterization']} "
                  f"--optim {report['optimizer']} --alignment {flag}[/bold] (the peak is the conservative choice: "
                  f"--alignment {lr['measured_peak']['alignment_flag']})")
    console.print(f"[dim]mapping: {report['mapping']}[/dim]")
    for note in report["notes"]:
        console.print(f"[dim]note: {note}[/dim]")
    if report.get("plot"):
        console.print(f"wrote {report['plot']}")


def _sublayer(name: str) -> str:
    """'blocks.3.mlp.up' -> 'mlp.up': the role of a tensor within its block."""
    return re.sub(r"^.*?\.\d+\.", "", name)


def _block(name: str) -> int:
    m = re.search(r"\.(\d+)\.", name)
    return int(m.group(1)) if m else 0


def _plot(trajectories, path: Path) -> None:
    """Like Figure 2 / D2: A vs step, one line per layer, a panel per (width, layer type)."""
    plt = pyplot()

    kinds = [k for k in ("hidden", "readout", "embedding") if any(t.layer_type == k for t in trajectories)]
    widths = sorted({t.width for t in trajectories})
    fig, axes = plt.subplots(len(widths), len(kinds), figsize=(5.2 * len(kinds), 3.4 * len(widths)),
                             squeeze=False, sharey=True)
    roles = sorted({_sublayer(t.layer) for t in trajectories})
    palette = {"mlp.up": plt.cm.Blues, "mlp.down": plt.cm.Greens, "attn.q": plt.cm.Purples, "attn.k": plt.cm.Greys,
               "attn.v": plt.cm.Reds, "attn.o": plt.cm.YlOrBr}
    others = [plt.cm.Oranges, plt.cm.RdPu, plt.cm.BuGn, plt.cm.PuBu]
    cmaps = {r: palette.get(r, others[i % len(others)]) for i, r in enumerate(roles)}
    n_blocks = max([_block(t.layer) for t in trajectories] + [0]) + 1
    positive = all(s > 0 for t in trajectories for s in t.steps)
    for i, width in enumerate(widths):
        for j, kind in enumerate(kinds):
            ax = axes[i][j]
            mine = sorted((t for t in trajectories if t.width == width and t.layer_type == kind), key=lambda t: t.layer)
            many = len(mine) > 8
            for t in mine:
                role = _sublayer(t.layer)
                shade = 0.45 + 0.5 * (_block(t.layer) + 1) / n_blocks
                label = (f"{role} (all blocks)" if _block(t.layer) == n_blocks - 1 or n_blocks == 1 else None) if many else t.layer
                ax.plot(t.steps, t.values, color=cmaps[role](shade), lw=1.2, label=label)
            for level, text in ((0.5, "none"), (1.0, "full")):
                ax.axhline(level, color="0.5", ls="--", lw=0.8)
                ax.text(1.0, level, f" {text}", transform=ax.get_yaxis_transform(), va="center", fontsize=7, color="0.4")
            if positive:
                ax.set_xscale("log")
            else:  # step 0 present: linear near 0, log beyond (Figures D1-D3 use a log step axis)
                ax.set_xscale("symlog", linthresh=max(1.0, min((s for t in mine for s in t.steps if s > 0), default=1.0)))
            ax.set_title(f"{kind}, width {width:g}", fontsize=9)
            ax.set_xlabel("step")
            if j == 0:
                ax.set_ylabel("log alignment ratio A")
            ax.grid(True, alpha=0.3)
            if mine:
                ax.legend(fontsize=6, loc="best", ncol=2 if len(mine) > 4 and not many else 1)
    fig.suptitle("Log alignment ratio during training (paper Def. 3.1, Fig. 2)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
