"""What to do about epsilon: keep it, a smaller constant, per-layer epsilon, or Adam-atan2
(Everett et al. 2024 §4.3, App. F, C.5), from the per-layer width laws of
``scaleadvise.analysis.epsilon``, with the exact ``scaleadvise prescribe`` command that applies it."""

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from scaleadvise.analysis.epsilon_laws import (SMALLEST_TESTED_EPS, GradientLaw, crossing_width, eps_ratio, lr_factor,
                                          v_underflow_width)


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
    power: int = 1,
) -> float:
    """Base eps X for eps_l(n) = X · (n/b)^(-power·g_l) (theory g, as `prescribe --eps per-layer`).

    Keeps each layer's eps/s^power no larger than the ratio measured at the base width
    with the current eps (known to train), and never above ``safe_ratio``, everywhere in
    [b, target]. power = 1 for Adam (eps meets sqrt(v) ~ n^-g), 2 for Adafactor (eps
    meets v ~ n^-2g). With the measured g equal to theory the ratio is constant and
    X = min(eps, safe_ratio · min_l s_l(b)^power); otherwise the drift
    (n/b)^(power·(g_meas - g_theory)) is covered up to the target. The ratio is monotone
    in n, so the ends suffice.
    """
    bound = math.inf
    for name, law in laws.items():
        keep = min(eps_ratio(law, eps, base_width, power), safe_ratio)
        for n in (base_width, max(target_width, base_width)):
            bound = min(bound, keep * law.at(n) ** power * (n / base_width) ** (power * g_theory[name]))
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

    @property
    def power(self) -> int:
        """What eps is added to: s = sqrt(v) (1: Adam family) or v = s² (2: Adafactor)."""
        from scaleadvise.core.optimizers import get_optimizer

        return 2 if get_optimizer(self.optim).eps == "v" else 1

    @property
    def meets(self) -> str:
        return "v" if self.power == 2 else "sqrt(v)"


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

    Order of preference: the least change that keeps eps/s^p <= safe_ratio at the
    target on every layer (p = ctx.power: eps meets sqrt(v) in Adam, v in Adafactor). A
    smaller constant only down to ``min_eps`` (the paper's tested 1e-15: smaller ones
    destabilize training, F1). Per-layer eps needs the parameterization (its g_l, §4.3),
    and scales as (n/b)^(-p·g_l). Adam-atan2 (C.5) removes eps entirely; it is the
    answer when v itself underflows the state dtype (no eps fixes a v of 0 — Adam-atan2
    is scale-invariant, so the loss can be scaled up to lift v back into range) or
    when neither of the others applies.
    """
    names = list(laws)
    t, r, p, meets = ctx.target_width, ctx.safe_ratio, ctx.power, ctx.meets
    safe_width = min(crossing_width(laws[k], ctx.eps, r, p) for k in names)
    worst = max(names, key=lambda k: eps_ratio(laws[k], ctx.eps, t, p))
    worst_ratio = eps_ratio(laws[worst], ctx.eps, t, p)
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
            f"{state}eps = {ctx.eps:.0e} stays below {r:.0%} of {meets} up to width {_fmt_w(safe_width)}"
            f"{who}, beyond the target {_fmt_w(t)} (LR reduced by at most {1 - lr_factor(worst_ratio, p):.2%})",
            eps=ctx.eps, safe_up_to_width=safe_width,
        )
    over = (f"{state}at width {_fmt_w(t)} eps = {ctx.eps:.0e} is {worst_ratio:.3g}× {meets}{who}, "
            f"cutting its effective LR to {lr_factor(worst_ratio, p):.3g}× (safe only up to width {_fmt_w(safe_width)})")
    needed = r * min(laws[k].at(t) ** p for k in names)
    smaller = 10.0 ** math.floor(math.log10(needed))  # a power of ten a person can type
    if smaller >= ctx.min_eps:
        return Recommendation(
            "smaller-constant",
            f"{over}; eps = {smaller:.0e} keeps it below {r:.0%} at the target and is no smaller than "
            f"{ctx.min_eps:.0e}, the smallest constant tested (§4.3, App. F, Table C2)",
            eps=smaller, safe_up_to_width=min(crossing_width(laws[k], smaller, r, p) for k in names),
        )
    if g_theory is not None:
        base = floor_one_digit(per_layer_base_eps(laws, g_theory, ctx.eps, r, ctx.base_width, t, p))
        # With eps_l = X·(n/b)^(-p·g_theory) the ratio drifts only as (n/b)^(p·(g_measured - g_theory)).
        drift = {k: GradientLaw(laws[k].g - g_theory[k], laws[k].log_c - g_theory[k] * math.log(ctx.base_width))
                 for k in names}
        caveat = ""
        if disagree:
            caveat = (f"; measured g during training differs from theory for {', '.join(disagree)}: this base eps "
                      f"covers the drift up to width {_fmt_w(t)} only")
        law = "-g_l" if p == 1 else "-2·g_l"
        return Recommendation(
            "per-layer",
            f"{over}; a constant would have to be {needed:.1e} (< {ctx.min_eps:.0e}, too small, App. F); "
            f"eps_l = base_eps·(n/{ctx.base_width:.0f})^({law}) (§4.3{'' if p == 1 else '; eps meets v = g²'}) "
            f"with base_eps = {base:.0e} keeps eps/{meets} at the measured ratio (at most {r:.0%}){caveat}; "
            f"or use Adam-atan2 (C.5)",
            base_eps=base, safe_up_to_width=min(crossing_width(drift[k], base, r, p) for k in names),
            command=prescribe_command(ctx, base),
        )
    return Recommendation(
        "adam-atan2",
        f"{over}; a constant would have to be {needed:.1e} (< {ctx.min_eps:.0e}, too small, App. F) and "
        f"per-layer epsilon needs the parameterization's g_l (pass --param); Adam-atan2 (C.5) has no epsilon",
        safe_up_to_width=safe_width,
    )
