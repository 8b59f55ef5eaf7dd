"""The alignment-general space of parameterizations (Everett et al. 2024, §3 and App. B).

A parameterization gives each layer l a multiplier n^-a_l, an init std n^-b_l and a
learning rate n^-c_l. Layers come in three types: embedding (l = 1), hidden
(l = 2..L) and readout (l = L+1). This module derives, never looks up:

* the gradient exponents g_l at initialization (B.7), and during training (B.13);
* the residuals r_l, the negative exponent of the activation change Δz_l (B.10);
* the stability / nontriviality / feature-learning verdicts of Table 2 / Table B1,
  with every violated constraint named and measured;
* the maximal stable learning-rate exponents: the smallest c_l meeting every
  constraint (B.17), which reproduces all 72 LR entries of Table 1;
* (the abc-symmetry of §3.2 / B.2 lives in symmetry.py).

How the paper's notation is resolved here
-----------------------------------------
* Exponents are *negative* exponents of width: a quantity "n^-x" has exponent x.
  Larger c means a smaller learning rate; larger g means smaller gradients. The
  alignment variables alpha, omega, u are the only positive exponents (B.11).
* One "update exponent" delta_l, the negative exponent of ΔW_l (B.9), unifies the
  three optimizer families, so that every constraint of Table 2 reads the same:
      SGD:        delta = c + g      (update = lr * grad)
      Adam:       delta = c          (update = lr * grad / |grad|)
      Adafactor:  delta = c + b      (update = lr * |W| * grad / |grad|)
  With it, the three terms of Δz_l (§3.3, B.12) have negative exponents
      ΔW_l z_{l-1}:   a_l + delta_l - alpha_l
      ΔW_l Δz_{l-1}:  a_l + delta_l + r_{l-1} - u_l
      W_l Δz_{l-1}:   a_l + b_l + r_{l-1} - omega_l   (= 1/2 + r - omega at a stable init)
  and the embedding (input dimension O(1), no sum over n) has r_1 = a_1 + delta_1.
  Substituting each delta gives Table 2 column by column.
* SGD gradient after the first readout update (B.13). The readout weight becomes
  W_{L+1} ~ n^max(-b_{L+1}, -(a_{L+1}+c_{L+1})) and every earlier gradient is
  proportional to it. A *larger* readout weight means a *larger* gradient, i.e. a
  *smaller* negative exponent, so
      g_l = min(a_{L+1} + b_{L+1}, 2 a_{L+1} + c_{L+1}) + a_l,
  a min where Table 2 prints max: with max, a readout LR so large that the
  readout weight grows would *relax* the other layers' constraints, the opposite of
  what B.13's text says it accounts for.
* SGD readout LR. The logits allow the readout LR to grow until its update
  outgrows the readout init, but past that point the gradients of every earlier
  layer grow with it and their maximal LRs shrink. Table 1 lists the largest
  readout LR that does not lower any other layer's maximal LR, i.e. it adds
  c_{L+1} >= b_{L+1} - a_{L+1} (update no larger than the init). We do the same
  (``sgd_readout="preserve"``) and say so in the binding constraint.
* Per-type exponents. Table 1 has one c per layer *type*. With L-1 hidden layers
  the solver finds the smallest c shared by all hidden layers; it equals the
  per-layer answer whenever the alignment is the same on every hidden layer and
  omega <= 1/2 (all of Table 1).
* Infeasible feature learning. The logits need a_{L+1} + b_{L+1} + r_L >= omega_{L+1}.
  When a_{L+1} + b_{L+1} < omega_{L+1} (SP and NTK under Yang & Hu's omega_{L+1} = 1,
  §3.3.3) r_L must stay >= omega_{L+1} - a_{L+1} - b_{L+1} > 0: the solver pushes that
  requirement down the network (rho below) and reports that feature learning is
  impossible at any learning rate.
"""

from dataclasses import dataclass, field
from typing import Literal, Mapping

from scaleadvise.core.alignment import FULL, Alignment
from scaleadvise.core.classify import LAYER_TYPES, LayerType
from scaleadvise.core.optimizers import Family, optimizer_family
from scaleadvise.errors import UserError

_TOL = 1e-9  # exponents are sums of halves and user alignments; compare with slack

# abc-symmetry LR correction per unit of theta (§3.2): c <- c - k * theta.
LR_SHIFT: dict[Family, float] = {Family.SGD: 2.0, Family.ADAM: 1.0, Family.ADAFACTOR: 0.0}


# --------------------------------------------------------------------------- network


def _layers(n_hidden: int) -> list[LayerType]:
    if n_hidden < 1:
        raise UserError(f"n_hidden must be >= 1, got {n_hidden}")
    return ["embedding", *(["hidden"] * n_hidden), "readout"]


def gradient_exponents(a: Mapping[str, float], b: Mapping[str, float]) -> dict[LayerType, float]:
    """Negative exponents of the gradients at initialization (B.7, Table 1 'Gradient').

    g_l = a_{L+1} + b_{L+1} + sum_{i=l+1..L} (a_i + b_i - 1/2) + a_l for l <= L, and
    g_{L+1} = a_{L+1}. The sum vanishes at a stable initialization; for an unstable
    one it is reported per unit of depth (one hidden layer above the embedding).
    """
    head = a["readout"] + b["readout"]
    hidden_excess = a["hidden"] + b["hidden"] - 0.5
    return {
        "embedding": head + hidden_excess + a["embedding"],
        "hidden": head + a["hidden"],
        "readout": a["readout"],
    }


@dataclass(frozen=True)
class Constraint:
    """One inequality of Table 2 / B1 evaluated at a point: ``value >= 0`` (or ``== 0``)."""

    name: str
    layer: LayerType
    expression: str
    value: float
    equality: bool = False

    @property
    def satisfied(self) -> bool:
        return abs(self.value) <= _TOL if self.equality else self.value >= -_TOL

    @property
    def shortfall(self) -> float:
        """How far the constraint is from holding (0 when it holds)."""
        if self.satisfied:
            return 0.0
        return abs(self.value) if self.equality else -self.value


@dataclass
class Verdict:
    """Everything the constraints say about one (a, b, c) under one optimizer and alignment."""

    family: Family
    alignment: Alignment
    a: dict[LayerType, float]
    b: dict[LayerType, float]
    c: dict[LayerType, float]
    g: dict[LayerType, float]  # at initialization (B.7)
    g_train: dict[LayerType, float]  # after the readout has moved (B.13)
    r: list[float]  # r_1..r_L, per layer
    logit_terms: dict[str, float]  # the three readout terms of Table 2
    constraints: list[Constraint] = field(default_factory=list)

    @property
    def r_by_type(self) -> dict[str, float]:
        """r of the embedding and of the last hidden layer (r_L, the feature-learning residual)."""
        return {"embedding": self.r[0], "hidden": self.r[-1]}

    @property
    def violations(self) -> list[Constraint]:
        return [k for k in self.constraints if not k.satisfied and k.name != "nontriviality"]

    @property
    def stable(self) -> bool:
        return not self.violations

    @property
    def nontrivial(self) -> bool:
        # B.14: the change in logits is Omega(1) iff the smallest logit term is <= 0;
        # together with stability that is equality.
        return min(self.logit_terms.values()) <= _TOL

    @property
    def feature_learning(self) -> bool:
        return self.stable and abs(self.r[-1]) <= _TOL


def _delta(family: Family, c: float, g: float, b: float) -> float:
    """Negative exponent of the update ΔW (B.9)."""
    if family is Family.SGD:
        return c + g
    if family is Family.ADAM:
        return c
    return c + b


def _g_train(a: Mapping[str, float], b: Mapping[str, float], c_readout: float, family: Family) -> dict[LayerType, float]:
    """Gradient exponents once the readout weight has been updated (B.13, sign resolved).

    The readout weight is n^-min(b, delta_{L+1}); earlier gradients scale with it.
    """
    g0 = gradient_exponents(a, b)
    delta_r = _delta(family, c_readout, g0["readout"], b["readout"])
    grown = min(b["readout"], delta_r) - b["readout"]  # <= 0: how much the readout grew
    return {"embedding": g0["embedding"] + grown, "hidden": g0["hidden"] + grown, "readout": g0["readout"]}


def evaluate(
    a: Mapping[str, float],
    b: Mapping[str, float],
    c: Mapping[str, float],
    optim: str | Family,
    alignment: Alignment = FULL,
    n_hidden: int = 2,
) -> Verdict:
    """Check (a, b, c) against every constraint of Table B1 (init, training, logits)."""
    family = optimizer_family(optim)
    a, b, c = dict(a), dict(b), dict(c)
    g0 = gradient_exponents(a, b)
    # Only SGD's update depends on the gradient; B.13's correction applies to it.
    g = _g_train(a, b, c["readout"], family) if family is Family.SGD else g0
    cons: list[Constraint] = []

    def add(name: str, layer: LayerType, expr: str, value: float, equality: bool = False) -> None:
        cons.append(Constraint(name, layer, expr, value, equality))

    # Stability at initialization (§3.3.1, B.6).
    add("init", "embedding", "a1 + b1 = 0", a["embedding"] + b["embedding"], equality=True)
    add("init", "hidden", "al + bl = 1/2", a["hidden"] + b["hidden"] - 0.5, equality=True)
    add("init", "readout", "a(L+1) + b(L+1) >= 1/2", a["readout"] + b["readout"] - 0.5)

    # r is the true chain of residuals. Each constraint is also scored "given the
    # layers below are fixed" (r_{l-1} clamped at 0), so that a violation's
    # shortfall is that layer's own excess, not the compounded blow-up below it.
    r: list[float] = []
    for i, layer in enumerate(_layers(n_hidden)[:-1]):
        d = _delta(family, c[layer], g[layer], b[layer])
        if layer == "embedding":
            r_l = own = a[layer] + d
            add("activations", layer, "r1 = a1 + delta1 >= 0", own)
        else:
            alpha, omega, u = alignment.at("hidden")

            def hidden_r(r_prev: float) -> float:
                return min(a[layer] + d - alpha, a[layer] + d + r_prev - u, a[layer] + b[layer] + r_prev - omega)

            r_l, own = hidden_r(r[-1]), hidden_r(max(r[-1], 0.0))
            add("activations", layer, f"r{i + 1} = min(a+delta-alpha, a+delta+r-u, a+b+r-omega) >= 0", own)
        r.append(r_l)

    alpha, omega, u = alignment.at("readout")
    d_r = _delta(family, c["readout"], g["readout"], b["readout"])

    def logits(r_last: float) -> dict[str, float]:
        return {
            "W·Δz (omega)": a["readout"] + b["readout"] + r_last - omega,
            "ΔW·z (alpha)": a["readout"] + d_r - alpha,
            "ΔW·Δz (u)": a["readout"] + d_r + r_last - u,
        }

    logit_terms = logits(r[-1])
    add("logits", "readout", "min(a+b+rL-omega, a+delta-alpha, a+delta+rL-u) >= 0",
        min(logits(max(r[-1], 0.0)).values()))
    if family is Family.ADAFACTOR:
        # Parameter scaling compounds: |W| grows like n^(-c t) unless c >= 0 (B.13).
        for layer in LAYER_TYPES:
            add("parameter-scaling growth", layer, "c >= 0", c[layer])
    return Verdict(family, alignment, a, b, c, g0, g, r, logit_terms, cons)


# --------------------------------------------------------------------------- solver


@dataclass
class Solution:
    """Maximal stable LR exponents and what pins each of them."""

    c: dict[LayerType, float]
    g: dict[LayerType, float]
    g_train: dict[LayerType, float]
    binding: dict[LayerType, str]
    verdict: Verdict
    notes: list[str] = field(default_factory=list)

    @property
    def r(self) -> list[float]:
        return self.verdict.r

    @property
    def stable(self) -> bool:
        return self.verdict.stable

    @property
    def nontrivial(self) -> bool:
        return self.verdict.nontrivial

    @property
    def feature_learning(self) -> bool:
        return self.verdict.feature_learning

    @property
    def violations(self) -> list[Constraint]:
        return self.verdict.violations


def _c_from_delta(family: Family, delta: float, g: float, b: float) -> float:
    """Invert _delta: the c that gives update exponent ``delta``."""
    if family is Family.SGD:
        return delta - g
    if family is Family.ADAM:
        return delta
    return delta - b


def _required_residuals(a: Mapping[str, float], b: Mapping[str, float], al: Alignment, n_hidden: int) -> list[float]:
    """rho_l, the smallest r_l the layers above can tolerate (index 0 = embedding).

    The logits need a_{L+1}+b_{L+1}+r_L-omega_{L+1} >= 0; a hidden layer l needs
    a_l+b_l+r_{l-1}-omega_l >= r_l. Feature learning is possible iff rho_L = 0.
    """
    _, omega_r, _ = al.at("readout")
    rho = [0.0] * (n_hidden + 1)
    rho[-1] = max(0.0, omega_r - a["readout"] - b["readout"])
    _, omega_h, _ = al.at("hidden")
    for i in range(n_hidden, 0, -1):
        rho[i - 1] = max(0.0, rho[i] + omega_h - a["hidden"] - b["hidden"])
    return rho


def max_stable_lr_exponents(
    a: Mapping[str, float],
    b: Mapping[str, float],
    optim: str | Family,
    alignment: Alignment = FULL,
    n_hidden: int = 2,
    sgd_readout: Literal["preserve", "max"] = "preserve",
) -> Solution:
    """Smallest c per layer type meeting every stability constraint (B.17, Table 1).

    Works bottom-up, as the paper does: the embedding first, then the hidden layers
    given the embedding's residual, then the readout given r_L. Every constraint is
    non-decreasing in every c, so each layer's smallest c is well defined.
    ``sgd_readout="max"`` drops Table 1's convention for SGD and gives the readout
    the largest LR its own logits allow (its gradients then grow, so the earlier
    layers are re-solved with the larger gradients, B.13).
    """
    family = optimizer_family(optim)
    a, b = dict(a), dict(b)
    g0 = gradient_exponents(a, b)
    rho = _required_residuals(a, b, alignment, n_hidden)
    floor = 0.0 if family is Family.ADAFACTOR else float("-inf")  # B.13: c >= 0 for Adafactor
    notes: list[str] = []
    binding: dict[LayerType, str] = {}

    def solve_body(g: Mapping[str, float]) -> tuple[float, float, list[float]]:
        # Embedding: r_1 = a_1 + delta_1 >= rho_1.
        d1 = rho[0] - a["embedding"]
        c1 = max(_c_from_delta(family, d1, g["embedding"], b["embedding"]), floor)
        r1 = a["embedding"] + _delta(family, c1, g["embedding"], b["embedding"])
        alpha, omega, u = alignment.at("hidden")

        def residuals(ch: float) -> list[float]:
            dh = _delta(family, ch, g["hidden"], b["hidden"])
            rs = [r1]
            for _ in range(n_hidden):
                rs.append(min(a["hidden"] + dh - alpha, a["hidden"] + dh + rs[-1] - u,
                              a["hidden"] + b["hidden"] + rs[-1] - omega))
            return rs

        def ok(ch: float) -> bool:  # tight tolerance: the answer is then rounded (_clean)
            return all(r_l >= rho_l - 1e-13 for r_l, rho_l in zip(residuals(ch)[1:], rho[1:]))

        # Lower bound from the alpha term alone; the u term may need more when r_{l-1}
        # is small. Feasibility is monotone in c_h, so bisect up from the lower bound.
        lo = max(_c_from_delta(family, max(rho[1:]) + alpha - a["hidden"], g["hidden"], b["hidden"]), floor)
        if ok(lo) or not ok(lo + 64.0):
            # Feasible at the alpha bound, or infeasible at any c: only an unstable
            # init (the omega term) blocks every c; the verdict then reports it.
            ch = lo
        else:
            hi = lo + 1.0
            while not ok(hi):
                hi += 1.0
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                lo, hi = (lo, mid) if ok(mid) else (mid, hi)
            ch = hi
        return c1, ch, residuals(ch)

    # SGD's hidden/embedding gradients depend on the readout LR (B.13). Table 1's
    # convention caps the readout LR so the gradients keep their init scale.
    g = g0
    c1, ch, rs = solve_body(g)
    alpha_r, _, u_r = alignment.at("readout")
    d_r = max(alpha_r - a["readout"], u_r - a["readout"] - rs[-1])
    cr = max(_c_from_delta(family, d_r, g0["readout"], b["readout"]), floor)
    cr_logits = cr
    if family is Family.SGD and sgd_readout == "preserve":
        cr = max(cr, b["readout"] - a["readout"])
    elif family is Family.SGD:
        for _ in range(50):  # fixed point: larger readout LR -> larger gradients -> smaller LRs below
            g = _g_train(a, b, cr, family)
            c1, ch, rs = solve_body(g)
            d_r = max(alpha_r - a["readout"], u_r - a["readout"] - rs[-1])
            new = _c_from_delta(family, d_r, g0["readout"], b["readout"])
            if abs(new - cr) < 1e-12:
                break
            cr = new
    c = {"embedding": _clean(c1), "hidden": _clean(ch), "readout": _clean(cr)}
    verdict = evaluate(a, b, c, family, alignment, n_hidden)

    binding["embedding"] = (
        "parameter scaling needs c >= 0 (B.13)" if family is Family.ADAFACTOR and c1 == 0.0 and rho[0] - a["embedding"] < -_TOL
        else f"r1 = a1 + delta1 = {rho[0]:g} (embedding change Θ(1), B.12)"
    )
    binding["hidden"] = _hidden_binding(verdict, alignment, rho)
    if family is Family.SGD and sgd_readout == "preserve" and cr > cr_logits + _TOL:
        binding["readout"] = ("readout update kept no larger than its init, c >= b - a "
                              "(a larger readout LR would lower every other layer's LR, B.13; Table 1)")
    else:
        binding["readout"] = _readout_binding(verdict)
    if rho[-1] > _TOL:
        notes.append(
            f"feature learning is impossible at any learning rate: the logits need "
            f"a(L+1) + b(L+1) + r_L >= omega(L+1), and a(L+1) + b(L+1) = {a['readout'] + b['readout']:g} < "
            f"omega(L+1) = {alignment.at('readout')[1]:g}, so r_L >= {rho[-1]:g} > 0 (§3.3.3)"
        )
    for k in verdict.violations:
        if k.name == "init":
            notes.append(f"unstable at initialization: {k.expression} is off by {k.shortfall:g} ({k.layer}, §3.3.1)")
    g_train = _g_train(a, b, c["readout"], family)
    return Solution(c=c, g=g0, g_train=g_train, binding=binding, verdict=verdict, notes=notes)


def _clean(x: float) -> float:
    """Round away bisection and float noise; exponents are exact to ~1e-12."""
    y = round(x, 9)
    return 0.0 if y == 0 else y


def _hidden_binding(v: Verdict, al: Alignment, rho: list[float]) -> str:
    alpha, omega, u = al.at("hidden")
    return (f"ΔW·z term: a + delta - alpha >= {max(rho[1:]):g} with alpha = {alpha:g}"
            + (f" (and ΔW·Δz with u = {u:g})" if u > alpha + _TOL else "") + " (Table 2)")


def _readout_binding(v: Verdict) -> str:
    term = min(v.logit_terms, key=lambda k: v.logit_terms[k] if not k.startswith("W·") else float("inf"))
    return f"logits stay O(1): the {term} term is exactly 0 (Table 2, nontrivial by B.14)"
