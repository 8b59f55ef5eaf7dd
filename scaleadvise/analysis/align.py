"""Measured alignment exponents and the LR exponents they imply (Everett et al. 2024, §3.3-3.4, B.11, §4.1).

`alignment.csv` (the emitted training script's probes.AlignmentProbe writes it) holds, per
dense layer l and step t:

* ``alpha``, ``omega``, ``u``: the alignment exponents of B.11 (Definition B.6), measured on
  a fixed probe batch against the weights W_0 and the layer's inputs z_0 of step 0,

      alpha = log_fan-in ||ΔW z_0|| / (||ΔW|| ||z_0||)      ΔW = W_t - W_0
      omega = log_fan-in ||W_0 Δz|| / (||W_0|| ||Δz||)      Δz = z_t - z_0
      u     = log_fan-in ||ΔW Δz|| / (||ΔW|| ||Δz||)

  with RMS norms (1/2 when the factors are independent, 1 when rank-one aligned; empty at
  step 0, where ΔW = Δz = 0). They are the exponents of the three terms of Δz_l (§3.3) that
  Table 2's constraints contain, so the LR exponents are derived from them, per layer type.
* ``log_alignment``: the paper's log alignment ratio A (Definition 3.1) of the *whole* W_t
  and z_t, the quantity of Figure 2. It is not alpha: W_t z_t also holds the unaligned
  W_0 z_0, which dominates while ||ΔW|| << ||W_0||, so A stays near 1/2 even when ΔW is
  fully aligned (alpha = 1). A is summarised for comparison and never enters the theory:
  a file with A alone gets no LR exponents.

Which value enters the theory. Every constraint of Table 2 gets tighter as alpha, omega or u
grows, and the constraints must hold at every step, so the peak of each over training (per
layer type, over its layers and widths) is the conservative choice; the step-weighted mean
is the typical one. Alignment is dynamic (§4.1, Figure 2): both are reported. Values are
clamped to [1/2, 1] for the theory: above 1 is outside B.11's range, below 1/2 is the
finite-width scatter under the central-limit floor (§2.3), and raising it to 1/2 is the
conservative side. omega > 1/2 on hidden layers shrinks every later residual
(r_l <= 1/2 + r_(l-1) - omega, Table 2), so the embedding's LR exponent grows with the number
of hidden layers: the caller passes the chain length (``n_hidden``).
"""

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from scaleadvise.errors import UserError

NO_ALIGNMENT, FULL_ALIGNMENT = 0.5, 1.0
DEFAULT_TOLERANCE = 0.1  # within this of 1/2 or of 1 counts as none / full
THEORY_TYPES = ("hidden", "readout")  # alignment variables exist for l >= 2 only (B.11)
TERMS = ("alpha", "omega", "u")  # B.11, what the theory uses
METRICS = ("log_alignment", *TERMS)  # columns of alignment.csv
STATS = ("mean", "peak")  # typical, conservative
REFUSAL = ("LR exponents not derived: the table holds no alpha, omega, u value (B.11; the columns are missing, or "
           "empty as at step 0), only the log alignment ratio A (Definition 3.1), which is not alpha: it stays near "
           "1/2 while ||ΔW|| << ||W_0|| however aligned the update is. Log alpha, omega, u with a training script "
           "from `scaleadvise emit-train`")


@dataclass
class Trajectory:
    """One metric of one layer at one width over training; steps sorted, seeds averaged."""

    layer: str
    layer_type: str
    width: float
    steps: list[float]
    values: list[float]
    metric: str = "log_alignment"


# --------------------------------------------------------------------------- summaries


def time_mean(steps: Sequence[float], values: Sequence[float]) -> float:
    """Mean over training: the step-weighted (trapezoid) average of a trajectory.

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
        "metric": tr.metric,
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


def _with_terms(base: dict, rows: Sequence[dict], tolerance: float) -> dict:
    """``base`` (the summary of A) plus one pooled summary per measured term of B.11."""
    for term in TERMS:
        mine = [r for r in rows if r["metric"] == term]
        if mine:
            base[term] = pool(mine, tolerance)
    return base


def summarize_layers(rows: Sequence[dict], tolerance: float = DEFAULT_TOLERANCE) -> list[dict]:
    """Per layer across its widths: A's summary at the top level (with its per-width
    summaries under ``by_width``), and alpha, omega, u pooled the same way under their names."""
    out = []
    for name in dict.fromkeys(r["layer"] for r in rows):
        mine = [r for r in rows if r["layer"] == name]
        a = [r for r in mine if r["metric"] == "log_alignment"]
        entry = {"layer": name, "layer_type": mine[0]["layer_type"], **pool(a, tolerance), "by_width": a}
        out.append(_with_terms(entry, mine, tolerance))
    return out


def summarize_types(rows: Sequence[dict], tolerance: float = DEFAULT_TOLERANCE) -> dict[str, dict]:
    """Per layer type over its layers and widths (see ``pool``): A at the top level,
    alpha, omega, u under their names."""
    out = {}
    for kind in ("embedding", "hidden", "readout"):
        mine = [r for r in rows if r["layer_type"] == kind]
        a = [r for r in mine if r["metric"] == "log_alignment"]
        if a:
            out[kind] = _with_terms(pool(a, tolerance), mine, tolerance)
    return out


# --------------------------------------------------------------------------- theory


def clamp(value: float) -> float:
    return min(max(value, NO_ALIGNMENT), FULL_ALIGNMENT)


def measured_alignment(hidden: Mapping[str, float] | None, readout: Mapping[str, float] | None, fallback):
    """theory.Alignment from measured alpha, omega, u per layer type (each clamped to [1/2, 1]).

    ``hidden`` / ``readout`` map a term to its measured value. A term with no value:
    * u without alpha's partner, or alpha without u's, takes the other's value: the paper
      moves them in tandem (§3.3.4, "alpha_l = u_l"), and a u that is never defined means
      Δz = 0, where the ΔW·Δz term is zero and any u <= alpha changes nothing;
    * omega, or a type with nothing measured, keeps the fallback's value (``--alignment``).
    Returns (Alignment, where each value came from: {"hidden": {"alpha": "measured", "omega":
    "--alignment", "u": "alpha (tandem, §3.3.4)"}, "readout": {...}}).
    """
    from scaleadvise.core.alignment import Alignment

    values, sources = {}, {}
    partner = {"alpha": "u", "u": "alpha"}
    for kind, measured in (("hidden", hidden), ("readout", readout)):
        measured = {t: v for t, v in (measured or {}).items() if v is not None}
        sources[kind] = {}
        for term, default in zip(TERMS, fallback.at(kind)):
            if term in measured:
                values[kind, term], sources[kind][term] = clamp(measured[term]), "measured"
            elif partner.get(term) in measured:
                values[kind, term] = clamp(measured[partner[term]])
                sources[kind][term] = f"{partner[term]} (tandem, §3.3.4)"
            else:
                values[kind, term], sources[kind][term] = default, "--alignment"
    al = Alignment(alpha=values["hidden", "alpha"], omega=values["hidden", "omega"], u=values["hidden", "u"],
                   alpha_readout=values["readout", "alpha"], omega_readout=values["readout", "omega"],
                   u_readout=values["readout", "u"])
    return al, sources


def lr_exponents(param: str, optim: str, alignment, n_hidden: int = 2) -> dict:
    """Maximal stable per-layer LR exponents c (lr ∝ n^-c) for one alignment (Table 2, B.17)."""
    from scaleadvise.core.parameterizations import get_parameterization
    from scaleadvise.core.theory import max_stable_lr_exponents

    p = get_parameterization(param)
    sol = max_stable_lr_exponents(p.a, p.b, optim, alignment, n_hidden=n_hidden)
    # u-muP's down-scaled input LR (parameterizations.py) sits on top of the maximal one.
    c = {t: sol.c[t] + p.c_offset.get(t, 0.0) for t in sol.c}
    al = alignment.as_dict()
    return {
        "alignment": al,
        # The same alignment as a `prescribe --alignment` value (hidden, then readout).
        "alignment_flag": ",".join(f"{al[k]:.3g}" for k in ("alpha", "omega", "u", "alpha_readout",
                                                            "omega_readout", "u_readout")),
        "c": c,
        "n_hidden": n_hidden,
        "stable": sol.stable,
        "feature_learning": sol.feature_learning,
        "binding": dict(sol.binding),
        "notes": list(sol.notes),
    }


def has_terms(types: Mapping[str, dict]) -> bool:
    """Whether any hidden or readout layer has a measured alpha, omega or u."""
    return any(term in types.get(kind, {}) for kind in THEORY_TYPES for term in TERMS)


def theory_for_measurements(types: Mapping[str, dict], param: str, optim: str, fallback,
                            n_hidden: int = 2) -> dict[str, dict]:
    """LR exponents at the measured mean and peak alpha, omega, u (never A), beside Table 1's
    two settings. Without measured terms only Table 1's settings are given."""
    from scaleadvise.core.alignment import FULL, NONE

    def stat_of(kind: str, stat: str) -> dict[str, float] | None:
        if kind not in types:
            return None
        return {term: types[kind][term][stat] for term in TERMS if term in types[kind]}

    out = {}
    if has_terms(types):
        for stat in STATS:
            al, sources = measured_alignment(stat_of("hidden", stat), stat_of("readout", stat), fallback)
            out[f"measured_{stat}"] = {**lr_exponents(param, optim, al, n_hidden), "sources": sources}
    out["full"] = lr_exponents(param, optim, FULL, n_hidden)
    out["none"] = lr_exponents(param, optim, NONE, n_hidden)
    return out


# --------------------------------------------------------------------------- input


def chain_length(trajectories: Sequence[Trajectory]) -> tuple[int, str]:
    """The number of hidden layers on the measured model's longest path, and how it was found.

    Tensor names of the emitted script's NanoDO (blocks.{i}.attn.*, blocks.{i}.mlp.*) take
    the nanodo preset's ``hidden_chain`` at the file's number of blocks (attention v -> o
    and MLP up -> down per block, core/model.py); any other names count every hidden layer
    measured as one link of the chain (an MLP).
    """
    import re

    hidden = {t.layer for t in trajectories if t.layer_type == "hidden"}
    blocks = {m.group(1) for name in hidden if (m := re.match(r"blocks\.(\d+)\.(attn|mlp)\.", name))}
    if blocks and all(re.match(r"blocks\.\d+\.(attn|mlp)\.", name) for name in hidden):
        from scaleadvise.core.model import hidden_chain, load_model, with_overrides

        spec = with_overrides(load_model("nanodo"), depth=len(blocks))
        return hidden_chain(spec, spec.width), (f"nanodo's hidden_chain ({spec.hidden_chain}) at the "
                                                f"{len(blocks)} blocks measured")
    return max(1, len(hidden)), f"the {len(hidden)} hidden layer{'s' if len(hidden) != 1 else ''} measured, as one chain"


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
        # Empty where undefined (step 0: ΔW = Δz = 0); checked for inf in trajectories_from_frame.
        *(Column(term, (), required=False, allow_nonfinite=True) for term in TERMS),
    ]


def trajectories_from_frame(frame, source: str) -> list[Trajectory]:
    """Group rows into trajectories per (metric, layer, width); average duplicate steps (seeds).

    An empty (or NaN) alpha/omega/u cell is a step where the term is undefined and is
    skipped; an infinite one is an error.
    """
    from scaleadvise.core.model import layer_type_of

    metrics = [m for m in METRICS if m in frame.columns]
    groups: dict[tuple[str, str, float], dict[float, list[float]]] = {}
    types: dict[str, str] = {}
    columns = [frame[m] for m in metrics]
    for i, (layer, width, step, *values) in enumerate(zip(frame["layer"], frame["width"], frame["step"], *columns)):
        name = "" if layer is None or (isinstance(layer, float) and math.isnan(layer)) else str(layer).strip()
        where = f"{source}: line {i + 2}, column 'layer'"
        if not name:
            raise UserError(f"{where}: empty layer name")
        if name not in types:
            types[name] = layer_type_of(name, where)
        if step < 0:
            raise UserError(f"{source}: line {i + 2}, column 'step': {step:g} must be >= 0")
        for metric, value in zip(metrics, values):
            value = float(value)
            if math.isnan(value):
                continue
            if math.isinf(value):
                raise UserError(f"{source}: line {i + 2}, column {metric!r}: {value} is not finite")
            groups.setdefault((metric, name, float(width)), {}).setdefault(float(step), []).append(value)
    out = []
    for (metric, name, width), by_step in groups.items():
        steps = sorted(by_step)
        out.append(Trajectory(name, types[name], width, steps, [sum(by_step[s]) / len(by_step[s]) for s in steps],
                              metric))
    return out


def load_alignment(path: str, overrides: Mapping[str, str | None] | None = None) -> list[Trajectory]:
    """Read an alignment table (docs/CONTRACTS.md: width, layer, step, log_alignment; alpha, omega, u)."""
    from scaleadvise.analysis.tables import read_table

    table = read_table(path, alignment_columns(), overrides)
    return trajectories_from_frame(table.frame, str(path))


def analyze(
    trajectories: Sequence[Trajectory],
    param: str,
    optim: str,
    fallback,
    tolerance: float = DEFAULT_TOLERANCE,
    n_hidden: int | None = None,
) -> dict:
    """The `scaleadvise align` report as a JSON-ready dict. ``n_hidden``: the chain length
    the exponents are solved for (None: ``chain_length`` of the measured layers)."""
    chain_source = "--n-hidden"
    if n_hidden is None:
        n_hidden, chain_source = chain_length(trajectories)
    rows = sorted((summarize(t, tolerance) for t in trajectories),
                  key=lambda r: (_natural(r["layer"]), r["width"], METRICS.index(r["metric"])))
    types = summarize_types(rows, tolerance)
    lr = theory_for_measurements(types, param, optim, fallback, n_hidden)
    notes = []
    measured = has_terms(types)
    missing = [k for k in THEORY_TYPES if k not in types]
    if missing:
        notes.append(f"no {' or '.join(missing)} layers measured: the theory uses --alignment there")
    for kind in THEORY_TYPES:
        t = types.get(kind, {})
        absent = [term for term in TERMS if term not in t]
        if measured and kind in types and absent:
            notes.append(f"{kind}: {', '.join(absent)} never defined in the table (ΔW or Δz stayed 0, or no column): "
                         "alpha and u stand in for each other (§3.3.4), omega and a type with no term take "
                         "--alignment's value")
        outside = [term for term in TERMS if term in t and not (NO_ALIGNMENT <= t[term]["mean"] <= FULL_ALIGNMENT
                                                                 and t[term]["peak"] <= FULL_ALIGNMENT)]
        if outside:
            notes.append(f"{kind}: measured {', '.join(outside)} outside [0.5, 1] clamped for the theory (§2.3, B.11)")
    if measured and "hidden" in types and "omega" in types["hidden"] and types["hidden"]["omega"]["peak"] > 0.5:
        where = chain_source if chain_source == "--n-hidden" else f"{chain_source}; set it with --n-hidden"
        notes.append(f"hidden omega > 1/2 shrinks every later residual: the embedding's exponent depends on the "
                     f"chain length, here {n_hidden} hidden layer{'s' if n_hidden > 1 else ''} ({where})")
    ro_omega = types.get("readout", {}).get("omega")
    if ro_omega and ro_omega["peak"] > NO_ALIGNMENT and ro_omega["peak_supports"] == "none":
        notes.append(f"readout omega peaks at {ro_omega['peak']:.3f}, within --tolerance of 1/2: it enters the theory as "
                     "measured (a readout with a + b = 1/2, SP or NTK, then cannot feature-learn, §3.3.3), though at "
                     "one width it may be finite-width scatter; compare widths, or edit omega_readout in the flag")
    if "embedding" in types:
        notes.append("embedding layers have no alignment variables in the theory (l >= 2 only, B.11); shown, not used")
    return {
        "parameterization": param,
        "optimizer": optim,
        "tolerance": tolerance,
        "n_hidden": n_hidden,
        "n_hidden_source": chain_source,
        "exponents_from": "alpha, omega, u (B.11)" if measured else None,
        "refused": None if measured else REFUSAL,
        "mapping": ("LR exponents from the measured alpha, omega, u of B.11 (ΔW·z_0, W_0·Δz, ΔW·Δz against step 0), "
                    "per layer type, each clamped to [0.5, 1], entered into Table 2 as they are; the log alignment "
                    "ratio A (Definition 3.1, of the whole W_t and z_t) is shown for comparison with Figure 2 and "
                    "never used: it stays near 1/2 while ||ΔW|| << ||W_0|| even when alpha = 1"),
        "layers": summarize_layers(rows, tolerance),
        "layer_types": types,
        "lr_exponents": lr,
        "notes": notes,
    }
