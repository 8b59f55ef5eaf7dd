"""`scaleadvise align`: measured alignment exponents alpha, omega, u (B.11), the paper's A (Definition 3.1) beside
them, and the LR exponents alpha, omega, u imply."""

import re
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from scaleadvise.cli.app import app
from scaleadvise.cli.common import (
    OPTIM_HELP, PARAM_HELP, AlignmentOpt, LayerColOpt, power, StepColOpt, WidthColOpt,
)
from scaleadvise.plots import check_plot_path, pyplot, save_figure
from scaleadvise.cli.render import console, print_json

EPILOG = """\b
Examples:
  scaleadvise align runs/d1024/alignment.csv
  scaleadvise align alignment.csv --param mup --optim adam --plot a.png
  scaleadvise align alignment.csv --param stp --n-hidden 16 --json

\b
alignment.csv columns (the emitted training script writes them):
  width, layer (tensor name or layer type), step,
  alpha, omega, u  B.11 terms ΔW·z_0, W_0·Δz, ΔW·Δz (ΔW = W_t - W_0,
                   Δz = z_t - z_0, a fixed probe batch; empty at step 0)
  log_alignment    A = log_fan-in ||W z|| / (||W|| ||z||), Def. 3.1
Each is a log_fan-in ratio of RMS norms: 1/2 independent, 1 aligned.
The LR exponents come from alpha, omega, u (Table 2), never from A:
A mixes in the unaligned W_0·z_0 and stays near 1/2 while
||ΔW|| << ||W_0||, however aligned the update; a file with A alone
gets no exponents. A term never defined for a layer type takes
--alignment's value (default: the paper's choice for the family).
"""


@app.command(epilog=EPILOG)
def align(
    table: Path = typer.Argument(..., help="Alignment table (CSV/TSV/JSONL/Parquet), e.g. alignment.csv from emit-train."),
    param: str = typer.Option("stp", "--param", help=PARAM_HELP + " The run's parameterization, for the LR exponents."),
    optim: str = typer.Option("adam", "--optim", help=OPTIM_HELP),
    alignment: AlignmentOpt = None,
    n_hidden: Optional[int] = typer.Option(
        None, "--n-hidden", help="Hidden layers on the model's longest path, the chain the exponents are solved for "
        "(a measured hidden omega > 1/2 raises the embedding's exponent with it). Default: from the layer names "
        "(the emitted NanoDO: 4 per block, as `prescribe --model nanodo`; else every hidden layer measured)."),
    tolerance: float = typer.Option(0.1, "--tolerance", help="A value within this of 1 supports full, of 0.5 none alignment."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG: alpha, omega, u and A vs step, a row per "
                                        "(width, layer type), a column per quantity (A as in the paper's Figure 2)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    width_col: WidthColOpt = None,
    layer_col: LayerColOpt = None,
    step_col: StepColOpt = None,
    log_alignment_col: Optional[str] = typer.Option(None, "--log-alignment-col", help="Column holding A."),
) -> None:
    """Summarize measured alignment per layer and give the LR exponents it implies.

    Per layer type and layer: start, peak, mean over training and final value of alpha,
    omega, u (B.11) and of the paper's A (Definition 3.1, §4.1), and the maximal stable LR
    exponents the theory gives at the measured peak (conservative) and mean (typical)
    alpha, omega, u, beside Table 1's full- and no-alignment answers.
    """
    from scaleadvise.analysis import align as A
    from scaleadvise.errors import UserError
    from scaleadvise.core.parameterizations import get_parameterization
    from scaleadvise.core.alignment import resolve_alignment
    from scaleadvise.core.optimizers import optimizer_family

    if not 0 < tolerance < 0.25:
        raise UserError(f"--tolerance: must be in (0, 0.25) so that full and none do not overlap, got {tolerance:g}")
    if n_hidden is not None and n_hidden < 1:
        raise UserError(f"--n-hidden: must be >= 1, got {n_hidden}")
    param = get_parameterization(param).name
    fallback, fallback_source = resolve_alignment(alignment, optimizer_family(optim))
    if plot is not None:
        check_plot_path(plot)
    overrides = {"width": width_col, "layer": layer_col, "step": step_col, "log_alignment": log_alignment_col}
    trajectories = A.load_alignment(str(table), overrides)
    report = A.analyze(trajectories, param, optim, fallback, tolerance, n_hidden)
    report["file"] = str(table)
    report["alignment_fallback"] = {**fallback.as_dict(), "source": fallback_source}
    if plot is not None:
        _plot(trajectories, plot)
        report["plot"] = str(plot)
    if json_out:
        print_json(report)
    else:
        _render(report)


LABELS = {"alpha": "alpha ΔW·z0", "omega": "omega W0·Δz", "u": "u ΔW·Δz", "log_alignment": "A (Def. 3.1)"}


def _verdict(s: dict) -> str:
    return s["supports"] + (f" (peak: {s['peak_supports']})" if s["peak_supports"] != s["supports"] else "")


def _render(report: dict) -> None:
    from scaleadvise.analysis.align import TERMS

    types = report["layer_types"]
    t = Table(title="Alignment per layer type: alpha, omega, u (B.11) enter the theory; A (Def. 3.1) is shown "
              "for comparison", padding=(0, 1))
    for col in ("type", "quantity", "width", "start", "peak (step, layer)", "mean", "final", "supports"):
        t.add_column(col, justify="right" if col in ("start", "mean", "final", "peak (step, layer)") else "left")
    for kind, summary in types.items():
        first = True
        for metric in (*TERMS, "log_alignment"):
            s = summary if metric == "log_alignment" else summary.get(metric)
            if s is None:
                continue
            t.add_row(f"[bold]{kind}[/bold]" if first else "", LABELS[metric], ",".join(f"{w:g}" for w in s["widths"]),
                      f"{s['start']:.3f}", f"{s['peak']:.3f} ({s['peak_step']:g}, {s['peak_layer']})",
                      f"{s['mean']:.3f}", f"{s['final']:.3f}", _verdict(s))
            first = False
    console.print(t)
    per = Table(title="Per layer: peak / mean over training", padding=(0, 1))
    per.add_column("type")
    per.add_column("layer", overflow="fold")
    for metric in (*TERMS, "log_alignment"):
        per.add_column(LABELS[metric], justify="right")
    for kind in types:
        for r in report["layers"]:
            if r["layer_type"] == kind:
                cells = [(r if m == "log_alignment" else r.get(m)) for m in (*TERMS, "log_alignment")]
                per.add_row(kind, r["layer"], *(f"{c['peak']:.3f} / {c['mean']:.3f}" if c else "—" for c in cells))
    console.print(per)
    lr = report["lr_exponents"]
    c = Table(title=f"Max stable LR scaling for {report['parameterization']} + {report['optimizer']} (lr ∝ n^-c), "
              f"chain of {report['n_hidden']} hidden layer{'s' if report['n_hidden'] > 1 else ''}", padding=(0, 1))
    c.add_column("alignment used")
    c.add_column("hidden α, ω, u", justify="right")
    c.add_column("readout α, ω, u", justify="right")
    for kind in ("embedding", "hidden", "readout"):
        c.add_column(f"{kind} lr", justify="right")
    c.add_column("stable, feature learning")
    labels = {"measured_mean": "measured mean", "measured_peak": "measured peak (conservative)",
              "full": "full (Table 1)", "none": "none (Table 1)"}
    for key, label in labels.items():
        if key not in lr:
            continue
        e = lr[key]
        al = e["alignment"]
        c.add_row(label, f"{al['alpha']:.2f}, {al['omega']:.2f}, {al['u']:.2f}",
                  f"{al['alpha_readout']:.2f}, {al['omega_readout']:.2f}, {al['u_readout']:.2f}",
                  *(f"{power(round(e['c'][k], 3))} (c={e['c'][k]:.3g})" for k in ("embedding", "hidden", "readout")),
                  f"{'yes' if e['stable'] else 'no'}, {'yes' if e['feature_learning'] else 'no'}")
    console.print(c)
    if report["refused"]:
        console.print(f"[bold]{report['refused']}[/bold]")
    else:
        flag = lr["measured_mean"]["alignment_flag"]
        console.print(f"prescribe with the measured mean: [bold]scaleadvise prescribe --param {report['parameterization']} "
                      f"--optim {report['optimizer']} --alignment {flag}[/bold] (the peak is the conservative choice: "
                      f"--alignment {lr['measured_peak']['alignment_flag']})")
    for note in lr.get("measured_peak", {}).get("notes", []):
        console.print(f"[dim]theory at the measured peak: {note}[/dim]")
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
    """alpha, omega, u and A vs step: a row per layer type, a column per quantity, one line
    per layer and width (line style by width: solid for the widest). The A column is the
    paper's Figure 2 / D2; the other three are what the LR exponents are derived from."""
    from matplotlib.lines import Line2D

    from scaleadvise.analysis.align import TERMS, _natural

    plt = pyplot()

    kinds = [k for k in ("hidden", "readout", "embedding") if any(t.layer_type == k for t in trajectories)]
    widths = sorted({t.width for t in trajectories}, reverse=True)
    styles = dict(zip(widths, ("-", "--", ":", "-.")))
    metrics = [m for m in (*TERMS, "log_alignment") if any(t.metric == m for t in trajectories)]
    fig, axes = plt.subplots(len(kinds), len(metrics), figsize=(3.9 * len(metrics) + 1.6, 3.1 * len(kinds)),
                             squeeze=False, sharex=True, sharey=True)
    roles = sorted({_sublayer(t.layer) for t in trajectories})
    palette = {"mlp.up": plt.cm.Blues, "mlp.down": plt.cm.Greens, "attn.q": plt.cm.Purples, "attn.k": plt.cm.Greys,
               "attn.v": plt.cm.Reds, "attn.o": plt.cm.YlOrBr}
    others = [plt.cm.Oranges, plt.cm.RdPu, plt.cm.BuGn, plt.cm.PuBu]
    cmaps = {r: palette.get(r, others[i % len(others)]) for i, r in enumerate(roles)}
    n_blocks = max([_block(t.layer) for t in trajectories] + [0]) + 1
    positive = all(s > 0 for t in trajectories for s in t.steps)
    first_step = min((s for t in trajectories for s in t.steps if s > 0), default=1.0)
    titles = {"alpha": "alpha: ΔW·z0", "omega": "omega: W0·Δz", "u": "u: ΔW·Δz", "log_alignment": "A (Def. 3.1): W·z"}
    for i, kind in enumerate(kinds):
        handles = {}
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            mine = sorted((t for t in trajectories if t.layer_type == kind and t.metric == metric),
                          key=lambda t: (_natural(t.layer), -t.width))
            many = len({t.layer for t in mine}) > 8
            for t in mine:
                role = _sublayer(t.layer)
                color = cmaps[role](0.45 + 0.5 * (_block(t.layer) + 1) / n_blocks)
                ax.plot(t.steps, t.values, color=color, ls=styles.get(t.width, "-"), lw=1.1)
                key = f"{role} (darker: later blocks)" if many else t.layer
                handles.setdefault(key, Line2D([], [], color=cmaps[role](0.95) if many else color, lw=1.5))
            for level in (0.5, 1.0):
                ax.axhline(level, color="0.5", ls="--", lw=0.8)
            if positive:
                ax.set_xscale("log")
            else:  # step 0 present: linear near 0, log beyond (Figures D1-D3 use a log step axis)
                ax.set_xscale("symlog", linthresh=max(1.0, first_step))
            ax.set_title(f"{titles[metric]} | {kind}", fontsize=9)
            if i == len(kinds) - 1:
                ax.set_xlabel("step")
            if j == 0:
                ax.set_ylabel("log_fan-in ratio (½ none, 1 full)")
            ax.grid(True, alpha=0.3)
        if len(widths) > 1:
            handles.update({f"n = {w:g}": Line2D([], [], color="0.3", ls=styles.get(w, "-"), lw=1.2) for w in widths})
        axes[i][-1].legend(list(handles.values()), list(handles), fontsize=6, loc="upper left",
                           bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.suptitle("Alignment during training: the terms of B.11 (they set the LR exponents) and A (Def. 3.1, Fig. 2)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    save_figure(fig, path)
