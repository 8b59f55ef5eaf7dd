"""`scaleadvise fit`: LR sweeps -> optimum per width -> power law -> transfer verdict.

The work is in ``scaleadvise.analysis.fit`` (imported inside the command, with numpy,
pandas and scipy); this module parses flags and renders.
"""

from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from scaleadvise.cli.app import app
from scaleadvise.cli.common import StepColOpt, WidthColOpt
from scaleadvise.cli.render import console, err_console, print_json

EPILOG = """\b
Examples:
  scaleadvise fit sweeps.csv
  scaleadvise fit sweeps.csv --target-width 16384 --group-by param,optim --plot fit.png --json
  scaleadvise fit sweeps.csv --param stp --optim adam --setting global      # compare k with Table 1
  scaleadvise fit runs.jsonl --lr-col base_lr --loss-col eval/loss --step 20000 --bootstrap 0
  scaleadvise fit sweeps.csv --scale-by depth --target-depth 48     # lr* = C·L^k across depth

\b
Input: one row per run (or per logged step: the last step of each run is used),
columns width, lr, loss (aliases such as d_model, learning_rate, eval_loss are
recognised), optional seed, step and grouping columns (param, optim, setting...).
Seeds at the same (width, lr) are averaged; NaN/inf losses mark diverged runs.
The same run twice (an appended log) is an error naming both lines, or with
--duplicates last only the last of each is kept.
"""

_BAR_THRESHOLD = 20_000_000  # resampled rows before the bootstrap is worth a progress bar


@contextmanager
def _progress(enabled: bool):
    """A rich progress bar on stderr for the bootstrap, or nothing."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("bootstrap {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=err_console, transient=True) as bar:

        def start(label: str, total: int):
            task = bar.add_task(label, total=total)
            return lambda n: bar.advance(task, n)

        yield start


def _fmt(x, spec: str = ".3g") -> str:
    return "—" if x is None else format(x, spec)


def _fmt_ci(ci, spec: str = ".3g") -> str:
    return "" if not ci else f"[{ci[0]:{spec}}, {ci[1]:{spec}}]"


def _say(text: str) -> None:
    console.print(text, soft_wrap=True)  # long verdicts wrap in the terminal, not mid-phrase in logs


def _render_group(res: dict, axis: str = "width") -> None:
    table = Table(title=f"{res['label']}  ({res['runs']} runs)", title_justify="left", show_edge=False)
    var = "L" if axis == "depth" else "n"
    for name in (axis, "LRs", "best LR", "loss", "refined LR*", "95% interval", "max stable LR", "note"):
        table.add_column(name, justify="left" if name == "note" else "right")
    for r in res["optima"]:
        if r.get("lr") is None:
            table.add_row(str(r["width"]), str(r["n_lrs"]), "—", "—", "—", "", "—", "[red]every run diverged[/red]")
            continue
        loss = f"{r['loss']:.4f}" + (f" ±{r['loss_std']:.4f}" if r.get("loss_std") == r.get("loss_std") and
                                     r.get("loss_std") is not None and r["seeds"] > 1 else "")
        note = {"low": "[yellow]at the sweep's low end[/yellow]", "high": "[yellow]at the sweep's high end[/yellow]"}
        notes = [note[r["edge"]]] if r.get("edge") else []
        if r["max_stable_censored"]:
            notes.append("max stable is a lower bound")
        if not r["refined"]:
            notes.append("not refined")
        table.add_row(str(r["width"]), str(r["n_lrs"]), _fmt(r["lr"]), loss, _fmt(r["lr_refined"]),
                      _fmt_ci(r["lr_refined_ci"]), _fmt(r["max_stable_lr"]), "; ".join(notes))
    console.print(table)
    model = res.get("optimum_model") or {}
    if model.get("widths_located"):
        shapes = ", ".join(f"{name} {w:.2f}" for name, w in model["shapes"].items() if w >= 0.005)
        _say(f"  optima: one bowl shape for the {model['widths_located']} located widths, weighted {shapes} "
             f"(noise from {model['noise_from']}, {model['noise_dof']:.0f} d.o.f.)")
    k = res["lr_exponent"]
    if k is not None:
        dof = res.get("lr_exponent_dof")
        dof = "" if dof is None else f", {dof:.0f} d.o.f." if dof < 1e4 else ", normal"
        se = f" ± {res['lr_exponent_se']:.3f} (s.e.{dof})" if res["lr_exponent_se"] is not None else ""
        _say(f"  lr* = {res['lr_constant']:.3g} · {var}^k with k = [bold]{k:.3f}[/bold]{se}, "
                      f"95% interval {_fmt_ci(res['lr_exponent_ci'], '.3f') or 'none'}  "
                      f"(best-of-sweep method: {_fmt(res['lr_exponent_observed'], '.3f')})")
    colour = {True: "green", False: "red", None: "yellow"}[res["transfer"]]
    _say(f"  [{colour}]{res['verdict']}[/{colour}]")
    if res["max_stable_lr_exponent"] is not None:
        _say(f"  max stable LR ∝ {var}^{res['max_stable_lr_exponent']:.3f} "
                      f"{_fmt_ci(res['max_stable_lr_exponent_ci'], '.3f')}")
    tw = res.get("target_width")
    if tw is not None and res.get("predicted_lr") is not None:
        line = f"  at {axis} {tw:g}: lr* ≈ [bold]{res['predicted_lr']:.3g}[/bold] {_fmt_ci(res['predicted_lr_ci'])}"
        if res.get("predicted_max_stable_lr") is not None:
            line += f"; max stable ≈ {res['predicted_max_stable_lr']:.3g} {_fmt_ci(res['predicted_max_stable_lr_ci'])}"
        _say(line)
    law = res.get("loss_law")
    if law:
        pred = f"; at {axis} {tw:g}: {law['predicted_loss']:.4f}" if law.get("predicted_loss") is not None else ""
        _say(f"  best loss ≈ {law['E']:.4f} + {law['A']:.4g} · {var}^-{law['alpha']:.3f}{pred}")
    if res.get("interpretation"):
        _say(f"  theory: {res['interpretation']['message']}")
    console.print()


@app.command("fit", epilog=EPILOG)
def fit_command(
    path: Path = typer.Argument(..., help="Sweep table: .csv, .tsv, .jsonl/.json or .parquet (optionally .gz).",
                                show_default=False),
    target_width: Optional[float] = typer.Option(None, "--target-width", min=1, help="Predict lr* (and loss) here."),
    group_by: Optional[str] = typer.Option(
        None, "--group-by", help="Comma-separated columns that name separate sweeps (default: whichever of "
        "param, optim, setting, alignment, ... vary; 'none' for one sweep)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a Figure-4-style plot (.png, .pdf, .svg)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document instead of tables."),
    param: Optional[str] = typer.Option(None, "--param", help="Parameterization the sweep used (stp, ntk, mup, mfp, "
                                        "umup), for the theory comparison."),
    optim: Optional[str] = typer.Option(None, "--optim", help="Optimizer the sweep used (sgd, adam, adafactor, ...)."),
    setting: Optional[str] = typer.Option(None, "--setting", help="global, per-layer-full or per-layer-none: which "
                                          "LR exponents the swept base LR was multiplied by."),
    scale_by: str = typer.Option("width", "--scale-by", help="The scale axis: width (default) or depth (the "
                                 "depth column: lr* = C·L^k; records keep the key 'width' for the axis)."),
    target_depth: Optional[float] = typer.Option(None, "--target-depth", min=1, help="With --scale-by depth: "
                                                 "predict lr* (and loss) at this depth."),
    depth_col: Optional[str] = typer.Option(None, "--depth-col", help="Column holding the depth (--scale-by depth)."),
    width_col: WidthColOpt = None,
    lr_col: Optional[str] = typer.Option(None, "--lr-col", help="Column holding the (base) learning rate."),
    loss_col: Optional[str] = typer.Option(None, "--loss-col", help="Column holding the eval loss."),
    seed_col: Optional[str] = typer.Option(None, "--seed-col", help="Column identifying the seed of a run."),
    step_col: StepColOpt = None,
    step: Optional[int] = typer.Option(None, "--step", min=0, help="Compare runs at this step (each run's last "
                                       "logged step at or before it) instead of their final step."),
    transfer_tol: float = typer.Option(0.1, "--transfer-tol", min=0.0, help="Transfer holds when the interval for "
                                       "k lies within ±this."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap replicates (resampling seeds per "
                                  "(width, lr)), reported beside the interval as a check; 0 to skip."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the bootstrap."),
    optimum: str = typer.Option("refined", "--optimum", help="'refined' (the minimum of a bowl fitted near "
                                "each width's optimum) or 'observed' (the paper's best LR of the sweep) for the "
                                "power law."),
    duplicates: str = typer.Option("error", "--duplicates", help="The same run twice (same grouping columns, "
                                   "width, lr, seed, step; e.g. an appended log): 'error' (default) names both "
                                   "lines; 'last' keeps the last of each."),
) -> None:
    """Find the optimal and max stable LR per width, fit lr* = C·n^k, and say whether the base LR transfers.

    Follows the paper's method (Everett et al. 2024, §4.2, Figure 4; instability
    heuristic C.1: above the optimum, NaN or loss > 1.2 x minimum). Each width's
    optimum is the minimum of a loss-vs-log2(lr) bowl whose shape (symmetric,
    or steeper on one side) is shared by all widths, averaged over three shape
    families. k and the predicted LR get small-sample 95% intervals: the
    optima's own error (seed noise, lack of fit, shape uncertainty) plus their
    scatter about the power law, Student-t with Satterthwaite's degrees of
    freedom. The bootstrap over seeds is reported beside them as a check.
    """
    from scaleadvise.analysis.fit import FitOptions, fit_sweep
    from scaleadvise.errors import UserError

    scale_by = scale_by.strip().lower()
    if scale_by not in ("width", "depth"):
        raise UserError(f"--scale-by: {scale_by!r} is not 'width' or 'depth'")
    if scale_by == "width" and (target_depth is not None or depth_col):
        raise UserError("--target-depth/--depth-col need --scale-by depth")
    if scale_by == "depth" and target_width is not None:
        raise UserError("--target-width: with --scale-by depth the target is --target-depth")
    groups = None
    if group_by is not None:
        groups = () if group_by.strip().lower() in ("", "none") else tuple(
            g for g in (p.strip() for p in group_by.split(",")) if g)
    opts = FitOptions(
        target_width=target_depth if scale_by == "depth" else target_width, group_by=groups, scale_by=scale_by,
        step=step, transfer_tol=transfer_tol, bootstrap=bootstrap, seed=seed, optimum=optimum.strip().lower(),
        duplicates=duplicates.strip().lower(), param=param, optim=optim, setting=setting,
        columns={"width": width_col, "depth": depth_col, "lr": lr_col, "loss": loss_col, "seed": seed_col,
                 "step": step_col},
    )
    if plot is not None:  # fail on a missing matplotlib or an unwritable path before the fit, not after it
        from scaleadvise.plots import check_plot_path

        check_plot_path(plot)
    show_bar = err_console.is_terminal and bootstrap > 0 and path.exists() and \
        path.stat().st_size / 30 * bootstrap > _BAR_THRESHOLD
    with _progress(show_bar) as progress:
        result = fit_sweep(str(path), opts, progress)
    if plot is not None:
        from scaleadvise.plots.fit import plot_fit

        plot_fit(result.doc, result.grids, plot, result.bands)
    for w in result.doc["warnings"]:
        err_console.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True, markup=True)
    if json_out:
        print_json(result.doc)
        return
    for res in result.doc["groups"]:
        _render_group(res, scale_by)
    if plot is not None:
        _say(f"plot written to {plot}")
