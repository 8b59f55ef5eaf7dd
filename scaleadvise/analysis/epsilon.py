"""When the optimizer's epsilon swamps the gradients, per layer (Everett et al. 2024, §4.3, App. F).

Adam's update is lr · m / (sqrt(v) + eps). Gradients shrink with width at a per-layer
rate, grad ~ n^-g_l (Table 1's gradient column, B.7), so for any constant eps there
is a width past which eps dominates sqrt(v) and Adam silently becomes SGD with a
tiny LR (§4.3). Adafactor adds its eps to g² instead (v = β2 v + (1-β2)(g² + eps),
update g/sqrt(v); Shazeer & Stern 2018), so there eps meets v = s², not s: the
comparison is eps/s² and per-layer epsilon scales as (n/b)^-2g, not (n/b)^-g.
This module

* fits the measured gradient scale per layer, s_l(n) = C_l · n^-g_l, by log–log
  least squares with one point per *run* (a width × seed): a run's checkpoints share
  its initialisation and data order, so they are not independent replicates and
  never count as such in an interval (issue 10, item 8);
* compares the measured g with the theory's where the theory speaks: Table 1's g is
  the gradient at initialisation (B.7; during training the readout may grow and move
  it, B.13), so the comparison uses each run's earliest logged step (step 1 of the
  emitted script), not the average over training;
* predicts the width at which eps/s_l(n) (eps/s_l(n)² for Adafactor) reaches given
  ratios (1%, 10%, 100%), in closed form in log space, and the effective LR factor at
  a target width;
* predicts the width at which v = s² itself falls below the smallest normal number of
  the optimizer-state dtype, where no epsilon choice helps;
* recommends, per layer and overall: keep the constant, a smaller constant, per-layer
  epsilon eps_l = base_eps · (n/b)^-g_l (§4.3, Yang & Littwin 2023; ^-2g_l for
  Adafactor), or Adam-atan2 (C.5), with the reason.

s is the RMS of sqrt(v) when measured (``sqrt_v_rms``), else the gradient RMS: v is an
average of g², so its square root tracks the gradient RMS. The model-level prediction
(how much loss eps costs, from the logged first-order decrease) is in
``scaleadvise.analysis.epsilon_model``.
"""

from typing import Mapping, Sequence

from scaleadvise.analysis.epsilon_data import LayerSamples, layer_type_of, load_gradients, pooled_runs_note  # noqa: F401
from scaleadvise.errors import UserError

from scaleadvise.analysis.epsilon_advice import (  # noqa: F401  (also the CLI's)
    Context, Recommendation, floor_one_digit, per_layer_base_eps, prescribe_command, recommend)
from scaleadvise.analysis.epsilon_laws import (  # noqa: F401  (also the CLI's and the examples')
    DEFAULT_THRESHOLDS, MAX_WIDTH, MIN_EPS_BY_PLACEMENT, SMALLEST_NORMAL, SMALLEST_TESTED_EPS, GradientLaw,
    anchored_gradient_law, crossing_width, eps_ratio, fit_gradient_law, lr_factor, run_points, v_underflow_width)


# --------------------------------------------------------------------------- theory exponents


def theory_gradient_exponents(param: str) -> dict[str, float]:
    """g per layer type at init for a named parameterization (Table 1 'Gradient', B.7).

    These are the exponents `prescribe --eps per-layer` scales epsilon with (§4.3).
    """
    from scaleadvise.core.parameterizations import get_parameterization
    from scaleadvise.core.theory import gradient_exponents

    p = get_parameterization(param)
    return dict(gradient_exponents(p.a, p.b))


def check_optimizer(optim: str) -> str:
    """Epsilon analysis applies to eps added to sqrt(v) (Adam family) or to g² (Adafactor)."""
    from scaleadvise.core.optimizers import OPTIMIZERS, get_optimizer

    opt = get_optimizer(optim)  # unknown names -> UserError listing the known ones
    if opt.eps is None:
        with_eps = ", ".join(name for name, o in OPTIMIZERS.items() if o.eps is not None)
        raise UserError(f"--optim: {opt.name} has no epsilon in its update; nothing to predict (use {with_eps})")
    return opt.name


def default_eps(optim: str) -> tuple[float, float]:
    """(the eps to analyse when --eps is not given: the optimizer's Table C2 default, as
    prescribe uses; the smallest constant to recommend)."""
    from scaleadvise.core.optimizers import get_optimizer

    opt = get_optimizer(optim)
    return opt.default_eps, MIN_EPS_BY_PLACEMENT[opt.eps]


# --------------------------------------------------------------------------- analysis


def _threshold_key(t: float) -> str:
    return f"{t:g}"


def layer_law(s: LayerSamples, g_theory: float | None, source: str, confidence: float) -> tuple[GradientLaw, GradientLaw | None]:
    """(law used for predictions, fit of grad_rms or None) for one layer, over every row.

    One width: no exponent can be measured; extrapolate with the theory's g (Table 1)
    when the parameterization is known, otherwise say what to pass.
    """
    if len(set(s.widths)) >= 2:
        grad_fit = fit_gradient_law(s.widths, s.grad_rms, s.run, confidence)
        if s.scale_column == "grad_rms":
            return grad_fit, grad_fit
        return fit_gradient_law(s.widths, s.scale, s.run, confidence), grad_fit
    if g_theory is None:
        raise UserError(
            f"{source}: layer {s.name!r} was measured at one width ({s.widths[0]:g}) only, so no exponent can be "
            f"fitted; pass --param (stp, ntk, mup, mfp, umup) to extrapolate with the theory's gradient exponent, "
            f"or measure a second width"
        )
    return anchored_gradient_law(s.widths[0], s.scale, g_theory), None


def early_law(s: LayerSamples, early_step: float | None, confidence: float) -> tuple[GradientLaw | None, list[float]]:
    """Fit of grad_rms at the early steps (``LayerSamples.early_rows``) and the steps used.

    (None, []) without steps or with fewer than two widths among the early rows.
    """
    rows = s.early_rows(early_step)
    if not rows:
        return None, []
    widths = [s.widths[i] for i in rows]
    steps = sorted({float(s.step[i]) for i in rows})  # type: ignore[arg-type]
    if len(set(widths)) < 2:
        return None, steps
    law = fit_gradient_law(widths, [s.grad_rms[i] for i in rows], [s.run[i] for i in rows], confidence)
    return law, steps


def _inside(ci: tuple[float, float] | None, g: float | None) -> bool | None:
    return None if (ci is None or g is None) else bool(ci[0] - 1e-12 <= g <= ci[1] + 1e-12)


def analyze(
    samples: Mapping[str, LayerSamples],
    ctx: Context,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    confidence: float = 0.95,
    source: str = "input",
    early_step: float | None = None,
    model: object | None = None,
) -> dict:
    """The whole `scaleadvise epsilon` report as a JSON-ready dict (docs/CONTRACTS.md).

    Fits (every interval clustered by run): the law of s used for predictions over every
    row (training), the grad_rms law over every row (``g_measured``), and the grad_rms
    law at the early steps (``g_early``), the one compared with the theory's g.
    ``model`` (an ``epsilon_model.Request``) adds the model-level prediction from the
    decrease columns (``model_prediction``); when it says eps stays under its budget
    past the target (interval included), the overall advice is to keep eps.
    """
    if not samples:
        raise UserError(f"{source}: no gradient measurements (give a table or --grad-rms LAYER=VALUE@WIDTH)")
    p = ctx.power
    g_by_type = theory_gradient_exponents(ctx.param) if ctx.param else None
    laws: dict[str, GradientLaw] = {}
    g_theory: dict[str, float] = {}
    layers: dict[str, dict] = {}
    early_off: list[str] = []  # theory outside the early-step interval
    drift: list[str] = []  # theory outside the training interval of s (per-layer eps drifts)
    no_steps = False
    for name, s in samples.items():
        g_th = None if g_by_type is None else g_by_type[s.layer_type]
        law, grad_fit = layer_law(s, g_th, source, confidence)
        laws[name] = law
        if g_th is not None:
            g_theory[name] = g_th
        ci = None if grad_fit is None else grad_fit.g_ci
        early, steps = early_law(s, early_step, confidence) if grad_fit is not None else (None, [])
        if grad_fit is not None and s.early_rows(early_step) is None:
            no_steps = True
        compared = early if early is not None else (grad_fit if not steps else None)
        agrees = _inside(None if compared is None else compared.g_ci, g_th)
        if agrees is False:
            early_off.append(name)
        if law.source == "measured" and _inside(law.g_ci, g_th) is False:
            drift.append(name)
        t = ctx.target_width
        ratio_t = eps_ratio(law, ctx.eps, t, p)
        layers[name] = {
            "layer": name,
            "layer_type": s.layer_type,
            "widths": sorted(set(s.widths)),
            "n_points": len(s.widths),
            "n_runs": s.n_runs(),
            "scale_column": s.scale_column,
            "exponent_source": law.source,
            "g_measured": None if grad_fit is None else grad_fit.g,
            "g_measured_ci": None if ci is None else list(ci),
            "g_early": None if early is None else early.g,
            "g_early_ci": None if early is None or early.g_ci is None else list(early.g_ci),
            "early_steps": steps,
            "g_theory": g_th,
            "g_agrees_with_theory": agrees,
            "g_compared_at": "early" if early is not None else ("all rows" if compared is not None else None),
            "g_used": law.g,
            "g_used_ci": None if law.g_ci is None else list(law.g_ci),
            "sqrt_v_at_base_width": law.at(ctx.base_width),
            "eps_ratio_at_base_width": eps_ratio(law, ctx.eps, ctx.base_width, p),
            "underflow_width": {_threshold_key(r): crossing_width(law, ctx.eps, r, p) for r in thresholds},
            "v_underflow_width": {d: v_underflow_width(law, d) for d in SMALLEST_NORMAL},
            "target": {"width": t, "sqrt_v": law.at(t), "eps_ratio": ratio_t, "lr_factor": lr_factor(ratio_t, p)},
        }
    for name in layers:
        one_th = {name: g_theory[name]} if name in g_theory else None
        rec = recommend({name: laws[name]}, one_th, ctx, [name] if name in drift else [])
        layers[name]["recommendation"] = rec.as_dict()
    overall = recommend(laws, g_theory if g_by_type is not None else None, ctx, drift)
    notes = list(ctx.notes)
    prediction = None
    if model is not None:
        from scaleadvise.analysis.epsilon_model import predict

        prediction = predict(samples, model)  # type: ignore[arg-type]
        if prediction is not None and prediction.get("verdict", {}).get("action") == "keep" \
                and overall.action in ("smaller-constant", "per-layer"):
            overall = Recommendation("keep", f"{prediction['verdict']['text']} (model level, "
                                             f"{prediction['predictor']}); per tensor: {overall.reason}",
                                     eps=ctx.eps, safe_up_to_width=prediction["crossing_width"])
    pooled = pooled_runs_note(samples)
    if pooled:
        notes.append(pooled)
    theory_layers = [k for k, v in layers.items() if v["exponent_source"] == "theory"]
    if theory_layers:
        notes.append(f"measured at one width: {', '.join(theory_layers)} extrapolated with the theory's g "
                     f"for {ctx.param} (Table 1 gradient column, B.7), not a measured exponent")
    if no_steps and g_by_type is not None:
        notes.append("no step column: the theory's g (gradients at initialisation, B.7) is compared with the fit "
                     "over every row, which may average over training; log step 1 to compare where the theory speaks")
    for name in early_off:
        L = layers[name]
        g, ci = (L["g_early"], L["g_early_ci"]) if L["g_early"] is not None else (L["g_measured"], L["g_measured_ci"])
        at = f"at step(s) {', '.join(f'{x:g}' for x in L['early_steps'])}" if L["early_steps"] else "over every row"
        notes.append(f"{name}: measured g = {g:.3g} [{ci[0]:.3g}, {ci[1]:.3g}] {at} disagrees with the theory's "
                     f"g = {L['g_theory']:g} for {ctx.param} (B.7)")
    moved = [k for k in drift if k not in early_off]
    if moved:
        notes.append(f"during training sqrt(v) scales differently from the theory's g (the readout moves the "
                     f"gradients, B.13) for {', '.join(moved)}; the fits over training are used for the crossings")
    if model is not None and prediction is None:
        notes.append("no decrease columns (decrease, decrease_no_eps): no model-level prediction; the grads.csv "
                     "of an `emit-train` script logs them")
    return {
        "eps": ctx.eps,
        "optimizer": ctx.optim,
        "parameterization": ctx.param,
        "base_width": ctx.base_width,
        "target_width": ctx.target_width,
        "thresholds": list(thresholds),
        "safe_ratio": ctx.safe_ratio,
        "state_dtype": ctx.state_dtype,
        "confidence": confidence,
        "replication_unit": "run (width × seed/run column); checkpoints of one run are averaged, never replicates",
        "eps_added_to": "v = g²" if p == 2 else "sqrt(v)",
        "ratio": f"eps/{ctx.meets}",
        "per_layer_eps_exponent": None if g_by_type is None else {k: -p * g for k, g in g_by_type.items()},
        "g_theory_by_type": g_by_type,
        "layers": layers,
        "earliest_underflow_width": {
            _threshold_key(r): min(L["underflow_width"][_threshold_key(r)] for L in layers.values())
            for r in thresholds
        },
        "recommendation": overall.as_dict(),
        "model_prediction": prediction,
        "notes": notes,
    }
