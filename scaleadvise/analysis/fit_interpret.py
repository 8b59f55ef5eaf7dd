"""Relating a measured LR exponent to the theory (paper §3.3.4, §4.2, Table 1).

When a base LR beta is swept with per-layer LRs eta_l = beta * n^-c_l(applied),
layer l stays stable while eta_l <= n^-c_l(true), so the base LR may grow like
n^min_l (c_l(applied) - c_l(true)). The most restrictive layer carries the base
LR, and the theory predicts the optimal-LR exponent

    k = -max_l (c_l(true) - c_l(applied)),

with c(applied) = 0 for a global LR, Table 1's full-alignment column for
"per-layer-full" and its no-alignment column for "per-layer-none". The true
exponents depend on the alignment; following §3.3.4 we scan alpha = u in
[1/2, 1] with omega = 1/2, find the alignment whose prediction matches the
measurement, and report the per-layer exponents c(true) that would flatten the
sweep (k = 0).
"""

from typing import Protocol

import numpy as np

from scaleadvise.errors import UserError


class TheoryFlags(Protocol):
    """What the theory comparison reads of fit's options (``analysis.fit.FitOptions``)."""

    param: str | None
    optim: str | None
    setting: str | None
    scale_by: str
    target_width: float | None

SETTINGS = ("global", "per-layer-full", "per-layer-none")
ALIGNMENT_GRID = np.round(np.linspace(0.5, 1.0, 51), 4)  # alpha = u, steps of 0.01
MATCH_TOL = 0.02  # a measured k this close to a prediction counts as matched
# Columns of a sweep table that say which parameterization, optimizer and setting a group is.
_PARAM_KEYS, _OPTIM_KEYS, _SETTING_KEYS = ("param", "parameterization"), ("optim", "optimizer"), ("setting",)


def parse_setting(text: str, flag: str = "--setting") -> str:
    """Map a setting name (flag or CSV cell such as 'per_layer_full') to one of SETTINGS."""
    key = str(text).strip().lower().replace("_", "-").replace(" ", "-")
    if "global" in key:
        return "global"
    if "none" in key or "no-align" in key:
        return "per-layer-none"
    if "full" in key or key in ("per-layer", "perlayer"):
        return "per-layer-full"
    raise UserError(f"{flag}: unknown setting {text!r} (use {', '.join(SETTINGS)})")


def _exponents(param, optim: str, alpha: float) -> dict[str, float]:
    from scaleadvise.core.alignment import Alignment
    from scaleadvise.core.theory import max_stable_lr_exponents

    return dict(max_stable_lr_exponents(param.a, param.b, optim, Alignment(alpha=alpha, omega=0.5, u=alpha)).c)


def _applied(param, optim: str, setting: str) -> dict[str, float]:
    if setting == "global":
        return {"embedding": 0.0, "hidden": 0.0, "readout": 0.0}
    return _exponents(param, optim, 1.0 if setting == "per-layer-full" else 0.5)


def predicted_k(c_true: dict[str, float], c_applied: dict[str, float]) -> tuple[float, list[str]]:
    """The theory's optimal-LR exponent and the layer types that carry the base LR."""
    gaps = {t: c_true[t] - c_applied[t] for t in c_true}
    worst = max(gaps.values())
    return 0.0 - worst, [t for t, v in gaps.items() if abs(v - worst) < 1e-9]  # 0.0 - x: no "-0"


def _fmt_c(c: dict[str, float]) -> str:
    return ", ".join(f"{t} {v:g}" for t, v in c.items())


def interpret(k: float | None, k_ci: tuple[float, float] | None, param_name: str, optim: str,
              setting: str) -> dict:
    """Compare a measured exponent with the theory for one parameterization/optimizer/setting."""
    from scaleadvise.core.parameterizations import get_parameterization

    param = get_parameterization(param_name)
    applied = _applied(param, optim, setting)
    curve = []  # (alpha, predicted k, carriers, c_true)
    for alpha in ALIGNMENT_GRID:
        c_true = _exponents(param, optim, float(alpha))
        kp, carriers = predicted_k(c_true, applied)
        curve.append((float(alpha), kp, carriers, c_true))
    k_full, k_none = curve[-1][1], curve[0][1]
    out = {
        "param": param.name, "optim": optim, "setting": setting,
        "applied_c": applied,
        "predicted_lr_exponent": {"full": k_full, "none": k_none},
        "carried_by": {"full": curve[-1][2], "none": curve[0][2]},
        "c_full": curve[-1][3], "c_none": curve[0][3],
    }
    if k is None:
        out["message"] = (f"theory predicts k = {k_full:g} (full alignment) to {k_none:g} (no alignment); "
                          "no exponent was measured to compare")
        return out
    preds = np.array([p[1] for p in curve])
    gap = np.abs(preds - k)
    # Ties (k flat in alpha, e.g. the embedding carrying the base LR): take the largest
    # alignment, whose exponents are the conservative (smaller-LR) ones.
    tied = np.flatnonzero(gap <= gap.min() + 1e-9)
    i = int(tied[-1])
    alpha, kp, carriers, c_true = curve[i]
    tie_note = (f" (any alpha = u in [{curve[tied[0]][0]:g}, {alpha:g}] predicts the same)"
                if tied.size > 1 else "")
    # Explained: some alignment predicts k to within the scan's resolution or inside k's interval.
    explained = abs(kp - k) <= MATCH_TOL or (k_ci is not None and k_ci[0] <= kp <= k_ci[1])
    consistent = [p[0] for p in curve if k_ci is not None and k_ci[0] <= p[1] <= k_ci[1]]
    out.update({
        "alignment": {"alpha": alpha, "omega": 0.5, "u": alpha} if explained else None,
        "nearest_alignment": {"alpha": alpha, "omega": 0.5, "u": alpha, "predicted_lr_exponent": kp},
        "alignment_range": [min(consistent), max(consistent)] if consistent else None,
        "flattening_c": c_true if explained else None,
    })
    who = " and ".join([", ".join(carriers[:-1]), carriers[-1]] if len(carriers) > 1 else carriers)
    if explained:
        msg = (f"{param.name}+{optim}, {setting} LR: measured k = {k:.2f} matches the theory at alpha = u = {alpha:g} "
               f"(omega = 1/2){tie_note}, where {who} carry the base LR; full alignment predicts {k_full:g}, "
               f"none {k_none:g}. ")
        if abs(kp) < 1e-9:
            msg += "The applied exponents already absorb the width scaling."
        else:
            msg += (f"Per-layer exponents c = {{{_fmt_c(c_true)}}} would flatten it "
                    f"(scaleadvise prescribe --param {param.name} --optim {optim} --alignment {alpha:g},0.5,{alpha:g})")
    else:
        msg = (f"{param.name}+{optim}, {setting} LR: measured k = {k:.2f} is outside what alpha = u in [0.5, 1] "
               f"explains (theory: {k_none:g} with no alignment to {k_full:g} with full alignment; nearest "
               f"{kp:g} at alpha = u = {alpha:g}); something other than width alignment moves the optimum "
               "(epsilon underflow, §4.3; training horizon, Appendix I)")
    out["message"] = msg
    return out


def check_theory_flags(opts: TheoryFlags) -> None:
    """--param, --optim and --target-width, before any work: a typo is an error even
    when the theory comparison is skipped for want of the other flags."""
    import math

    from scaleadvise.core.optimizers import get_optimizer
    from scaleadvise.core.parameterizations import get_parameterization

    if opts.param:
        get_parameterization(opts.param)
    if opts.optim:
        get_optimizer(opts.optim)
    if opts.target_width is not None and not (math.isfinite(opts.target_width) and opts.target_width >= 1):
        raise UserError(f"--target-width: must be a finite number >= 1, got {opts.target_width:g}")


def interpretation_for(key: dict, opts: TheoryFlags, k, ci) -> tuple[dict | None, str | None]:
    """Theory comparison when param, optim and setting are known (flags, else the group key)."""
    if opts.scale_by == "depth":
        return None, None  # the theory's exponents are width exponents (depth: core/depth.py)
    lower = {str(c).lower(): v for c, v in key.items()}
    pick = lambda flag, names: flag if flag else next((str(lower[n]) for n in names if n in lower), None)  # noqa: E731
    param, optim, setting = (pick(opts.param, _PARAM_KEYS), pick(opts.optim, _OPTIM_KEYS),
                             pick(opts.setting, _SETTING_KEYS))
    if not (param or optim or setting):
        return None, None
    missing = [n for n, v in (("--param", param), ("--optim", optim), ("--setting", setting)) if not v]
    if missing:
        return None, f"no theory comparison without {', '.join(missing)}"
    try:
        return interpret(k, ci, param, optim, parse_setting(setting)), None
    except UserError as e:
        if opts.param and opts.optim and opts.setting:
            raise  # a bad flag is an error; a bad cell in a grouping column only a warning
        return None, f"no theory comparison ({e})"
