"""`scaleadvise epsilon`: at which width Adam's epsilon swamps each layer's gradients (§4.3, App. F)."""

import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from scaleadvise.cli.app import app
from scaleadvise.cli.common import OPTIM_HELP, PARAM_HELP, LayerColOpt, WidthColOpt
from scaleadvise.cli.render import console, print_json
from scaleadvise.plots import check_plot_path, pyplot, save_figure

EPILOG = """\b
Examples:
  scaleadvise epsilon grads.csv --eps 1e-8 --param mfp --optim adam
  scaleadvise epsilon grads.csv --eps 3e-5 --param mfp --base-width 64 --target-width 256 \\
      --yardstick hidden=0.07@0.45 --yardstick embedding=0.16@0.76 --yardstick readout=0.02@0.62 --loss-budget 0.05
  scaleadvise epsilon grads.csv --eps 1e-9 --target-width 16384 --plot eps.png --json
  scaleadvise epsilon --param mfp --width 16384 --grad-rms hidden=3e-7@1024 --eps 1e-8
  scaleadvise epsilon grads.csv --optim adafactor --eps 1e-30 --param mfp
  scaleadvise epsilon grads.csv --thresholds 0.001,0.01,0.1 --state-dtype bf16

\b
grads.csv columns: width, layer (tensor name or layer type), grad_rms, optional
sqrt_v_rms (RMS of sqrt(v), preferred: eps is added to it), step, seed/run (what
identifies a run: intervals count runs, never checkpoints), and decrease,
decrease_no_eps, eps (the first-order decrease with and without eps, logged by
`emit-train` scripts) for the model-level prediction. With one width, --param
supplies the theory's exponent (Table 1).
"""

_DTYPES = ("fp32", "bf16", "fp16")


def _parse_thresholds(text: str) -> list[float]:
    from scaleadvise.errors import UserError

    try:
        values = sorted({float(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise UserError(f"--thresholds: {text!r} is not a comma-separated list of ratios, e.g. 0.01,0.1,1") from None
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise UserError(f"--thresholds: ratios must be finite numbers > 0, got {text!r}")
    return values


def parse_grad_rms_flags(values: list[str], into: dict) -> dict:
    """Add ``--grad-rms LAYER=VALUE@WIDTH`` measurements to the samples per layer."""
    from scaleadvise.analysis.epsilon_data import LayerSamples
    from scaleadvise.core.model import layer_type_of
    from scaleadvise.errors import UserError

    for text in values:
        where = f"--grad-rms {text!r}"
        name, eq, rest = text.partition("=")
        value, at, width = rest.partition("@")
        if not (eq and at and name.strip()):
            raise UserError(f"{where}: expected LAYER=VALUE@WIDTH, e.g. hidden=3e-7@1024")
        try:
            v, n = float(value), float(width)
        except ValueError:
            raise UserError(f"{where}: VALUE and WIDTH must be numbers, e.g. hidden=3e-7@1024") from None
        if not (math.isfinite(v) and v > 0):
            raise UserError(f"{where}: the gradient RMS must be a finite number > 0")
        if not (math.isfinite(n) and n >= 1):
            raise UserError(f"{where}: the width must be a number >= 1")
        key = name.strip()
        if key not in into:
            into[key] = LayerSamples(key, layer_type_of(key, where))
        into[key].add(n, v)
    return into


def _width(n: float | None) -> str:
    if n is None or not math.isfinite(n):
        return "never"
    if n < 1:
        return "< 1"
    return f"{n:,.0f}" if n < 1e7 else f"{n:.1e}"


def parse_yardsticks(values: list[str]) -> dict:
    """``--yardstick TYPE=COST@SHARE`` (repeatable; repeats of one TYPE@SHARE are replicates)."""
    from scaleadvise.analysis.epsilon_model import LAYER_TYPES, group_yardsticks
    from scaleadvise.errors import UserError

    points = []
    for text in values:
        where = f"--yardstick {text!r}"
        kind, eq, rest = text.partition("=")
        cost, at, factor = rest.partition("@")
        kind = kind.strip()
        if not (eq and at and kind):
            raise UserError(f"{where}: expected TYPE=COST@SHARE, e.g. hidden=0.07@0.45 (loss increase at the base "
                            f"width of an intervention leaving the hidden tensors 45% of their first-order decrease)")
        if kind not in LAYER_TYPES:
            raise UserError(f"{where}: layer type must be one of {', '.join(LAYER_TYPES)}")
        try:
            c, f = float(cost), float(factor)
        except ValueError:
            raise UserError(f"{where}: COST and SHARE must be numbers, e.g. hidden=0.07@0.45") from None
        if not math.isfinite(c):
            raise UserError(f"{where}: the loss increase must be a finite number")
        if not (0 < f < 1):
            raise UserError(f"{where}: SHARE is the share of the first-order decrease the intervention leaves, in (0, 1)")
        points.append((kind, f, c))
    return group_yardsticks(points)


@app.command(epilog=EPILOG)
def epsilon(
    grads: Optional[Path] = typer.Argument(None, help="Gradient table (CSV/TSV/JSONL/Parquet), e.g. grads.csv from emit-train."),
    eps: Optional[float] = typer.Option(None, "--eps", help="Epsilon in use (default: the optimizer's Table C2 value, as prescribe uses: 1e-9 for Adam, 1e-30 for adafactor)."),
    param: Optional[str] = typer.Option(None, "--param", help=PARAM_HELP + " Gives the theory's g per layer."),
    optim: str = typer.Option("adam", "--optim", help=OPTIM_HELP + " adam, adamw, adam-ps add eps to sqrt(v); adafactor adds it to g²."),
    target_width: Optional[float] = typer.Option(None, "--target-width", "--width", help="Width to predict for (default: the largest measured)."),
    base_width: float = typer.Option(1024, "--base-width", help="Base width b of per-layer eps, eps_l = base_eps·(n/b)^-g_l, and of the yardsticks."),
    grad_rms: list[str] = typer.Option([], "--grad-rms", help="One measurement LAYER=VALUE@WIDTH (repeatable), e.g. hidden=3e-7@1024."),
    thresholds: str = typer.Option("0.01,0.1,1", "--thresholds", help="eps/sqrt(v) ratios (eps/v for adafactor) whose crossing widths to predict."),
    safe_ratio: Optional[float] = typer.Option(None, "--safe-ratio", help="eps/sqrt(v) considered harmless (default: the smallest threshold)."),
    state_dtype: str = typer.Option("fp32", "--state-dtype", help="Optimizer-state dtype for the v underflow check: fp32, bf16, fp16."),
    min_eps: Optional[float] = typer.Option(None, "--min-eps", help="Smallest constant eps to recommend (default: the paper's tested 1e-15, App. F; 1e-30 for adafactor)."),
    confidence: float = typer.Option(0.95, "--confidence", help="Level of the intervals (exponents, model-level crossing)."),
    early_step: Optional[float] = typer.Option(None, "--early-step", help="Compare g with the theory on rows with step <= this (default: each run's first logged step; the theory's g is at init, B.7)."),
    yardstick: list[str] = typer.Option([], "--yardstick", help="TYPE=COST@SHARE: loss increase at the base width of an intervention (an eps on TYPE alone) that leaves TYPE the SHARE of its first-order decrease; repeat per type, and per seed."),
    loss_budget: float = typer.Option(0.01, "--loss-budget", help="Loss cost of eps the model-level crossing is defined by (with --yardstick)."),
    lost_decrease: float = typer.Option(0.1, "--lost-decrease", help="Without --yardstick: share of the first-order decrease eps may remove before the crossing."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG: gradient scale vs width with the eps lines and crossings."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    width_col: WidthColOpt = None,
    layer_col: LayerColOpt = None,
    grad_rms_col: Optional[str] = typer.Option(None, "--grad-rms-col", help="Column holding the gradient RMS."),
    sqrt_v_rms_col: Optional[str] = typer.Option(None, "--sqrt-v-rms-col", help="Column holding the RMS of sqrt(v)."),
) -> None:
    """Predict, per layer, the width at which epsilon swamps sqrt(v) (v for Adafactor), what eps
    costs the model, and what to do.

    Fits grad RMS ∝ n^-g per layer (log–log least squares, one point per run: a
    run's checkpoints are not replicates), compares g at the first logged step with
    the theory's (Table 1, B.7), solves for the widths where eps reaches 1%, 10%,
    100% of sqrt(v) and where v = g² underflows fp32/bf16/fp16. With the decrease
    columns it predicts the width from which eps costs the model --loss-budget
    (calibrated by --yardstick) or removes --lost-decrease of its first-order
    progress, with an interval. Recommends keeping eps, a smaller constant, per-layer
    eps (n/b)^-g_l ((n/b)^-2g_l for adafactor) or Adam-atan2.
    """
    from scaleadvise.analysis import epsilon as E
    from scaleadvise.analysis.epsilon_model import Request
    from scaleadvise.errors import UserError

    optim = E.check_optimizer(optim)
    default, smallest = E.default_eps(optim)
    eps = default if eps is None else eps
    min_eps = smallest if min_eps is None else min_eps
    if not (eps > 0 and math.isfinite(eps)):
        raise UserError(f"--eps: must be a finite number > 0, got {eps:g}")
    if base_width < 1 or not math.isfinite(base_width):
        raise UserError(f"--base-width: must be >= 1, got {base_width:g}")
    if target_width is not None and (target_width < 1 or not math.isfinite(target_width)):
        raise UserError(f"--target-width: must be >= 1, got {target_width:g}")
    if state_dtype not in _DTYPES:
        raise UserError(f"--state-dtype: {state_dtype!r} is not one of {', '.join(_DTYPES)}")
    if not 0 < confidence < 1:
        raise UserError(f"--confidence: must be in (0, 1), got {confidence:g}")
    if not (min_eps > 0 and math.isfinite(min_eps)):
        raise UserError(f"--min-eps: must be a finite number > 0, got {min_eps:g}")
    if early_step is not None and not math.isfinite(early_step):
        raise UserError(f"--early-step: must be a finite step number, got {early_step:g}")
    if not (loss_budget > 0 and math.isfinite(loss_budget)):
        raise UserError(f"--loss-budget: must be a finite loss > 0, got {loss_budget:g}")
    if not 0 < lost_decrease < 1:
        raise UserError(f"--lost-decrease: must be a share in (0, 1), got {lost_decrease:g}")
    ratios = _parse_thresholds(thresholds)
    safe = min(ratios) if safe_ratio is None else safe_ratio
    if not (safe > 0 and math.isfinite(safe)):
        raise UserError(f"--safe-ratio: must be a finite number > 0, got {safe:g}")
    sticks = parse_yardsticks(yardstick)
    if plot is not None:
        check_plot_path(plot)
    if param is not None:
        from scaleadvise.core.parameterizations import get_parameterization

        param = get_parameterization(param).name
    if grads is None and not grad_rms:
        raise UserError("give a gradient table (grads.csv) or at least one --grad-rms LAYER=VALUE@WIDTH")

    overrides = {"width": width_col, "layer": layer_col, "grad_rms": grad_rms_col, "sqrt_v_rms": sqrt_v_rms_col}
    samples = E.load_gradients(str(grads), overrides) if grads is not None else {}
    parse_grad_rms_flags(grad_rms, samples)
    source = str(grads) if grads is not None else "--grad-rms"
    notes = []
    if target_width is None:
        target_width = max(max(s.widths) for s in samples.values())
        notes.append(f"no --target-width: predicting at the largest measured width, {target_width:,.0f}")
    ctx = E.Context(eps=eps, safe_ratio=safe, target_width=target_width, base_width=base_width,
                    state_dtype=state_dtype, param=param, optim=optim, min_eps=min_eps, notes=notes)
    model = Request(eps=eps, base_width=base_width, target_width=target_width, yardsticks=sticks,
                    loss_budget=loss_budget, lost_budget=lost_decrease, confidence=confidence)
    report = E.analyze(samples, ctx, ratios, confidence, source, early_step=early_step, model=model)
    if sticks and report["model_prediction"] is None:
        raise UserError(f"--yardstick: {source} has no decrease columns (decrease, decrease_no_eps) to calibrate")
    if plot is not None:
        _plot(report, samples, plot)
        report["plot"] = str(plot)
    if json_out:
        print_json(report)
    else:
        _render(report)


def _g_cell(g: float | None, ci: list | None, off: bool = False) -> str:
    if g is None:
        return "—"
    text = f"{g:.3g}" + (f"±{(ci[1] - ci[0]) / 2:.2g}" if ci else "")
    return f"[red]{text}≠[/red]" if off else text


def _render(report: dict) -> None:
    keys = [f"{t:g}" for t in report["thresholds"]]
    dtype = report["state_dtype"]
    meets = "v" if report["eps_added_to"].startswith("v") else "√v"
    table = Table(title=f"eps = {report['eps']:.0e} ({report['optimizer']}"
                        + (f", {report['parameterization']}" if report["parameterization"] else "")
                        + f"): eps/{meets} per layer at width {report['target_width']:,.0f}", padding=(0, 1))
    table.add_column("layer", overflow="fold")
    table.add_column("type")
    for col in ("g init", "g train", "g thy", f"ε/{meets}", "LR×", *(f"n@{float(k):.0%}" for k in keys), f"v<{dtype}"):
        table.add_column(col, justify="right")
    table.add_column("advice")
    for L in report["layers"].values():
        off = L["g_agrees_with_theory"] is False
        early = L["g_compared_at"] == "early"
        g_init = _g_cell(L["g_early"], L["g_early_ci"], off and early) if L["g_measured"] is not None else "1 width"
        g_train = _g_cell(L["g_measured"], L["g_measured_ci"], off and not early) if L["g_measured"] is not None else "—"
        g_th = "—" if L["g_theory"] is None else f"{L['g_theory']:g}" + ("*" if L["exponent_source"] == "theory" else "")
        t = L["target"]
        table.add_row(L["layer"], L["layer_type"], g_init, g_train, g_th, f"{t['eps_ratio']:.2g}", f"{t['lr_factor']:.2g}",
                      *(_width(L["underflow_width"][k]) for k in keys), _width(L["v_underflow_width"][dtype]),
                      L["recommendation"]["action"])
    console.print(table)
    _render_model(report.get("model_prediction"))
    rec = report["recommendation"]
    console.print(f"[bold]Recommendation: {rec['action']}[/bold] — {rec['reason']}")
    if rec.get("command"):
        console.print(f"  {rec['command']}", soft_wrap=True)
    if rec["action"] != "adam-atan2":
        console.print("  Alternative without epsilon: Adam-atan2 (paper C.5), --optim adam-atan2.")
    console.print(f"[dim]g init: fitted exponent at each run's first logged step (where Table 1's g applies, B.7) ± half "
                  f"its {report['confidence']:.0%} interval, one point per run (≠: theory outside it); g train: over "
                  f"every logged step; g thy*: theory exponent used to extrapolate; n@r: width where eps/{meets} "
                  f"reaches r; LR×: effective LR factor at the target[/dim]")
    for note in report["notes"]:
        console.print(f"[dim]note: {note}[/dim]")
    if report.get("plot"):
        console.print(f"wrote {report['plot']}")


def _render_model(m: dict | None) -> None:
    """The model-level prediction: which predictor, the crossing with its interval, what to do."""
    if m is None:
        return
    if m.get("predictor") is None:
        console.print(f"[bold]Model level:[/bold] no prediction — {m['reason']}")
    else:
        ci = m["crossing_width_ci"]
        interval = f" ({m['confidence']:.0%} interval {_width(ci[0])}–{_width(ci[1])})" if ci else " (no interval)"
        what = (f"costs a loss of {m['budget']['loss']:g}" if "loss" in m["budget"]
                else f"removes {m['budget']['lost_decrease']:.0%} of the first-order decrease")
        tgt = m["target"]
        cost = ""
        if tgt["loss_cost"] is not None:
            cci = tgt["loss_cost_ci"]
            cost = f", predicted loss cost {tgt['loss_cost']:.3g}" + (f" [{cci[0]:.3g}, {cci[1]:.3g}]" if cci else "")
        console.print(f"[bold]Model level[/bold] (predictor: {m['predictor']}, {m['runs']} runs): eps {what} from width "
                      f"[bold]{_width(m['crossing_width'])}[/bold]{interval}; at width {tgt['width']:,.0f} the step "
                      f"keeps {tgt['retained_decrease']:.0%} of its first-order decrease{cost}.")
        console.print(f"  {m['verdict']['action']}: {m['verdict']['text']}")
        console.print(f"[dim]  rule: {m['rule']}[/dim]")
    for note in m.get("notes", []):
        console.print(f"[dim]note: {note}[/dim]")


def _plot(report: dict, samples: dict, path: Path) -> None:
    """Gradient scale vs width per layer (log–log), the eps/ratio lines and the crossings."""
    plt = pyplot()
    import numpy as np

    from scaleadvise.analysis.epsilon_laws import GradientLaw

    eps, layers = report["eps"], report["layers"]
    power = 2 if report["eps_added_to"].startswith("v") else 1  # Adafactor: eps meets v = s², s = (eps/r)^(1/2)
    meets = "v" if power == 2 else "sqrt(v)"
    level = {f"{t:g}": (eps / t) ** (1.0 / power) for t in report["thresholds"]}  # s at which eps/s^p = r
    keys = [f"{t:g}" for t in report["thresholds"]]
    measured = [w for s in samples.values() for w in s.widths]
    finite = [w for L in layers.values() for w in L["underflow_width"].values() if w is not None and math.isfinite(w)]
    lo = max(1.0, min([min(measured), *[w for w in finite if w > min(measured) / 64]]) / 2)
    hi = max([report["target_width"], *measured, *[w for w in finite if w < 1e3 * max(measured)]]) * 2
    grid = np.geomspace(lo, hi, 200)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    cmap = {"embedding": plt.cm.Greens, "hidden": plt.cm.Blues, "readout": plt.cm.Oranges}
    by_type: dict[str, int] = {}
    for L in layers.values():
        by_type[L["layer_type"]] = by_type.get(L["layer_type"], 0) + 1
    seen: dict[str, int] = {}
    for name, L in layers.items():
        k = seen[L["layer_type"]] = seen.get(L["layer_type"], 0) + 1
        color = cmap[L["layer_type"]](0.45 + 0.5 * k / by_type[L["layer_type"]])
        s = samples[name]
        law = GradientLaw(g=L["g_used"], log_c=math.log(L["target"]["sqrt_v"]) + L["g_used"] * math.log(report["target_width"]))
        # One marker per width: the geometric mean over steps/seeds, bars spanning min..max.
        ws = np.asarray(s.widths, dtype=float)
        ln = np.log(np.asarray(s.scale, dtype=float))
        uw = np.unique(ws)
        mid = np.exp([ln[ws == w].mean() for w in uw])
        span = np.array([[m - np.exp(ln[ws == w].min()), np.exp(ln[ws == w].max()) - m] for w, m in zip(uw, mid)]).T
        ax.errorbar(uw, mid, yerr=span, fmt="o", ms=3.5, color=color, alpha=0.8, capsize=2, zorder=3)
        style = "-" if L["exponent_source"] == "measured" else ":"
        label = f"{name} (g={L['g_used']:.2f}{', theory' if L['exponent_source'] == 'theory' else ''})"
        ax.plot(grid, [law.at(n) for n in grid], style, color=color, lw=1.4, label=label if len(layers) <= 12 else None)
        for key, marker in zip(keys, "o^s*Dv"):
            w = L["underflow_width"][key]
            if w is not None and math.isfinite(w) and lo <= w <= hi:
                ax.plot([w], [level[key]], marker, color=color, ms=7, mec="black", mew=0.6, zorder=4)
    if len(layers) > 12:
        for kind, n in by_type.items():
            ax.plot([], [], color=cmap[kind](0.8), label=f"{kind} ({n} tensors)")
    for key, shade, marker in zip(keys, np.linspace(0.75, 0.2, len(keys)), "o^s*Dv"):
        ax.axhline(level[key], color=str(shade), ls="--", lw=1)
        ax.plot([], [], ls="--", lw=1, color=str(shade), marker=marker, mfc="white", mec="black",
                label=f"eps/{meets} = {float(key):.0%} (sqrt(v) = {level[key]:.0e}); marker: crossing")
    ax.axvline(report["target_width"], color="crimson", lw=1, ls="-.", label=f"target width {report['target_width']:,.0f}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width n")
    ax.set_ylabel("sqrt(v) RMS (or grad RMS)")
    ax.set_title(f"{report['optimizer']} eps = {eps:.0e}: where eps meets {meets} (markers: predicted crossing widths)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)
