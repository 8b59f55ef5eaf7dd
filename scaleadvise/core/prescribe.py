"""Every per-tensor hyperparameter at a target width: the ``prescribe`` command's core.

The exponents come from the theory (``theory.max_stable_lr_exponents`` on the model's
real chain of hidden layers, for the optimizer family and the alignment in force); the
numbers from the one per-tensor rule (``core.rule``):

    multiplier = n_t^-a        init std = sigma · n_t^-b
    lr = base_lr · gamma · (n / base_width)^-c        eps = base_eps · (n / base_width)^-e

sigma (C.2): 0.01 for embedding tables whose exponent b is 0, 1/sqrt(fan_in) for input
*linear* layers (a constant: their fan-in does not grow), 1 otherwise, so hidden and
readout layers get the familiar 1/sqrt(fan_in) at b = 1/2; u-muP's unit init uses 1 for
tables too. Norm gains start at n_t^-b (1 for every b = 0 parameterization), biases at 0.
e is 0 for a constant epsilon and the per-layer exponent of ``core.optimizers`` (g, or 2g
where epsilon is added to v) with ``--eps per-layer``. gamma is converted to the user's
base width when the constant set was tuned at another (``core.constants``).

Depth and weight decay compose multiplicatively (issue 12): with a depth parameterization
(``core.depth``) each tensor's LR and per-layer epsilon take the factor (L/L0)^x of its
position (residual branch or trunk) and every branch output the residual multiplier
(L/L0)^-alpha; with decay (``core.weight_decay``) each tensor gets its group's
``weight_decay`` in the convention in force. Without them nothing is computed differently
and the JSON is byte for byte what it was.
"""

import math
from dataclasses import dataclass, field
from typing import Literal

from scaleadvise.core import rule
from scaleadvise.core.alignment import resolve_alignment
from scaleadvise.core.classify import LAYER_TYPES, LayerType
from scaleadvise.core.constants import convert, load_constants
from scaleadvise.core.depth import Depth, resolve_depth
from scaleadvise.core.model import Tensor, expand, hidden_chain, load_model, parameter_count, with_overrides
from scaleadvise.core.optimizers import Family, Optimizer, get_optimizer
from scaleadvise.core.parameterizations import Parameterization, get_parameterization
from scaleadvise.core.prescription import LayerValues, ModelSummary, Prescription, TensorValues, Violation
from scaleadvise.core.theory import max_stable_lr_exponents
from scaleadvise.core.weight_decay import Decay, resolve_decay
from scaleadvise.errors import UserError

EMBEDDING_STD = 0.01  # C.2
MAX_SIZE = 2**53  # the largest width or dimension a float holds exactly


@dataclass
class PrescribeRequest:
    param: str = "stp"
    optim: str = "adam"
    width: int = 1024
    base_width: int = 1024
    base_lr: float = 1e-3
    alignment: str | None = None  # None: the paper's default for the optimizer family
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
    # A user's own module (scaleadvise.torch.parameterize): its classified tensors replace
    # the model preset, and hidden_chain its longest path of hidden layers (core/model.py).
    module_tensors: list[Tensor] | None = field(default=None, repr=False)
    hidden_chain: int | None = None
    # Depth (core.depth): the target depth is ``depth`` (the model's own when None).
    depth_param: str = "none"
    base_depth: int | None = None
    # Weight decay (core.weight_decay): one of weight_decay (λ per step) or wd_timescale.
    weight_decay: float | None = None
    wd_timescale: str | float | None = None
    wd_convention: str | None = None  # torch (default), independent, coupled
    tokens_per_step: int | None = None
    wd_vectors: bool = False


def _check_numbers(req: PrescribeRequest) -> None:
    """Every number of the request, before any work; errors name the request's field."""
    def integer(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def number(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for name in ("width", "base_width"):
        value = getattr(req, name)
        if not integer(value):
            raise UserError(f"must be an integer, got {value!r}", name)
        if value <= 0:
            raise UserError(f"must be a positive integer, got {value}", name)
        if value > MAX_SIZE:  # sizes become floats in the rule; beyond 2^53 they are no longer exact
            raise UserError(f"must be at most 2^53, got {value}", name)
    for name in ("base_lr", "base_eps"):
        value = getattr(req, name)
        if value is None and name == "base_eps":
            continue
        if not number(value) or not (math.isfinite(value) and value > 0):
            raise UserError(f"must be a positive finite number, got {value!r}", name)
    if req.eps is not None and req.eps != "per-layer" and not (number(req.eps) and math.isfinite(req.eps)
                                                               and req.eps >= 0):
        raise UserError(f"must be a finite number >= 0 or 'per-layer', got {req.eps!r}", "eps")
    for name in ("depth", "heads", "head_dim", "context", "vocab"):
        value = getattr(req, name)
        if value is not None and not (integer(value) and value > 0):
            raise UserError(f"must be a positive integer, got {value!r}", name)
        if value is not None and value > MAX_SIZE:
            raise UserError(f"must be at most 2^53, got {value}", name)
    if req.sgd_readout not in ("preserve", "max"):
        raise UserError(f"must be 'preserve' or 'max', got {req.sgd_readout!r}", "sgd_readout")


def _eps_mode(req: PrescribeRequest, opt: Optimizer) -> tuple[str, float | None]:
    """('constant', eps) | ('per-layer', base_eps) | ('none', None)."""
    if opt.eps is None:
        if req.eps not in (None, 0.0) or req.base_eps is not None:
            why = "adam-atan2 is scale-invariant, C.5" if opt.name == "adam-atan2" else "its update has no denominator"
            raise UserError(f"{opt.name} has no epsilon ({why})", "eps")
        return "none", None
    if req.eps == "per-layer":
        return "per-layer", req.base_eps if req.base_eps is not None else opt.default_eps
    if req.base_eps is not None:
        raise UserError("only applies with eps = 'per-layer'", "base_eps")
    return "constant", opt.default_eps if req.eps is None else float(req.eps)


def _sigma(t: Tensor, p: Parameterization, b: float) -> float:
    """The width-independent factor of the init std (C.2; module doc)."""
    if t.layer_type == "embedding" and t.kind == "embedding":
        return 1.0 if p.unit_init or b != 0 else EMBEDDING_STD
    if t.layer_type == "embedding" and t.kind == "linear":
        return t.fan_in ** -0.5  # fixed fan-in: a width-independent constant
    return 1.0


def _depth_decay(t: Tensor | None, lr: float, eps: float | None, depth: Depth | None,
                 decay: Decay | None) -> tuple[float, float | None, dict]:
    """A tensor's LR and epsilon times its depth factors, and the optional fields depth and
    decay add (nothing, and not a single float operation, when neither is in force)."""
    extra: dict = {}
    if depth is not None:
        position = "branch" if t is not None and t.residual else "trunk"
        lr = lr * depth.lr_factor(position)
        eps = None if eps is None else eps * depth.eps_factor(position)
        extra["residual"] = position == "branch"
    if decay is not None:
        kind = t.kind if t is not None else "linear"
        extra["weight_decay"] = decay.group_value(lr, kind, t.name if t is not None else "")
    return lr, eps, extra


def _tensor(t: Tensor, p: Parameterization, layers: dict[LayerType, LayerValues], c_rule: dict[LayerType, float],
            req: PrescribeRequest, base_eps: float | None, depth: Depth | None = None,
            decay: Decay | None = None) -> TensorValues:
    """One tensor's values by the rule; "fixed" tensors (nothing grows) take no exponent."""
    n_t = t.scale_dim
    if t.layer_type == "fixed":  # width-independent: its own init, base LR and epsilon
        lr, eps, extra = _depth_decay(t, req.base_lr, base_eps, depth, decay)
        return TensorValues(name=t.name, layer_type="fixed", kind=t.kind, shape=list(t.shape), scale_dim=n_t,
                            init="keep", sigma=None, init_std=None, multiplier=1.0, lr=lr, eps=eps, **extra)
    layer = layers[t.layer_type]
    a, b, gamma = layer.a, layer.b, layer.gamma
    # u-muP lowers the *input weights'* LR only: norm gains and biases keep the
    # width-independent LR of unit_scaling.optim (Blake et al. 2024).
    c = c_rule[t.layer_type] if t.kind in ("norm", "bias") else layer.c
    if t.kind == "bias":
        init, sigma, std = "zeros", 0.0, 0.0
    elif t.kind == "norm":
        init, sigma = "ones", 1.0
        std = rule.init_std(sigma, b, n_t)
    else:
        init, sigma = "normal", _sigma(t, p, b)
        std = rule.init_std(sigma, b, n_t)
    lr, eps, extra = _depth_decay(t, rule.learning_rate(req.base_lr, gamma, c, req.width, req.base_width),
                                  rule.epsilon(base_eps, layer.eps_exponent, req.width, req.base_width), depth, decay)
    return TensorValues(
        name=t.name, layer_type=t.layer_type, kind=t.kind, shape=list(t.shape), scale_dim=n_t, init=init,
        sigma=sigma, init_std=std, multiplier=rule.multiplier(a, n_t), lr=lr, eps=eps, **extra)


def prescribe(req: PrescribeRequest) -> Prescription:
    """The full prescription for one request."""
    _check_numbers(req)
    opt = get_optimizer(req.optim)
    family = opt.family
    p = req.custom if req.custom is not None else get_parameterization(req.param)
    implied = req.alignment is None and p.implied_alignment is not None
    alignment, align_source = resolve_alignment(p.implied_alignment if implied else req.alignment, family,
                                                req.omega_readout)
    if implied:
        align_source = f"--param {req.param} implies {p.implied_alignment} alignment (muP cheat sheet)"
    eps_mode, base_eps = _eps_mode(req, opt)

    if req.module_tensors is not None:
        spec, tensors = None, req.module_tensors
        chain = req.hidden_chain or max(1, sum(t.layer_type == "hidden" for t in tensors))
    else:
        spec = load_model(req.model)
        head_dim = req.head_dim
        if req.heads is not None:
            if req.width % req.heads:
                raise UserError(f"{req.heads} does not divide the width {req.width}", "heads")
            head_dim = req.width // req.heads
        elif head_dim is not None and req.width % head_dim:
            raise UserError(f"{head_dim} does not divide the width {req.width}", "head_dim")
        spec = with_overrides(spec, depth=req.depth, head_dim=head_dim, context=req.context, vocab=req.vocab)
        tensors = expand(spec, req.width)
        chain = req.hidden_chain or hidden_chain(spec, req.width)
    depth = resolve_depth(req.depth_param, spec.depth if spec is not None else req.depth, req.base_depth, opt,
                          eps_mode, p.name, any(t.residual for t in tensors), spec.name if spec else "module")
    decay = resolve_decay(req.weight_decay, req.wd_timescale, req.wd_convention, req.tokens_per_step, req.base_lr,
                          req.wd_vectors, opt.name)

    sol = max_stable_lr_exponents(p.a, p.b, family, alignment, n_hidden=chain, sgd_readout=req.sgd_readout)
    c = {t: sol.c[t] + p.c_offset[t] for t in LAYER_TYPES}
    constants = convert(load_constants(req.constants, opt.name, p.name), c, req.base_width)
    layers: dict[LayerType, LayerValues] = {}
    for t in LAYER_TYPES:
        e = None if eps_mode == "none" else (opt.eps_exponent(sol.g[t]) if eps_mode == "per-layer" else 0.0)
        why = sol.binding[t]
        if p.c_offset[t]:
            why += f"; then lowered by n^-{p.c_offset[t]:g} ({p.name}'s down-scaled input LR; norms and biases keep n^0)"
        rep = next((x for x in tensors if x.layer_type == t and x.scale_dim == req.width
                    and x.kind in ("linear", "embedding")), None)
        n_t = rep.scale_dim if rep is not None else req.width
        sigma = _sigma(rep, p, p.b[t]) if rep is not None else 1.0
        lr, eps, extra = _depth_decay(rep, rule.learning_rate(req.base_lr, constants.gamma[t], c[t], req.width,
                                                              req.base_width),
                                      rule.epsilon(base_eps, e, req.width, req.base_width), depth, decay)
        extra.pop("residual", None)  # per tensor only
        layers[t] = LayerValues(
            a=p.a[t], b=p.b[t], c=c[t], g=sol.g[t], g_train=sol.g_train[t], gamma=constants.gamma[t],
            lr=lr, eps=eps, eps_exponent=e,
            init_std=rule.init_std(sigma, p.b[t], n_t), multiplier=rule.multiplier(p.a[t], n_t), why=why, **extra)
    values = [_tensor(x, p, layers, sol.c, req, base_eps, depth, decay) for x in tensors] if req.tensors else []

    notes = list(sol.notes)
    if sol.stable and not sol.nontrivial:
        worst = min(sol.verdict.logit_terms.values())
        notes.append(f"trivial: at these LRs the logits move only as n^-{worst:g} (B.14); "
                     "a larger readout LR would make them move (see --sgd-readout max for SGD)")
    if family is Family.ADAM and eps_mode == "constant":
        notes.append("a constant epsilon eventually dominates sqrt(v) as gradients shrink with width "
                     "(§4.3): see `scaleadvise epsilon`, or use --eps per-layer / adam-atan2")
    if p.name == "umup":
        notes.append(UMUP_OPS_NOTE)
    if depth is not None:
        notes += depth.notes
    elif req.base_depth is not None:
        notes.append("base_depth (--base-depth) has no effect with depth_param none")
    if decay is not None:
        notes += decay_notes(decay, opt.name)
    if spec is None:
        model = ModelSummary(name="module", width=req.width, depth=chain, head_dim=None, dims={},
                             parameters=parameter_count(tensors), hidden_chain=chain)
    else:
        env = spec.env(req.width)
        model = ModelSummary(
            name=spec.name, width=req.width, depth=spec.depth, head_dim=spec.head_dim,
            dims={k: int(v) for k, v in env.items() if k not in ("d", "depth", "head_dim")},
            parameters=parameter_count(tensors), hidden_chain=chain)
    return Prescription(
        parameterization=p.name, optimizer=opt.name, family=family, width=req.width, base_width=req.base_width,
        base_lr=req.base_lr, alignment=alignment, alignment_source=align_source, constants=constants.gamma,
        constants_source=constants.source, eps_mode=eps_mode, base_eps=base_eps,
        attention_scale=p.attention_scale, layers=layers, model=model, stable=sol.stable,
        nontrivial=sol.nontrivial, feature_learning=sol.feature_learning,
        violations=[Violation(k.layer, k.expression, k.shortfall) for k in sol.violations],
        notes=notes, tensors=values, command=req.command,
        depth=None if depth is None else depth.to_dict(),
        residual_multiplier=None if depth is None else depth.residual_multiplier,
        weight_decay=None if decay is None else decay.to_dict())


def decay_notes(decay: Decay, optim: str) -> list[str]:
    """What the decay values mean in practice (core.weight_decay's caveats)."""
    notes = []
    if decay.convention != "independent":
        notes.append("weight decay: torch multiplies weight_decay by the *scheduled* LR, so the decay per step is "
                     "the prescribed one at the peak LR and follows the schedule's shape elsewhere")
    if optim == "sgd":
        notes.append("weight decay with SGD: torch adds weight_decay·W to the gradient before momentum, which "
                     "amplifies the steady-state decay by 1/(1 - momentum)")
    return notes


# u-muP (Blake et al. 2024, "u-μP: The Unit-Scaled Maximal Update Parametrization") is the
# muP rules *and* unit-scaled operations: matmuls, residual adds, attention and the loss
# rescaled so every tensor is unit-variance at init. The rules alone on standard ops are
# not u-muP, so the tools that train or apply a prescription refuse it.
UMUP_OPS_NOTE = ("u-muP is these rules plus unit-scaled ops (scaled matmuls, residual and attention "
                 "scaling, unit-scaled loss; Blake et al. 2024), which scaleadvise does not implement: "
                 "emit-train and parameterize refuse umup; use these LRs with the unit-scaling package's modules")
