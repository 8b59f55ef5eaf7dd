"""Depth: residual branches scaled by (L/L0)^-alpha, and what that does to every other number.

A pre-LN Transformer of L blocks adds each branch (attention, MLP) to the residual stream,

    h_{l+1} = h_l + m · f_l(h_l),        m = (L / L0)^-alpha          (the branch multiplier)

and a depth parameterization says how m, and with it the init, LR, Adam epsilon and weight
decay of every tensor, move when the depth L leaves the base depth L0 where the base LR was
tuned. Each is a power of r = L / L0, composed multiplicatively with the width prescription
(``core.prescribe``: the per-tensor width rule times r^exponent):

    none        m = 1, no depth factor anywhere (the width prescription alone)
    depth-mup   alpha = 1/2: Yang et al. 2023, "Tensor Programs VI: Feature Learning in
                Infinite-Depth Neural Networks" (Depth-muP); Bordelon et al. 2023, "Depthwise
                hyperparameter transfer in residual networks" (arXiv 2309.16620)
    completep   alpha = 1: Dey et al. 2025, "Don't be lazy: CompleteP enables compute-efficient
                deep transformers" (arXiv 2505.01618)

Where a tensor sits decides its factors: on a residual branch ("branch": every tensor of f_l,
the in-block norm gains and biases included, since their output reaches the stream only
through m) or on the trunk (embeddings, the final norm, the readout). The exponents, derived
here from three facts (the code below is the derivation; tests/test_depth.py re-derives each):

1. multiplier: -alpha on the branch, by definition; 0 on the trunk.
2. init: 0 everywhere. Both papers put the depth scaling in the forward multiplier, not in
   the init (the CompleteP reference initializes without a depth term: nanoGPT-mup,
   branch completep, model.py lines 167-175).
3. gradient: a branch tensor's gradient passes through m, so it scales as r^-alpha; the
   trunk's does not (for alpha >= 1/2 the backward product prod_l (I + m J_l) through the
   stream stays O(1) in depth: that is what these parameterizations are built for).
4. LR, from the desideratum that every block moves the stream by Theta(1/L) per step, so the
   L blocks together move it by Theta(1) and none of them is lazy (Dey et al. 2025 §3; the
   same per-block update size as Depth-muP's): the branch's contribution moves by
   m · J dθ. Adam family: |dθ| ∝ η whatever the gradient's scale, so m η ∝ 1/L and
   η ∝ r^(alpha-1) (the CompleteP reference: ``depth_lr_scaling``, model.py line 331).
   Adafactor family: |dθ| ∝ η |θ| with |θ| depth-independent (2.): the same r^(alpha-1).
   SGD: dθ = η · grad ∝ η m, so m² η ∝ 1/L and η ∝ r^(2 alpha - 1) (alpha = 1/2: η
   constant in depth, as in Depth-muP with SGD). The trunk keeps r^0: its update moves the
   stream (embedding) or the logits (readout) directly.
5. epsilon follows each tensor's gradient scale (Everett et al. 2024 §4.3, eps_l ∝ gradient
   scale, applied to depth): r^-alpha on the branch and r^0 on the trunk where epsilon is
   compared with sqrt(v) (Adam), r^-2alpha / r^0 where it is added to v (Adafactor). Dey et
   al.'s reference scales one global epsilon by r^-alpha (model.py line 335); Mlodozeniec et
   al. 2025 ("Completed Hyperparameter Transfer across Modules, Width, Depth, Batch and
   Duration", arXiv 2512.22382) correct this: embedding and unembedding gradients carry no
   branch multiplier, so their epsilon must not shrink with depth. Like the width rule,
   the depth factor of epsilon applies with ``--eps per-layer``; a constant epsilon stays
   constant (a note says what it costs).
6. weight decay: see ``core.weight_decay`` (a per-step decay λ is depth-independent; the
   torch value λ/lr_l carries 1/LR's factors).

What is known and what is only derived (``DepthRule.status``; the CLI notes "derived"):
Adam family, alpha = 1/2 and 1: known (Dey et al. 2025 train AdamW at both; Yang et al.
2023 Depth-muP with Adam). SGD, alpha = 1/2: known (Yang et al. 2023; Bordelon et al. 2023).
SGD, alpha = 1: derived by 4. (η ∝ L grows without bound), not validated in the cited work.
Adafactor family: derived by 4. and 5., not validated. u-muP is refused: its unit-scaled
residual ops carry their own depth rule (unit_scaling's ``lr_scale_for_depth``, depth^-1/2).
"""

from dataclasses import dataclass, field
from typing import Literal

from scaleadvise.core import rule
from scaleadvise.core.optimizers import Family, Optimizer
from scaleadvise.errors import UserError

DepthParamName = Literal["none", "depth-mup", "completep"]
DEPTH_PARAMS: tuple[DepthParamName, ...] = ("none", "depth-mup", "completep")
ALPHA: dict[str, float] = {"depth-mup": 0.5, "completep": 1.0}
_ALIASES = {"none": "none", "off": "none", "depth-mup": "depth-mup", "depth-μp": "depth-mup", "depthmup": "depth-mup",
            "completep": "completep", "complete-p": "completep"}
Position = Literal["branch", "trunk"]
POSITIONS: tuple[Position, ...] = ("branch", "trunk")

SOURCES = {
    "depth-mup": "Yang et al. 2023 (Tensor Programs VI, Depth-muP); Bordelon et al. 2023 (arXiv 2309.16620)",
    "completep": "Dey et al. 2025 (CompleteP, arXiv 2505.01618)",
}
EPS_SOURCE = ("epsilon ∝ each tensor's gradient scale (Everett et al. 2024 §4.3; Mlodozeniec et al. 2025, "
              "arXiv 2512.22382: embedding/unembedding epsilon does not shrink with depth)")


def get_depth_param(name: str) -> DepthParamName:
    """Canonical name of a depth parameterization; a one-line error otherwise."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in _ALIASES:
        raise UserError(f"unknown depth parameterization {name!r} (known: {', '.join(DEPTH_PARAMS)})", "depth_param")
    return _ALIASES[key]  # type: ignore[return-value]


@dataclass(frozen=True)
class DepthExponents:
    """Exponents of r = L / L0 for one position (factor = r ** exponent)."""

    multiplier: float  # of the branch output (the residual multiplier); 0 on the trunk
    init: float
    grad: float  # gradient scale (what epsilon follows)
    lr: float
    eps: float | None  # per-layer epsilon; None where the optimizer has none


@dataclass(frozen=True)
class DepthRule:
    """The exponents of one depth parameterization for one optimizer."""

    param: DepthParamName
    alpha: float | None
    family: Family
    branch: DepthExponents
    trunk: DepthExponents
    status: str  # "known" (validated in the cited work) or "derived" (by the module doc's argument only)
    source: str

    def exponents(self, position: Position) -> DepthExponents:
        return self.branch if position == "branch" else self.trunk


def lr_exponent(alpha: float, family: Family) -> float:
    """4. in the module doc: m · |dθ| ∝ 1/L on the branch."""
    return 2.0 * alpha - 1.0 if family is Family.SGD else alpha - 1.0


def depth_rule(name: str, opt: Optimizer) -> DepthRule:
    """The exponents of ``name`` for optimizer ``opt`` (module doc, 1.-5.)."""
    param = get_depth_param(name)
    zero = DepthExponents(0.0, 0.0, 0.0, 0.0, None if opt.eps is None else 0.0)
    if param == "none":
        return DepthRule("none", None, opt.family, zero, zero, "known", "no depth scaling")
    alpha = ALPHA[param]
    grad = -alpha
    branch = DepthExponents(multiplier=-alpha, init=0.0, grad=grad, lr=lr_exponent(alpha, opt.family),
                            # eps_exponent takes and returns *negative* exponents (core.optimizers)
                            eps=None if opt.eps is None else -opt.eps_exponent(-grad))
    known = opt.family is Family.ADAM or (opt.family is Family.SGD and param == "depth-mup")
    return DepthRule(param, alpha, opt.family, branch, zero, "known" if known else "derived", SOURCES[param])


@dataclass(frozen=True)
class Depth:
    """A depth parameterization at a target depth L from a base depth L0."""

    rule: DepthRule
    depth: int
    base_depth: int
    eps_mode: str  # the prescription's: the epsilon factor applies only "per-layer"
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.depth / self.base_depth

    @property
    def residual_multiplier(self) -> float:
        return rule.depth_factor(self.rule.branch.multiplier, self.depth, self.base_depth)

    def lr_factor(self, position: Position) -> float:
        return rule.depth_factor(self.rule.exponents(position).lr, self.depth, self.base_depth)

    def eps_factor(self, position: Position) -> float:
        e = self.rule.exponents(position).eps
        if e is None or self.eps_mode != "per-layer":
            return 1.0
        return rule.depth_factor(e, self.depth, self.base_depth)

    def factors(self, position: Position) -> dict[str, float | None]:
        """Every factor at this depth for one position (the JSON ``depth.factors``)."""
        x = self.rule.exponents(position)
        f = lambda e: rule.depth_factor(e, self.depth, self.base_depth)  # noqa: E731
        return {"multiplier": f(x.multiplier), "init": f(x.init), "grad": f(x.grad), "lr": f(x.lr),
                "eps": None if x.eps is None else self.eps_factor(position)}

    def to_dict(self) -> dict:
        r = self.rule
        return {
            "depth_param": r.param, "alpha": r.alpha, "depth": self.depth, "base_depth": self.base_depth,
            "ratio": self.ratio, "status": r.status, "source": r.source, "eps_source": EPS_SOURCE,
            "exponents": {p: vars(r.exponents(p)).copy() for p in POSITIONS},
            "factors": {p: self.factors(p) for p in POSITIONS},
        }


def resolve_depth(name: str, depth: int | None, base_depth: int | None, opt: Optimizer, eps_mode: str,
                  param: str, has_branches: bool, model: str) -> Depth | None:
    """The depth prescription of a request, or None for ``none`` (then nothing changes)."""
    canonical = get_depth_param(name)
    if base_depth is not None and (isinstance(base_depth, bool) or not isinstance(base_depth, int)):
        raise UserError(f"must be an integer, got {base_depth!r}", "base_depth")
    if base_depth is not None and base_depth <= 0:
        raise UserError(f"must be a positive integer, got {base_depth}", "base_depth")
    if canonical == "none":
        return None
    if base_depth is None:
        raise UserError(f"{canonical} needs base_depth (the depth L0 where the base LR was tuned)", "depth_param")
    if depth is None or isinstance(depth, bool) or not isinstance(depth, int) or depth <= 0:
        raise UserError(f"{canonical} needs depth, a positive number of blocks L, got {depth!r}", "depth_param")
    if param == "umup":
        raise UserError("u-muP scales depth with its own unit-scaled residual rule (unit_scaling's "
                        "lr_scale_for_depth, depth^-1/2); use depth_param none with param umup", "depth_param")
    if not has_branches:
        raise UserError(f"{canonical}: model {model} has no residual branches (no tensor marked 'residual: true'); "
                        "depth parameterizations scale residual branches: use depth_param none", "depth_param")
    r = depth_rule(canonical, opt)
    notes = []
    if r.status == "derived":
        why = ("η ∝ L^(2 alpha - 1) grows with depth" if r.family is Family.SGD
               else "update ∝ η |W| treated as Adam's")
        notes.append(f"--depth-param {canonical} with {opt.name}: the depth factors are derived ({why}; "
                     "core/depth.py), not validated in the cited work"
                     + ("; depth-mup is the validated choice for SGD" if r.family is Family.SGD else ""))
    if eps_mode == "constant" and r.branch.eps is not None and depth != base_depth:
        notes.append(f"constant epsilon: branch gradients scale as (L/L0)^-{r.alpha:g} = "
                     f"{rule.depth_factor(r.branch.grad, depth, base_depth):.3g} relative to the base depth while "
                     "epsilon does not; --eps per-layer scales it with them")
    if depth < base_depth:
        notes.append(f"target depth {depth} is below the base depth {base_depth}: the factors invert "
                     f"(residual multiplier {rule.depth_factor(-r.alpha, depth, base_depth):.3g} > 1)")
    return Depth(r, depth, base_depth, eps_mode, notes)
