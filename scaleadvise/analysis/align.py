"""Measured log alignment ratios and the LR exponents they imply (Everett et al. 2024, §3.4, §4.1).

Definition 3.1: for a dense layer l at step t,

    A_l^t = log_fan-in( ||W z||_RMS / (||W||_RMS ||z||_RMS) ),

measured on the *current* weights and inputs, i.e. on the full product
(W + ΔW)(z + Δz). It starts at 1/2 (random init, central-limit scaling, §2.3) and
moves towards 1 as the weights align with their inputs (law of large numbers).

Mapping to the theory's alignment variables. A mixes the three aligned terms of
§3.3 (ΔW z, W Δz, ΔW Δz). We set alpha_l = u_l = A_l and keep omega_l at its
assumed value (1/2, §3.3.4), because:
* the stability constraints of Table 2 contain alpha_l and u_l only through
  max(alpha_l, u_l - r_{l-1}), which at the maximal stable LRs (r_{l-1} = 0) is
  max(alpha_l, u_l) (§3.3.4), so one measured number per layer is all they can use;
* the paper's own alignment settings and its "intermediate" case are exactly
  alpha_l = u_l with omega_l = 1/2 (§3.3.4: "intermediate choices where alpha_l = u_l
  takes a value between 1/2 and 1");
* omega measures parameter-to-parameter alignment across layers, which the paper
  assumes stays small (§3.3.4) and which A cannot separate from the rest.
Measured values are clamped to [1/2, 1]: below 1/2 is finite-width noise under the
central-limit floor (§2.3), above 1 is outside the theory's range (B.11).

Which value enters the theory: the constraints must hold at every step, so the
peak over training is the conservative (stability) choice; the mean over training
is the typical one. Alignment is dynamic (§4.1, Figure 2), so both are reported.
"""

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from scaleadvise.errors import UserError

NO_ALIGNMENT, FULL_ALIGNMENT = 0.5, 1.0
DEFAULT_TOLERANCE = 0.1  # |A - 1/2| or |A - 1| within this counts as none / full
THEORY_TYPES = ("hidden", "readout")  # alignment variables exist for l >= 2 only (B.11)


@dataclass
class Trajectory:
    """A(t) of one layer at one width; steps sorted, replicates (seeds) averaged."""

    layer: str
    layer_type: str
    width: float
    steps: list[float]
    values: list[float]


# --------------------------------------------------------------------------- summaries


def time_mean(steps: Sequence[float], values: Sequence[float]) -> float:
    """Mean over training: the step-weighted (trapezoid) average of A(t).

    Measurements are often log-spaced in step (Figure D1-D3); a plain average would
    over-weight the first few hundred steps.
    """
    if len(values) == 1:
        return float(values[0])
    area = sum((steps[i + 1] - steps[i]) * (values[i + 1] + values[i]) / 2 for i in range(len(steps) - 1))
    return float(area / (steps[-1] - steps[0]))


def supports(value: float, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """Which alignment assumption a value supports: full (≈ 1), none (≈ 1/2) or intermediate."""
    if value >= FULL_ALIGNMENT - tolerance:
        return "full"
    if value <= NO_ALIGNMENT + tolerance:
        return "none"
    return "intermediate"


def summarize(tr: Trajectory, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Start, peak, mean over training and final of one trajectory."""
    peak_i = max(range(len(tr.values)), key=lambda i: tr.values[i])
    mean = time_mean(tr.steps, tr.values)
    return {
        "layer": tr.layer,
        "layer_type": tr.layer_type,
        "width": tr.width,
        "n_steps": len(tr.steps),
        "start": tr.values[0], "start_step": tr.steps[0],
        "peak": tr.values[peak_i], "peak_step": tr.steps[peak_i],
        "mean": mean,
        "final": tr.values[-1], "final_step": tr.steps[-1],
        "supports": supports(mean, tolerance),
        "peak_supports": supports(tr.values[peak_i], tolerance),
    }


def pool(rows: Sequence[dict], tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Several trajectory summaries as one: mean of starts/means/finals, max of peaks.

    One LR exponent serves every layer of a type (Table 1), so a group's peak is the
    largest of its members' peaks (§4.1: alignment varies across layers of one type).
    """
    top = max(rows, key=lambda r: r["peak"])
    mean = sum(r["mean"] for r in rows) / len(rows)
    return {
        "n_layers": len({r["layer"] for r in rows}),
        "widths": sorted({r["width"] for r in rows}),
        "start": sum(r["start"] for r in rows) / len(rows),
        "peak": top["peak"], "peak_layer": top["layer"], "peak_width": top["width"], "peak_step": top["peak_step"],
        "mean": mean,
        "final": sum(r["final"] for r in rows) / len(rows),
        "supports": supports(mean, tolerance),
        "peak_supports": supports(top["peak"], tolerance),
    }


def summarize_layers(rows: Sequence[dict], tolerance: float = DEFAULT_TOLERANCE) -> list[dict]:
    """Per layer across its widths, each with its per-width summaries under ``by_width``."""
    out = []
    for name in dict.fromkeys(r["layer"] for r in rows):
        mine = [r for r in rows if r["layer"] == name]
        out.append({"layer": name, "layer_type": mine[0]["layer_type"], **pool(mine, tolerance), "by_width": mine})
    return out


def summarize_types(rows: Sequence[dict], tolerance: float = DEFAULT_TOLERANCE) -> dict[str, dict]:
    """Per layer type over its layers and widths (see ``pool``)."""
    return {kind: pool([r for r in rows if r["layer_type"] == kind], tolerance)
            for kind in ("embedding", "hidden", "readout") if any(r["layer_type"] == kind for r in rows)}


# --------------------------------------------------------------------------- theory


def clamp(value: float) -> float:
    return min(max(value, NO_ALIGNMENT), FULL_ALIGNMENT)


def measured_alignment(hidden: float | None, readout: float | None, fallback):
    """theory.Alignment with alpha = u = A (clamped) on hidden and readout layers.

    A layer type with no measurement keeps the fallback's value; omega keeps the
    fallback's (1/2 under the paper's settings, §3.3.4).
    """
    from scaleadvise.core.alignment import Alignment

    h_alpha, h_omega, h_u = fallback.at("hidden")
    r_alpha, r_omega, r_u = fallback.at("readout")
    h = (h_alpha, h_u) if hidden is None else (clamp(hidden), clamp(hidden))
    r = (r_alpha, r_u) if readout is None else (clamp(readout), clamp(readout))
    return Alignment(alpha=h[0], omega=h_omega, u=h[1], alpha_readout=r[0], omega_readout=r_omega, u_readout=r[1])


def lr_exponents(param: str, optim: str, alignment) -> dict:
    """Maximal stable per-layer LR exponents c (lr ∝ n^-c) for one alignment (Table 2, B.17)."""
    from scaleadvise.core.parameterizations import get_parameterization
    from scaleadvise.core.theory import max_stable_lr_exponents

    p = get_parameterization(param)
    sol = max_stable_lr_exponents(p.a, p.b, optim, alignment)
    # u-muP's down-scaled input LR (parameterizations.py) sits on top of the maximal one.
    c = {t: sol.c[t] + p.c_offset.get(t, 0.0) for t in sol.c}
    al = alignment.as_dict()
    return {
        "alignment": al,
        # The same alignment as a `prescribe --alignment` value (hidden, then readout).
        "alignment_flag": ",".join(f"{al[k]:.3g}" for k in ("alpha", "omega", "u", "alpha_readout",
                                                            "omega_readout", "u_readout")),
        "c": c,
        "stable": sol.stable,
        "feature_learning": sol.feature_learning,
        "binding": dict(sol.binding),
        "notes": list(sol.notes),
    }


def theory_for_measurements(types: Mapping[str, dict], param: str, optim: str, fallback) -> dict[str, dict]:
    """LR exponents at the measured mean and peak alignment, beside Table 1's two settings."""
    from scaleadvise.core.alignment import FULL, NONE

    def value(kind: str, stat: str) -> float | None:
        return types[kind][stat] if kind in types else None

    out = {}
    for stat in ("mean", "peak"):
        al = measured_alignment(value("hidden", stat), value("readout", stat), fallback)
        out[f"measured_{stat}"] = lr_exponents(param, optim, al)
    out["full"] = lr_exponents(param, optim, FULL)
    out["none"] = lr_exponents(param, optim, NONE)
    return out


# --------------------------------------------------------------------------- input


def _natural(name: str) -> list:
    """Sort key with numbers compared as numbers: blocks.2 before blocks.10."""
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def alignment_columns() -> list:
    from scaleadvise.analysis.tables import Column

    return [
        Column("width", ("d_model", "model_dim", "n", "dim"), positive=True),
        Column("layer", ("tensor", "name", "param", "parameter"), numeric=False),
        Column("step", ("iteration", "iter")),
        Column("log_alignment", ("alignment", "log_alignment_ratio", "alignment_ratio")),
    ]


def trajectories_from_frame(frame, source: str) -> list[Trajectory]:
    """Group rows into trajectories per (layer, width); average duplicate steps (seeds)."""
    from scaleadvise.analysis.epsilon import layer_type_of

    groups: dict[tuple[str, float], dict[float, list[float]]] = {}
    types: dict[str, str] = {}
    for i, (layer, width, step, value) in enumerate(
        zip(frame["layer"], frame["width"], frame["step"], frame["log_alignment"])
    ):
        name = "" if layer is None or (isinstance(layer, float) and math.isnan(layer)) else str(layer).strip()
        where = f"{source}: line {i + 2}, column 'layer'"
        if not name:
            raise UserError(f"{where}: empty layer name")
        if name not in types:
            types[name] = layer_type_of(name, where)
        if step < 0:
            raise UserError(f"{source}: line {i + 2}, column 'step': {step:g} must be >= 0")
        groups.setdefault((name, float(width)), {}).setdefault(float(step), []).append(float(value))
    out = []
    for (name, width), by_step in groups.items():
        steps = sorted(by_step)
        out.append(Trajectory(name, types[name], width, steps, [sum(by_step[s]) / len(by_step[s]) for s in steps]))
    return out


def load_alignment(path: str, overrides: Mapping[str, str | None] | None = None) -> list[Trajectory]:
    """Read an alignment table (docs/CONTRACTS.md: width, layer, step, log_alignment)."""
    from scaleadvise.analysis.tables import read_table

    table = read_table(path, alignment_columns(), overrides)
    return trajectories_from_frame(table.frame, str(path))


def analyze(
    trajectories: Sequence[Trajectory],
    param: str,
    optim: str,
    fallback,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict:
    """The `scaleadvise align` report as a JSON-ready dict."""
    rows = sorted((summarize(t, tolerance) for t in trajectories), key=lambda r: (_natural(r["layer"]), r["width"]))
    types = summarize_types(rows, tolerance)
    notes = []
    missing = [k for k in THEORY_TYPES if k not in types]
    if missing:
        notes.append(f"no {' or '.join(missing)} layers measured: the theory uses --alignment there")
    for kind, t in types.items():
        if kind in THEORY_TYPES and not (NO_ALIGNMENT <= t["mean"] <= FULL_ALIGNMENT and t["peak"] <= FULL_ALIGNMENT):
            notes.append(f"{kind}: measured values outside [0.5, 1] are clamped for the theory (§2.3, B.11)")
    if "embedding" in types:
        notes.append("embedding layers have no alignment variables in the theory (l >= 2 only, B.11); shown, not used")
    return {
        "parameterization": param,
        "optimizer": optim,
        "tolerance": tolerance,
        "mapping": ("alpha_l = u_l = measured A_l (clamped to [0.5, 1]), omega_l kept at the assumed value; "
                    "Table 2 sees alpha, u only through max(alpha_l, u_l - r_(l-1)) = max(alpha_l, u_l) at the "
                    "maximal stable LRs (§3.3.4)"),
        "layers": summarize_layers(rows, tolerance),
        "layer_types": types,
        "lr_exponents": theory_for_measurements(types, param, optim, fallback),
        "notes": notes,
    }
