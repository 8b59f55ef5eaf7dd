"""When Adam's epsilon swamps the gradients, per layer (Everett et al. 2024, §4.3, App. F).

Adam's update is lr · m / (sqrt(v) + eps). Gradients shrink with width at a per-layer
rate, grad ~ n^-g_l (Table 1's gradient column, B.7), so for any constant eps there
is a width past which eps dominates sqrt(v) and Adam silently becomes SGD with a
tiny LR (§4.3). This module

* fits the measured gradient scale per layer, s_l(n) = C_l · n^-g_l, by log–log
  least squares with a t-interval on g (rows at several steps/seeds are replicates);
* predicts the width at which eps/s_l(n) reaches given ratios (1%, 10%, 100%), in
  closed form in log space, and the effective LR factor s/(s + eps) at a target width;
* predicts the width at which v = s² itself falls below the smallest normal number of
  the optimizer-state dtype, where no epsilon choice helps;
* recommends, per layer and overall: keep the constant, a smaller constant, per-layer
  epsilon eps_l = base_eps · (n/b)^-g_l (§4.3, eq. in §4.3; Yang & Littwin 2023), or
  Adam-atan2 (C.5), with the reason.

s is the RMS of sqrt(v) when measured (``sqrt_v_rms``), else the gradient RMS: v is an
average of g², so its square root tracks the gradient RMS.
"""

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from scaleadvise.core.classify import layer_type_of  # noqa: F401  (used by cli/epsilon and align)
from scaleadvise.errors import UserError

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.01, 0.1, 1.0)
# Smallest *normal* number of each optimizer-state dtype. bf16 keeps fp32's 8-bit
# exponent (same range, fewer mantissa bits); fp16 has a 5-bit exponent, 2^-14 ≈ 6.1e-5
# (numpy.finfo(float16).tiny; torch.finfo(bfloat16).tiny == 2^-126).
SMALLEST_NORMAL: dict[str, float] = {"fp32": 2.0**-126, "bf16": 2.0**-126, "fp16": 2.0**-14}
# The smallest constant eps the paper found to help rather than hurt (§4.3, F2: 1e-15
# improves NTK/MFP; F1: 1e-30 harms every parameterization at D = 16384).
SMALLEST_TESTED_EPS = 1e-15
ADAM_STYLE_OPTIMIZERS = ("adam", "adamw", "adam-ps")
NO_EPS_OPTIMIZERS = ("sgd", "adam-atan2", "lion", "sign-sgd")
MAX_WIDTH = 2.0**40  # ~1e12: past any model anyone trains; crossings beyond it read "any width"


# --------------------------------------------------------------------------- power laws


@dataclass(frozen=True)
class GradientLaw:
    """s(n) = exp(log_c) · n^-g: a per-layer gradient (or sqrt(v)) scale vs width."""

    g: float
    log_c: float
    g_ci: tuple[float, float] | None = None  # interval on g; None with too few points
    source: str = "measured"  # "measured" (fitted g) or "theory" (g from Table 1, one width)

    def at(self, n: float) -> float:
        return math.exp(self.log_c - self.g * math.log(n))

    def width_where(self, level: float) -> float:
        """The width n with s(n) = level, solved in log space: ln n = (ln C - ln level) / g.

        inf when s never falls below ``level`` as width grows (g < 0, or g = 0 with s
        at or above it) or only past MAX_WIDTH, where no model is trained and a power law
        fitted over a few doublings says nothing; 0 when g = 0 and s is already below it.
        """
        gap = self.log_c - math.log(level)  # ln s(1) - ln level
        if self.g <= 0:  # s never shrinks with width; at exactly ``level`` it has not fallen below
            return 0.0 if (self.g == 0 and gap < -1e-9) else math.inf
        exponent = gap / self.g
        return math.exp(exponent) if exponent < math.log(MAX_WIDTH) else math.inf


def fit_gradient_law(
    widths: Sequence[float],
    values: Sequence[float],
    replicates: Sequence[object] | None = None,
    confidence: float = 0.95,
) -> GradientLaw:
    """Log–log least squares of values ∝ widths^-g, with an interval on g.

    ``replicates`` labels each row with its step/seed. When two or more replicates
    each span two widths, g is fitted per replicate and the interval is the Student-t
    interval of their mean (the spread over steps/seeds); otherwise every row is a
    point of one fit (``scaleadvise.analysis.powerlaw``) and the interval comes from its
    residuals. Needs two distinct widths.
    """
    from scaleadvise.analysis.powerlaw import fit_power_law

    law = fit_power_law(widths, values)
    if law is None:
        raise ValueError("a power-law fit needs at least two distinct widths")
    per_rep = _replicate_exponents(widths, values, replicates)
    if len(per_rep) >= 2:
        from scipy.stats import t as student_t

        k = len(per_rep)
        g = sum(per_rep) / k
        sd = math.sqrt(sum((x - g) ** 2 for x in per_rep) / (k - 1))
        half = float(student_t.ppf(0.5 + confidence / 2, k - 1)) * sd / math.sqrt(k)
        ln_n = [math.log(w) for w in widths]
        log_c = sum(math.log(v) for v in values) / len(values) + g * sum(ln_n) / len(ln_n)
        return GradientLaw(g=g, log_c=log_c, g_ci=(g - half, g + half), source="measured")
    k_ci = law.k_interval(confidence)
    ci = None if k_ci is None else (-k_ci[1], -k_ci[0])  # g = -k: the interval flips
    return GradientLaw(g=-law.k, log_c=law.log2_c * math.log(2.0), g_ci=ci, source="measured")


def _replicate_exponents(widths: Sequence[float], values: Sequence[float], replicates: Sequence[object] | None) -> list[float]:
    """g of each replicate (step/seed) that spans at least two widths, all fitted at once."""
    import numpy as np

    from scaleadvise.analysis.powerlaw import batched_slopes

    if replicates is None or len(set(replicates)) < 2:
        return []
    rep_codes: dict[object, int] = {}
    r_idx = np.array([rep_codes.setdefault(r, len(rep_codes)) for r in replicates])
    w_unique, w_idx = np.unique(np.asarray(widths, dtype=float), return_inverse=True)
    total = np.zeros((len(rep_codes), len(w_unique)))
    count = np.zeros_like(total)
    np.add.at(total, (r_idx, w_idx), np.log2(np.asarray(values, dtype=float)))
    np.add.at(count, (r_idx, w_idx), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        log2_y = np.where(count > 0, total / count, np.nan)  # duplicates at a (replicate, width) averaged
    k, _ = batched_slopes(np.log2(w_unique), log2_y)
    return [-float(x) for x in k if np.isfinite(x)]


def anchored_gradient_law(width: float, values: Sequence[float], g: float) -> GradientLaw:
    """A law with exponent g (from theory) through the geometric mean of values at one width."""
    log_mean = sum(math.log(v) for v in values) / len(values)
    return GradientLaw(g=g, log_c=log_mean + g * math.log(width), g_ci=None, source="theory")


# --------------------------------------------------------------------------- predictions


def eps_ratio(law: GradientLaw, eps: float, n: float) -> float:
    """eps / sqrt(v) at width n."""
    return eps / law.at(n)


def crossing_width(law: GradientLaw, eps: float, ratio: float) -> float:
    """Width at which eps reaches ``ratio`` × sqrt(v): s(n) = eps / ratio."""
    return law.width_where(eps / ratio)


def lr_factor(ratio: float) -> float:
    """Effective LR multiplier of update ≈ lr·m/(sqrt(v)+eps) vs eps = 0: s/(s+eps) = 1/(1+ratio)."""
    return 1.0 / (1.0 + ratio)


def v_underflow_width(law: GradientLaw, dtype: str) -> float:
    """Width at which v = s² drops below the dtype's smallest normal number (s < sqrt(tiny))."""
    return law.width_where(math.sqrt(SMALLEST_NORMAL[dtype]))


def floor_one_digit(x: float) -> float:
    """Round down to one significant digit (3.7e-12 -> 3e-12): a base eps a person can type."""
    e = 10.0 ** math.floor(math.log10(x))
    return float(f"{math.floor(x / e * (1 + 1e-12)) * e:.0e}")


def per_layer_base_eps(
    laws: Mapping[str, GradientLaw],
    g_theory: Mapping[str, float],
    eps: float,
    safe_ratio: float,
    base_width: float,
    target_width: float,
) -> float:
    """Base eps X for eps_l(n) = X · (n/b)^-g_l (theory g, as `prescribe --eps per-layer`).

    Keeps each layer's eps/sqrt(v) no larger than the ratio measured at the base width
    with the current eps (known to train), and never above ``safe_ratio``, everywhere in
    [b, target]. With the measured g equal to theory the ratio is constant and
    X = min(eps, safe_ratio · min_l s_l(b)); otherwise the drift (n/b)^(g_meas - g_theory)
    is covered up to the target. The ratio is monotone in n, so the ends suffice.
    """
    bound = math.inf
    for name, law in laws.items():
        keep = min(eps_ratio(law, eps, base_width), safe_ratio)
        for n in (base_width, max(target_width, base_width)):
            bound = min(bound, keep * law.at(n) * (n / base_width) ** g_theory[name])
    return bound


# --------------------------------------------------------------------------- recommendation


@dataclass
class Recommendation:
    action: str  # "keep" | "smaller-constant" | "per-layer" | "adam-atan2"
    reason: str
    eps: float | None = None  # the constant to use (keep / smaller-constant)
    base_eps: float | None = None  # per-layer
    safe_up_to_width: float | None = None
    command: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Context:
    """What every recommendation needs besides the fitted laws."""

    eps: float
    safe_ratio: float
    target_width: float
    base_width: float
    state_dtype: str = "fp32"
    param: str | None = None
    optim: str = "adam"
    min_eps: float = SMALLEST_TESTED_EPS
    notes: list[str] = field(default_factory=list)


def _fmt_w(n: float) -> str:
    if not math.isfinite(n):
        return "any width"
    return f"{n:,.0f}" if n >= 1 else f"{n:.2g}"


def prescribe_command(ctx: Context, base_eps: float) -> str | None:
    if ctx.param is None:
        return None
    return (f"scaleadvise prescribe --param {ctx.param} --optim {ctx.optim} --width {ctx.target_width:.0f} "
            f"--base-width {ctx.base_width:.0f} --eps per-layer --base-eps {base_eps:.0e}")


def recommend(
    laws: Mapping[str, GradientLaw],
    g_theory: Mapping[str, float] | None,
    ctx: Context,
    disagree: Sequence[str] = (),
) -> Recommendation:
    """Keep, a smaller constant, per-layer eps or Adam-atan2 for a set of layers (one or all).

    Order of preference: the least change that keeps eps/sqrt(v) <= safe_ratio at the
    target on every layer. A smaller constant only down to ``min_eps`` (the paper's
    tested 1e-15: smaller ones destabilize training, F1). Per-layer eps needs the
    parameterization (its g_l, §4.3). Adam-atan2 (C.5) removes eps entirely; it is the
    answer when v itself underflows the state dtype (no eps fixes a v of 0 — Adam-atan2
    is scale-invariant, so the loss can be scaled up to lift v back into range) or
    when neither of the others applies.
    """
    names = list(laws)
    t, r = ctx.target_width, ctx.safe_ratio
    safe_width = min(crossing_width(laws[k], ctx.eps, r) for k in names)
    worst = max(names, key=lambda k: eps_ratio(laws[k], ctx.eps, t))
    worst_ratio = eps_ratio(laws[worst], ctx.eps, t)
    v_width = min(v_underflow_width(laws[k], ctx.state_dtype) for k in names)
    who = "" if len(names) == 1 else f" ({worst})"
    state = ""
    if v_width <= t:
        fp32_width = min(v_underflow_width(laws[k], "fp32") for k in names)
        if fp32_width <= t:
            return Recommendation(
                "adam-atan2",
                f"v = g² falls below the smallest normal fp32 number at width {_fmt_w(fp32_width)} <= "
                f"{_fmt_w(t)}: no epsilon fixes an underflowed v; Adam-atan2 (C.5) is scale-invariant, so "
                f"the loss can be scaled up to lift v into range without changing the update",
                safe_up_to_width=safe_width,
            )
        state = (f"keep the optimizer state in fp32: v = g² underflows {ctx.state_dtype} from width "
                 f"{_fmt_w(v_width)}, fp32 only from {_fmt_w(fp32_width)}; then: ")
    if worst_ratio <= r:
        return Recommendation(
            "keep",
            f"{state}eps = {ctx.eps:.0e} stays below {r:.0%} of sqrt(v) up to width {_fmt_w(safe_width)}"
            f"{who}, beyond the target {_fmt_w(t)} (LR reduced by at most {1 - lr_factor(worst_ratio):.2%})",
            eps=ctx.eps, safe_up_to_width=safe_width,
        )
    over = (f"{state}at width {_fmt_w(t)} eps = {ctx.eps:.0e} is {worst_ratio:.3g}× sqrt(v){who}, "
            f"cutting its effective LR to {lr_factor(worst_ratio):.3g}× (safe only up to width {_fmt_w(safe_width)})")
    needed = r * min(laws[k].at(t) for k in names)
    smaller = 10.0 ** math.floor(math.log10(needed))  # a power of ten a person can type
    if smaller >= ctx.min_eps:
        return Recommendation(
            "smaller-constant",
            f"{over}; eps = {smaller:.0e} keeps it below {r:.0%} at the target and is no smaller than "
            f"{ctx.min_eps:.0e}, the smallest constant the paper found safe (§4.3, App. F)",
            eps=smaller, safe_up_to_width=min(crossing_width(laws[k], smaller, r) for k in names),
        )
    if g_theory is not None:
        base = floor_one_digit(per_layer_base_eps(laws, g_theory, ctx.eps, r, ctx.base_width, t))
        # With eps_l = X·(n/b)^-g_theory the ratio drifts only as (n/b)^(g_measured - g_theory).
        drift = {k: GradientLaw(laws[k].g - g_theory[k], laws[k].log_c - g_theory[k] * math.log(ctx.base_width))
                 for k in names}
        caveat = ""
        if disagree:
            caveat = (f"; measured g disagrees with theory for {', '.join(disagree)}: this base eps covers "
                      f"the drift up to width {_fmt_w(t)} only")
        return Recommendation(
            "per-layer",
            f"{over}; a constant would have to be {needed:.1e} (< {ctx.min_eps:.0e}, too small, App. F); "
            f"eps_l = base_eps·(n/{ctx.base_width:.0f})^-g_l (§4.3) with base_eps = {base:.0e} keeps "
            f"eps/sqrt(v) at the measured ratio (at most {r:.0%}){caveat}; or use Adam-atan2 (C.5)",
            base_eps=base, safe_up_to_width=min(crossing_width(drift[k], base, r) for k in names),
            command=prescribe_command(ctx, base),
        )
    return Recommendation(
        "adam-atan2",
        f"{over}; a constant would have to be {needed:.1e} (< {ctx.min_eps:.0e}, too small, App. F) and "
        f"per-layer epsilon needs the parameterization's g_l (pass --param); Adam-atan2 (C.5) has no epsilon",
        safe_up_to_width=safe_width,
    )


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
    """Epsilon analysis applies to Adam-style eps added to sqrt(v)."""
    from scaleadvise.core.optimizers import optimizer_family

    key = optim.strip().lower().replace("_", "-")
    optimizer_family(key)  # unknown names -> UserError listing the known ones
    if key in NO_EPS_OPTIMIZERS:
        raise UserError(f"--optim: {key} has no epsilon in its update; nothing to predict (use adam, adamw or adam-ps)")
    if key not in ADAM_STYLE_OPTIMIZERS:
        raise UserError(f"--optim: {key} adds epsilon to g² rather than sqrt(v); this analysis covers adam, adamw, adam-ps")
    return key


# --------------------------------------------------------------------------- input


@dataclass
class LayerSamples:
    """Every measurement of one layer (tensor name or layer type)."""

    name: str
    layer_type: str
    widths: list[float] = field(default_factory=list)
    grad_rms: list[float] = field(default_factory=list)
    sqrt_v_rms: list[float | None] = field(default_factory=list)
    replicate: list[object] = field(default_factory=list)  # (step, seed) of each row

    def add(self, width: float, grad_rms: float, sqrt_v_rms: float | None = None, replicate: object = ()) -> None:
        self.widths.append(width)
        self.grad_rms.append(grad_rms)
        self.sqrt_v_rms.append(sqrt_v_rms)
        self.replicate.append(replicate)

    @property
    def scale_column(self) -> str:
        """sqrt_v_rms when every row has it (it is what eps is added to), else grad_rms."""
        have = self.sqrt_v_rms and all(v is not None for v in self.sqrt_v_rms)
        return "sqrt_v_rms" if have else "grad_rms"

    @property
    def scale(self) -> list[float]:
        return list(self.sqrt_v_rms) if self.scale_column == "sqrt_v_rms" else list(self.grad_rms)  # type: ignore[arg-type]


def gradient_columns() -> list:
    from scaleadvise.analysis.tables import Column

    return [
        Column("width", ("d_model", "model_dim", "n", "dim"), positive=True),
        Column("layer", ("tensor", "name", "param", "parameter"), numeric=False),
        Column("grad_rms", ("grad", "grad_norm_rms", "gradient_rms"), positive=True),
        # Missing cells mean "not measured" (e.g. SGD rows); that layer falls back to grad_rms.
        Column("sqrt_v_rms", ("sqrtv_rms", "sqrt_v", "v_sqrt_rms"), required=False, positive=True,
               allow_nonfinite=True),
        Column("step", ("iteration", "iter"), required=False),
        Column("seed", (), required=False),
    ]


def load_gradients(path: str, overrides: Mapping[str, str | None] | None = None) -> dict[str, LayerSamples]:
    """Read a gradient table (docs/CONTRACTS.md: width, layer, grad_rms, optional sqrt_v_rms, step)."""
    import numpy as np

    from scaleadvise.analysis.tables import read_table

    table = read_table(path, gradient_columns(), overrides)
    frame = table.frame
    has_v = "sqrt_v_rms" in frame.columns
    if has_v:
        v = frame["sqrt_v_rms"].to_numpy(dtype=float)
        inf = np.isinf(v)
        if inf.any():
            i = int(np.flatnonzero(inf)[0])
            raise UserError(f"{path}: line {i + 2}, column 'sqrt_v_rms': {v[i]} is not finite")
    names = frame["layer"].map(lambda x: "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x).strip())
    empty = (names == "").to_numpy()
    if empty.any():
        raise UserError(f"{path}: line {int(np.flatnonzero(empty)[0]) + 2}, column 'layer': empty layer name")
    rep_cols = [c for c in ("step", "seed") if c in frame.columns]
    replicate = list(zip(*(frame[c].tolist() for c in rep_cols))) if rep_cols else [()] * len(frame)
    sqrt_v = frame["sqrt_v_rms"].tolist() if has_v else [math.nan] * len(frame)
    layers: dict[str, LayerSamples] = {}
    for name, rows in names.groupby(names, sort=False).indices.items():
        where = f"{path}: line {int(rows[0]) + 2}, column 'layer'"
        s = layers[name] = LayerSamples(name, layer_type_of(name, where))
        s.widths = frame["width"].to_numpy()[rows].tolist()
        s.grad_rms = frame["grad_rms"].to_numpy()[rows].tolist()
        s.sqrt_v_rms = [None if math.isnan(sqrt_v[i]) else sqrt_v[i] for i in rows]
        s.replicate = [replicate[i] for i in rows]
    return layers


# --------------------------------------------------------------------------- analysis


def _threshold_key(t: float) -> str:
    return f"{t:g}"


def layer_law(s: LayerSamples, g_theory: float | None, source: str, confidence: float) -> tuple[GradientLaw, GradientLaw | None]:
    """(law used for predictions, fit of grad_rms or None) for one layer.

    One width: no exponent can be measured; extrapolate with the theory's g (Table 1)
    when the parameterization is known, otherwise say what to pass.
    """
    if len(set(s.widths)) >= 2:
        grad_fit = fit_gradient_law(s.widths, s.grad_rms, s.replicate, confidence)
        if s.scale_column == "grad_rms":
            return grad_fit, grad_fit
        return fit_gradient_law(s.widths, s.scale, s.replicate, confidence), grad_fit
    if g_theory is None:
        raise UserError(
            f"{source}: layer {s.name!r} was measured at one width ({s.widths[0]:g}) only, so no exponent can be "
            f"fitted; pass --param (stp, ntk, mup, mfp, umup) to extrapolate with the theory's gradient exponent, "
            f"or measure a second width"
        )
    return anchored_gradient_law(s.widths[0], s.scale, g_theory), None


def analyze(
    samples: Mapping[str, LayerSamples],
    ctx: Context,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    confidence: float = 0.95,
    source: str = "input",
) -> dict:
    """The whole `scaleadvise epsilon` report as a JSON-ready dict (docs/CONTRACTS.md)."""
    if not samples:
        raise UserError(f"{source}: no gradient measurements (give a table or --grad-rms LAYER=VALUE@WIDTH)")
    g_by_type = theory_gradient_exponents(ctx.param) if ctx.param else None
    laws: dict[str, GradientLaw] = {}
    g_theory: dict[str, float] = {}
    layers: dict[str, dict] = {}
    disagree: list[str] = []
    for name, s in samples.items():
        g_th = None if g_by_type is None else g_by_type[s.layer_type]
        law, grad_fit = layer_law(s, g_th, source, confidence)
        laws[name] = law
        if g_th is not None:
            g_theory[name] = g_th
        ci = None if grad_fit is None else grad_fit.g_ci
        agrees = None if (ci is None or g_th is None) else bool(ci[0] - 1e-12 <= g_th <= ci[1] + 1e-12)
        if agrees is False:
            disagree.append(name)
        t = ctx.target_width
        ratio_t = eps_ratio(law, ctx.eps, t)
        layers[name] = {
            "layer": name,
            "layer_type": s.layer_type,
            "widths": sorted(set(s.widths)),
            "n_points": len(s.widths),
            "scale_column": s.scale_column,
            "exponent_source": law.source,
            "g_measured": None if grad_fit is None else grad_fit.g,
            "g_measured_ci": None if ci is None else list(ci),
            "g_theory": g_th,
            "g_agrees_with_theory": agrees,
            "g_used": law.g,
            "sqrt_v_at_base_width": law.at(ctx.base_width),
            "eps_ratio_at_base_width": eps_ratio(law, ctx.eps, ctx.base_width),
            "underflow_width": {_threshold_key(r): crossing_width(law, ctx.eps, r) for r in thresholds},
            "v_underflow_width": {d: v_underflow_width(law, d) for d in SMALLEST_NORMAL},
            "target": {"width": t, "sqrt_v": law.at(t), "eps_ratio": ratio_t, "lr_factor": lr_factor(ratio_t)},
        }
    for name in layers:
        one_th = {name: g_theory[name]} if name in g_theory else None
        rec = recommend({name: laws[name]}, one_th, ctx, [name] if name in disagree else [])
        layers[name]["recommendation"] = rec.as_dict()
    overall = recommend(laws, g_theory if g_by_type is not None else None, ctx, disagree)
    notes = list(ctx.notes)
    theory_layers = [k for k, v in layers.items() if v["exponent_source"] == "theory"]
    if theory_layers:
        notes.append(f"measured at one width: {', '.join(theory_layers)} extrapolated with the theory's g "
                     f"for {ctx.param} (Table 1 gradient column, B.7), not a measured exponent")
    for name in disagree:
        L = layers[name]
        lo, hi = L["g_measured_ci"]
        notes.append(f"{name}: measured g = {L['g_measured']:.3g} [{lo:.3g}, {hi:.3g}] disagrees with the "
                     f"theory's g = {L['g_theory']:g} for {ctx.param}")
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
        "g_theory_by_type": g_by_type,
        "layers": layers,
        "earliest_underflow_width": {
            _threshold_key(r): min(L["underflow_width"][_threshold_key(r)] for L in layers.values())
            for r in thresholds
        },
        "recommendation": overall.as_dict(),
        "notes": notes,
    }
