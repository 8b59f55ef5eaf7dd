"""Absolute per-tensor hyperparameters at a width: the ``prescribe`` contract.

Exponents come from the theory (theory.max_stable_lr_exponents); this module turns
them into numbers for every tensor of a model (§4.2.1, §4.3, C.2, C.4):

    multiplier = n_t^-a                      n_t: the tensor's width-scaling dimension
    init std   = sigma * n_t^-b              (fan_in for hidden/readout, the width for
                                              embedding-type tensors; 4n for mlp.down)
    lr         = base_lr * gamma * (n / base_width)^-c        (C.4)
    eps        = eps, or base_eps * (n / base_width)^-g       (per-layer epsilon, §4.3)

sigma is 0.01 for embedding tables whose exponent b is 0 (C.2), 1/sqrt(fan_in) for
input *linear* layers (a constant: their fan-in does not grow), and 1 otherwise, so
hidden and readout layers get the familiar 1/sqrt(fan_in) at b = 1/2. u-muP's unit
init uses sigma = 1 for embedding tables too. Norm gains start at n_t^-b (1 for
every b = 0 parameterization) and biases at 0.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from scaleadvise.core.constants import load_constants
from scaleadvise.errors import UserError
from scaleadvise.core.model import Tensor, expand, load_model, parameter_count, with_overrides
from scaleadvise.core.parameterizations import Parameterization, get_parameterization
from scaleadvise.core.theory import LAYER_TYPES, Family, max_stable_lr_exponents, optimizer_family, parse_alignment

# Table C2 defaults: Adam and Adam+PS use 1e-9, Adafactor 1e-30; atan2 has none.
DEFAULT_EPS = {"adam": 1e-9, "adamw": 1e-9, "adam-ps": 1e-9, "adafactor": 1e-30}
EMBEDDING_STD = 0.01  # C.2


@dataclass
class PrescribeRequest:
    param: str = "stp"
    optim: str = "adam"
    width: int = 1024
    base_width: int = 1024
    base_lr: float = 1e-3
    alignment: str = "full"
    omega_readout: float | None = None
    constants: str = "default"
    eps: float | Literal["per-layer"] | None = None  # None: the optimizer's default
    base_eps: float | None = None
    model: str = "nanodo"
    depth: int | None = None
    heads: int | None = None
    head_dim: int | None = None
    context: int | None = None
    vocab: int | None = None
    custom: Parameterization | None = None  # --param custom
    sgd_readout: Literal["preserve", "max"] = "preserve"
    tensors: bool = True
    command: str | None = field(default=None, repr=False)


def _check_numbers(req: PrescribeRequest) -> None:
    for flag, value in (("--width", req.width), ("--base-width", req.base_width)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{flag} must be an integer, got {value!r}")
        if value <= 0:
            raise UserError(f"{flag} must be a positive integer, got {value}")
    for flag, value in (("--base-lr", req.base_lr), ("--base-eps", req.base_eps)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{flag} must be a positive number, got {value:g}")
    if isinstance(req.eps, float) and not (math.isfinite(req.eps) and req.eps >= 0):
        raise UserError(f"--eps must be a number >= 0 or 'per-layer', got {req.eps:g}")


def _eps_mode(req: PrescribeRequest) -> tuple[str, float | None]:
    """('constant', eps) | ('per-layer', base_eps) | ('none', None)."""
    name = req.optim.strip().lower()
    if name in ("adam-atan2", "sgd", "lion", "sign-sgd"):
        if req.eps not in (None, 0.0):
            raise UserError(f"--eps: {name} has no epsilon (adam-atan2 is scale-invariant, C.5)")
        return "none", None
    if req.eps == "per-layer":
        return "per-layer", req.base_eps if req.base_eps is not None else DEFAULT_EPS.get(name, 1e-9)
    if req.base_eps is not None:
        raise UserError("--base-eps only applies with --eps per-layer")
    return "constant", DEFAULT_EPS.get(name, 1e-9) if req.eps is None else float(req.eps)


def _sigma(t: Tensor, p: Parameterization, b: float) -> float:
    if t.layer_type == "embedding" and t.kind == "embedding":
        return 1.0 if p.unit_init or b != 0 else EMBEDDING_STD
    if t.layer_type == "embedding" and t.kind == "linear":
        return t.fan_in ** -0.5  # fixed fan-in: a width-independent constant
    return 1.0


def tensor_values(t: Tensor, p: Parameterization, layer: dict[str, Any]) -> dict[str, Any]:
    """Init, multiplier, LR and eps of one tensor (the per-type LR/eps are shared)."""
    a, b = layer["a"], layer["b"]
    n_t = t.scale_dim
    if t.kind == "bias":
        init, std = "zeros", 0.0
    elif t.kind == "norm":
        init, std = "ones", n_t ** -b
    else:
        init, std = "normal", _sigma(t, p, b) * n_t ** -b
    return {"name": t.name, "layer_type": t.layer_type, "shape": t.shape, "init": init, "init_std": std,
            "multiplier": n_t ** -a, "lr": layer["lr"], "eps": layer["eps"], "scale_dim": n_t}


def prescribe(req: PrescribeRequest) -> dict[str, Any]:
    """The full prescription document (DESIGN.md contract) for one request."""
    _check_numbers(req)
    family = optimizer_family(req.optim)
    p = req.custom if req.custom is not None else get_parameterization(req.param)
    align_text = req.alignment
    if p.implied_alignment and req.alignment == "full":
        align_text = p.implied_alignment  # e.g. --param mup-na means no alignment
    alignment = parse_alignment(align_text, req.omega_readout)
    gamma, gamma_source = load_constants(req.constants, req.optim.strip().lower(), p.name)
    eps_mode, eps_value = _eps_mode(req)

    spec = load_model(req.model)
    head_dim = req.head_dim
    if req.heads is not None:
        if req.heads <= 0 or req.width % req.heads:
            raise UserError(f"--heads {req.heads} does not divide --width {req.width}")
        head_dim = req.width // req.heads
    spec = with_overrides(spec, depth=req.depth, head_dim=head_dim, context=req.context, vocab=req.vocab)
    tensors = expand(spec, req.width)

    sol = max_stable_lr_exponents(p.a, p.b, family, alignment, n_hidden=2, sgd_readout=req.sgd_readout)
    ratio = req.width / req.base_width
    layers: dict[str, dict[str, Any]] = {}
    for t in LAYER_TYPES:
        c = sol.c[t] + p.c_offset[t]
        lr = req.base_lr * gamma[t] * ratio ** -c
        eps = None if eps_mode == "none" else (
            eps_value * ratio ** -sol.g[t] if eps_mode == "per-layer" else eps_value)
        why = sol.binding[t]
        if p.c_offset[t]:
            why += f"; then lowered by n^-{p.c_offset[t]:g} ({p.name}'s down-scaled LR)"
        layers[t] = {"a": p.a[t], "b": p.b[t], "c": c, "g": sol.g[t], "g_train": sol.g_train[t],
                     "gamma": gamma[t], "lr": lr, "eps": eps, "why": why}
    rep = {t: next((x for x in tensors if x.layer_type == t and x.scale_dim == req.width
                    and x.kind in ("linear", "embedding")), None) for t in LAYER_TYPES}
    for t, x in rep.items():
        if x is not None:
            vals = tensor_values(x, p, layers[t])
            layers[t]["init_std"], layers[t]["multiplier"] = vals["init_std"], vals["multiplier"]
        else:
            layers[t]["init_std"] = req.width ** -p.b[t]
            layers[t]["multiplier"] = req.width ** -p.a[t]

    nontrivial = sol.nontrivial
    notes = list(sol.notes)
    if sol.stable and not nontrivial:
        worst = min(sol.verdict.logit_terms.values())
        notes.append(f"trivial: at these LRs the logits move only as n^-{worst:g} (B.14); "
                     "a larger readout LR would make them move (see --sgd-readout max for SGD)")
    if family is Family.ADAM and eps_mode == "constant":
        notes.append("a constant epsilon eventually dominates sqrt(v) as gradients shrink with width "
                     "(§4.3): see `scaleadvise epsilon`, or use --eps per-layer / adam-atan2")
    doc: dict[str, Any] = {
        "parameterization": p.name,
        "optimizer": req.optim.strip().lower(),
        "optimizer_family": family.value,
        "width": req.width,
        "base_width": req.base_width,
        "base_lr": req.base_lr,
        "alignment": alignment.as_dict(),
        "constants": {t: gamma[t] for t in LAYER_TYPES},
        "constants_source": gamma_source,
        "eps_mode": eps_mode,
        "base_eps": eps_value,
        "attention_scale": p.attention_scale,
        "layers": layers,
        "model": {"name": spec.name, "width": req.width, "depth": spec.depth, "head_dim": spec.head_dim,
                  **{k: int(v) for k, v in spec.env(req.width).items() if k not in ("d", "depth", "head_dim")},
                  "parameters": parameter_count(tensors)},
        "stable": sol.stable,
        "nontrivial": nontrivial,
        "feature_learning": sol.feature_learning,
        "violations": [{"layer": k.layer, "constraint": k.expression, "shortfall": k.shortfall}
                       for k in sol.violations],
        "notes": notes,
    }
    if req.tensors:
        doc["tensors"] = [tensor_values(x, p, layers[x.layer_type]) for x in tensors]
    if req.command:
        doc["command"] = req.command
    return doc
