"""How much loss a constant eps costs the whole model, from the first-order decrease it removes.

Issue 10, item 9. The per-tensor sqrt(v) laws of ``scaleadvise.analysis.epsilon`` say *where* eps
meets sqrt(v); whether the loss pays depends on how much of the model's progress runs
through the starved tensors. Weighting tensors by parameter count and calling "the LR
halved" the loss yardstick missed by more than 3× in examples/epsilon. This module
builds the model-level number from what governs the loss instead.

The rule (pre-registered in examples/epsilon/PREREGISTRATION.md before its comparison):

1. Per run r (width × seed) and tensor t, from the probe's two terms
   (``templates.probes.gradient_scales``), averaged over the run's logged steps:
   D0 = mean decrease_no_eps (lr·<g, m̂/sqrt(v̂)>), De = mean decrease
   (lr·<g, m̂/(sqrt(v̂)+eps)>), and the lost ratio rho = (D0 - De)/De, rescaled by
   eps/eps_run to the eps asked about (first order in eps). For a tensor whose sqrt(v)
   is one number s, De/D0 = 1/(1 + eps/s) and rho = eps/s exactly; in general rho is
   eps/sqrt(v) weighted by where the tensor's first-order progress comes from.
2. One joint least-squares fit over runs, one point per run:
   ln rho_t(n) = a_t + k_t ln n and ln D0_t(n) = c_t + d_t ln n, every tensor at once.
3. At width n, tensor t keeps phi_t = 1/(1 + rho_t(n)) of its first-order decrease.
   Weight tensors by their share of the decrease, w_t = D0_t(n) / sum D0(n). The
   retained fraction of layer type T is Phi_T = sum_T w_t phi_t / sum_T w_t; of the
   model, Phi = sum_t w_t phi_t.
4. Calibration, per layer type at the base width (``Yardstick``): Y_T(f) is the loss
   increase of an intervention that leaves type T the share f of its first-order
   decrease and changes nothing else, with f read from that run's own decrease terms.
   examples/epsilon uses an eps on type T alone, the same mechanism as the constant
   eps it predicts for. (An LR cut by f also leaves f, but at its base width it cost
   far less than an eps leaving the same share, and halving the hidden LR even helped:
   eps silences the coordinates with small sqrt(v), an LR cut scales all alike. So the
   yardstick must match the mechanism.) Predicted cost at width n:
   C(n) = sum_T Y_T(Phi_T(n)), Y_T linear in ln f through (f = 1, 0) and the measured
   points, extended along its last segment below the smallest measured f. Taking more
   of a type's progress is assumed never to lower the loss: the measured mean costs,
   ordered by falling share, are replaced by their weighted isotonic (non-decreasing)
   fit, anchored at 0 for f = 1. Types are assumed to add.
5. The crossing is the smallest width with C(n) >= the loss budget ("predictor
   decrease+yardsticks"). Without yardsticks it is the smallest width with
   1 - Phi(n) >= the lost-decrease budget ("predictor decrease", uncalibrated).
6. Interval: draws of every fitted law at once (multivariate t over runs: a run's
   residuals across tensors are drawn together, so tensors that move together in a
   seed stay together) and of each yardstick mean (Student t over its replicates);
   the interval is the percentiles of the crossing over the draws.
"""

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from scaleadvise.analysis.epsilon_data import LayerSamples
from scaleadvise.errors import UserError

LAYER_TYPES = ("embedding", "hidden", "readout")
MAX_LOG2_WIDTH = 40.0  # ~1e12, as scaleadvise.analysis.epsilon.MAX_WIDTH: past it the answer is "any width"
DRAWS = 2000


@dataclass(frozen=True)
class Yardstick:
    """Loss increase at the base width of an intervention leaving ``layer_type`` the share
    ``factor`` of its first-order decrease (rule, step 4).

    ``costs`` holds one value per replicate (e.g. per seed, paired with its reference run).
    """

    layer_type: str
    factor: float
    costs: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.costs) / len(self.costs)

    @property
    def se(self) -> float | None:
        k = len(self.costs)
        if k < 2:
            return None
        return math.sqrt(sum((c - self.mean) ** 2 for c in self.costs) / (k - 1) / k)


def group_yardsticks(points: Sequence[tuple[str, float, float]]) -> dict[str, list[Yardstick]]:
    """(type, factor, cost) triples -> yardsticks per type; repeats of one (type, factor) are replicates."""
    acc: dict[tuple[str, float], list[float]] = {}
    for kind, factor, cost in points:
        acc.setdefault((kind, factor), []).append(cost)
    out: dict[str, list[Yardstick]] = {}
    for (kind, factor), costs in sorted(acc.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        out.setdefault(kind, []).append(Yardstick(kind, factor, tuple(costs)))
    return out


# --------------------------------------------------------------------------- data per run


@dataclass
class RunDecreases:
    """Per run (rows) and tensor (columns): ln rho and ln D0, step-averaged (rule, step 1)."""

    tensors: list[str]
    types: list[str]
    widths: np.ndarray  # (R,)
    log_rho: np.ndarray  # (R, T), rescaled to the eps asked about
    log_d0: np.ndarray  # (R, T)
    log_rho_run: np.ndarray  # (R, T), with each run's own eps (what it measured)
    dropped: dict[str, str] = field(default_factory=dict)


def run_decreases(samples: Mapping[str, LayerSamples], eps: float) -> RunDecreases | None:
    """Step 1 of the rule; None when no tensor carries the decrease columns.

    A tensor is left out (with the reason in ``dropped``) when some run lacks its terms
    or its mean decrease, or the part eps removes, is not positive there.
    """
    per_tensor: dict[str, dict[tuple, tuple[float, float]]] = {}
    dropped: dict[str, str] = {}
    for name, s in samples.items():
        acc: dict[tuple, list[list[float]]] = {}
        for i, (d, d0) in enumerate(zip(s.decrease, s.decrease_no_eps)):
            if d is None or d0 is None:
                continue
            used = s.eps_used[i] if s.eps_used[i] is not None else eps
            acc.setdefault((float(s.widths[i]), s.run[i]), [[], [], []])
            for lst, x in zip(acc[(float(s.widths[i]), s.run[i])], (d0, d, used)):
                lst.append(x)
        if not acc:
            continue
        runs = {}
        for key, (d0s, ds, used) in acc.items():
            m0, me = sum(d0s) / len(d0s), sum(ds) / len(ds)
            lost = m0 - me
            if not (m0 > 0 and me > 0 and lost > 0):
                dropped[name] = (f"run at width {key[0]:g} has mean decrease {me:.3g}, without eps {m0:.3g}: "
                                 f"no positive first-order progress for eps to take")
                break
            own = math.log(lost / me)
            runs[key] = (own + math.log(eps / (sum(used) / len(used))), math.log(m0), own)
        else:
            per_tensor[name] = runs
    if not per_tensor and not dropped:
        return None
    all_runs = sorted({k for runs in per_tensor.values() for k in runs}, key=lambda k: (k[0], str(k[1])))
    for name in list(per_tensor):
        if len(per_tensor[name]) < len(all_runs):
            dropped[name] = f"logged in {len(per_tensor[name])} of {len(all_runs)} runs"
            del per_tensor[name]
    names = list(per_tensor)
    return RunDecreases(
        tensors=names, types=[samples[k].layer_type for k in names],
        widths=np.array([k[0] for k in all_runs], dtype=float),
        log_rho=np.array([[per_tensor[t][k][0] for t in names] for k in all_runs]).reshape(len(all_runs), len(names)),
        log_d0=np.array([[per_tensor[t][k][1] for t in names] for k in all_runs]).reshape(len(all_runs), len(names)),
        log_rho_run=np.array([[per_tensor[t][k][2] for t in names] for k in all_runs]).reshape(len(all_runs), len(names)),
        dropped=dropped,
    )


# --------------------------------------------------------------------------- joint fit


@dataclass
class JointFit:
    """Least squares of every column of Y on [1, ln n] (rule, step 2), with parametric draws."""

    coef: np.ndarray  # (2, M): intercept and slope per column
    xtx_inv: np.ndarray  # (2, 2)
    resid: np.ndarray  # (R, M)

    @property
    def df(self) -> int:
        return self.resid.shape[0] - 2

    def draws(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size, 2, M) coefficients from the multivariate t of the fit.

        B* = B + L Z E / sqrt(df) · sqrt(df / chi2_df), with L L' = (X'X)^-1, Z (2 × R) standard
        normal and E the residuals: every draw has the fit's covariance (X'X)^-1 ⊗ E'E/df,
        whatever the correlation between columns, and the chi-square factor widens it for
        the residual variance being estimated from df degrees of freedom.
        """
        chol = np.linalg.cholesky(self.xtx_inv)
        z = rng.standard_normal((size, 2, self.resid.shape[0]))
        xi = z @ self.resid / math.sqrt(self.df)
        scale = np.sqrt(self.df / rng.chisquare(self.df, size))[:, None, None]
        return self.coef[None] + scale * (chol[None] @ xi)


def joint_fit(ln_n: np.ndarray, y: np.ndarray) -> JointFit:
    x = np.column_stack([np.ones_like(ln_n), ln_n])
    xtx_inv = np.linalg.inv(x.T @ x)
    coef = xtx_inv @ x.T @ y
    return JointFit(coef=coef, xtx_inv=xtx_inv, resid=y - x @ coef)


# --------------------------------------------------------------------------- the model at width n


def retained(coef: np.ndarray, ln_n: np.ndarray, types: Sequence[str], kinds: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(Phi by type (..., G, K), Phi of the model (..., G)) at widths e^ln_n (rule, step 3).

    ``coef`` is (..., 2, 2T): ln rho columns first, then ln D0.
    """
    t = len(types)
    a, k = coef[..., 0, None, :], coef[..., 1, None, :]
    lines = a + k * ln_n[:, None]  # (..., G, 2T)
    log_rho, log_d0 = lines[..., :t], lines[..., t:]
    phi = 0.5 * (1.0 - np.tanh(0.5 * log_rho))  # 1/(1 + rho), overflow-free
    w = np.exp(log_d0 - log_d0.max(axis=-1, keepdims=True))
    by_type = []
    for kind in kinds:
        m = np.array([x == kind for x in types])
        by_type.append((w[..., m] * phi[..., m]).sum(-1) / w[..., m].sum(-1))
    model = (w * phi).sum(-1) / w.sum(-1)
    return np.stack(by_type, axis=-1), model


def yardstick_cost(log_phi: np.ndarray, log_f: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Y(Phi): piecewise linear in ln f through (0, 0) and the points (rule, step 4).

    ``log_f`` (P,) strictly decreasing, all < 0; ``cost`` (..., P) broadcast against
    ``log_phi`` (..., G). Below the smallest f the last segment is extended.
    """
    xs = np.concatenate([[0.0], log_f])
    ys = np.concatenate([np.zeros(cost.shape[:-1] + (1,)), cost], axis=-1)
    out = np.zeros(np.broadcast_shapes(log_phi.shape, ys.shape[:-1]))
    for j in range(len(xs) - 1):
        lo = -np.inf if j == len(xs) - 2 else xs[j + 1]
        inside = (log_phi <= xs[j]) & (log_phi > lo)
        slope = (ys[..., j + 1] - ys[..., j]) / (xs[j + 1] - xs[j])
        out = np.where(inside, ys[..., j] + slope * (log_phi - xs[j]), out)
    return out


def isotonic(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares fit of y (..., P) that is non-decreasing along the last axis.

    The max-min formula of isotonic regression, fit_j = max_{i<=j} min_{k>=j} mean_w(y[i..k]),
    vectorised over the leading axes (P is a handful of yardstick points).
    """
    p = y.shape[-1]
    cw = np.concatenate([[0.0], np.cumsum(w)])
    cy = np.concatenate([np.zeros(y.shape[:-1] + (1,)), np.cumsum(y * w, axis=-1)], axis=-1)
    out = np.empty_like(y)
    for j in range(p):
        best = np.full(y.shape[:-1], -np.inf)
        for i in range(j + 1):
            worst = np.full(y.shape[:-1], np.inf)
            for k in range(j, p):
                worst = np.minimum(worst, (cy[..., k + 1] - cy[..., i]) / (cw[k + 1] - cw[i]))
            best = np.maximum(best, worst)
        out[..., j] = best
    return out


def first_crossing(ln_n: np.ndarray, crit: np.ndarray, level: float) -> np.ndarray:
    """ln of the first width where crit (..., G) reaches level, linear between grid points;
    -inf when already at the first grid point, +inf when never."""
    above = crit >= level
    hit = above.any(-1)
    j = np.argmax(above, axis=-1)
    jm = np.maximum(j - 1, 0)
    c0, c1 = np.take_along_axis(crit, jm[..., None], -1)[..., 0], np.take_along_axis(crit, j[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(c1 > c0, (level - c0) / (c1 - c0), 1.0)
    x = ln_n[jm] + np.clip(frac, 0.0, 1.0) * (ln_n[j] - ln_n[jm])
    return np.where(~hit, np.inf, np.where(j == 0, -np.inf, x))


# --------------------------------------------------------------------------- the prediction


@dataclass
class Request:
    eps: float
    base_width: float
    target_width: float
    yardsticks: dict[str, list[Yardstick]] = field(default_factory=dict)
    loss_budget: float = 0.01
    lost_budget: float = 0.1
    confidence: float = 0.95
    seed: int = 0  # of the parametric draws: the same input gives the same interval
    draws: int = DRAWS


def _criterion(coef, ln_n, data: RunDecreases, kinds, req: Request, ys_draw=None) -> np.ndarray:
    by_type, model = retained(coef, ln_n, data.types, kinds)
    if not req.yardsticks:
        return 1.0 - model
    total = 0.0
    for i, kind in enumerate(kinds):
        sticks = req.yardsticks[kind]
        log_f = np.log([y.factor for y in sticks])
        cost = np.array([y.mean for y in sticks]) if ys_draw is None else ys_draw[kind]
        # Taking more of a type's progress never buys loss back: the yardstick curve is made
        # non-decreasing as the share falls (anchored at 0 for f = 1), pooling noisy points.
        n = np.array([1e12] + [len(y.costs) for y in sticks], dtype=float)
        anchored = np.concatenate([np.zeros(cost.shape[:-1] + (1,)), cost], axis=-1)
        cost = isotonic(anchored, n)[..., 1:]
        total = total + yardstick_cost(np.log(np.maximum(by_type[..., i], 1e-300)), log_f, cost)
    return total


def _yardstick_draws(req: Request, kinds, rng, size: int) -> dict[str, np.ndarray]:
    from scipy.stats import t as student_t

    out = {}
    for kind in kinds:
        cols = []
        for y in req.yardsticks[kind]:
            se = y.se
            if se is None or se == 0:
                cols.append(np.full(size, y.mean))
            else:
                cols.append(y.mean + se * student_t.rvs(len(y.costs) - 1, size=size, random_state=rng))
        out[kind] = np.stack(cols, axis=-1)[:, None, :]  # (size, 1, P): broadcast over the grid
    return out


def predict(samples: Mapping[str, LayerSamples], req: Request) -> dict | None:
    """The model-level prediction (rules 1-6) as a JSON-ready dict; None without decrease columns."""
    data = run_decreases(samples, req.eps)
    if data is None:
        return None
    notes = [f"{k}: left out ({why})" for k, why in data.dropped.items()]
    kinds = [k for k in LAYER_TYPES if k in data.types]
    measured = _measured(data, kinds)
    if not data.tensors or len(set(data.widths.tolist())) < 2:
        why = "no tensor has usable decrease terms" if not data.tensors else "the decrease terms span one width"
        return {"predictor": None, "crossing_width": None, "reason": f"{why}: no width law to extrapolate",
                "measured": measured, "notes": notes}
    if req.yardsticks:
        missing = [k for k in kinds if k not in req.yardsticks]
        if missing:
            raise UserError(f"--yardstick: none for layer type(s) {', '.join(missing)}; at the base width, train with an "
                            f"eps on the {missing[0]} tensors alone, read the share of their first-order decrease it "
                            f"leaves (model_prediction.measured of that run's grads.csv) and pass "
                            f"--yardstick {missing[0]}=LOSS_INCREASE@SHARE")
        notes += [f"yardstick for {k} ignored: no tensor of that type has decrease terms"
                  for k in req.yardsticks if k not in kinds]
        if any(y.se is None for k in kinds for y in req.yardsticks[k]):
            notes.append("a yardstick with one measurement carries no noise estimate: the interval leaves its "
                         "error out (repeat --yardstick TYPE=COST@SHARE once per seed)")
    fit = joint_fit(np.log(data.widths), np.concatenate([data.log_rho, data.log_d0], axis=1))
    level = req.loss_budget if req.yardsticks else req.lost_budget
    fine = np.linspace(0.0, MAX_LOG2_WIDTH, int(MAX_LOG2_WIDTH * 64) + 1) * math.log(2.0)
    point = float(first_crossing(fine, _criterion(fit.coef, fine, data, kinds, req), level))
    at = np.log([req.base_width, req.target_width])
    by_type, model = retained(fit.coef, at, data.types, kinds)
    cost_at = _criterion(fit.coef, at, data, kinds, req) if req.yardsticks else None
    ci = cost_ci = None
    if fit.df >= 1:
        rng = np.random.default_rng(req.seed)
        coarse = np.linspace(0.0, MAX_LOG2_WIDTH, int(MAX_LOG2_WIDTH * 8) + 1) * math.log(2.0)
        xs, costs = [], []
        for start in range(0, req.draws, 250):
            coef = fit.draws(rng, min(250, req.draws - start))
            ys = _yardstick_draws(req, kinds, rng, len(coef)) if req.yardsticks else None
            xs.append(first_crossing(coarse, _criterion(coef, coarse, data, kinds, req, ys), level))
            if req.yardsticks:
                costs.append(_criterion(coef, at[1:], data, kinds, req, ys)[:, 0])
        alpha = 1.0 - req.confidence
        ci = [float(np.quantile(np.concatenate(xs), q, method="inverted_cdf")) for q in (alpha / 2, 1 - alpha / 2)]
        if costs:
            cost_ci = [float(np.quantile(np.concatenate(costs), q)) for q in (alpha / 2, 1 - alpha / 2)]
    else:
        notes.append(f"{len(data.widths)} runs for a two-parameter law: no interval (log more seeds or widths)")
    ln_t = math.log(req.target_width)
    shares = np.exp(fit.coef[0, len(data.tensors):] + fit.coef[1, len(data.tensors):] * np.log(req.base_width))
    shares_t = np.exp(fit.coef[0, len(data.tensors):] + fit.coef[1, len(data.tensors):] * ln_t)
    width = _width(point)
    lo_hi = None if ci is None else [_width(c) for c in ci]
    return {
        "predictor": "decrease+yardsticks" if req.yardsticks else "decrease",
        "rule": _rule_text(req),
        "budget": {"loss": req.loss_budget} if req.yardsticks else {"lost_decrease": req.lost_budget},
        "eps": req.eps,
        "crossing_width": width,
        "crossing_width_ci": lo_hi,
        "confidence": req.confidence,
        "runs": int(len(data.widths)),
        "widths": sorted(set(data.widths.tolist())),
        "base": {"width": req.base_width, "retained_decrease": float(model[0]),
                 "retained_by_type": {k: float(by_type[0, i]) for i, k in enumerate(kinds)}},
        "target": {"width": req.target_width, "retained_decrease": float(model[1]),
                   "retained_by_type": {k: float(by_type[1, i]) for i, k in enumerate(kinds)},
                   "loss_cost": None if cost_at is None else float(cost_at[1]), "loss_cost_ci": cost_ci},
        "tensors": {t: {"layer_type": data.types[i], "lost_ratio_exponent": float(fit.coef[1, i]),
                        "lost_ratio_at_base": float(math.exp(fit.coef[0, i] + fit.coef[1, i] * math.log(req.base_width))),
                        "share_at_base": float(shares[i] / shares.sum()),
                        "share_at_target": float(shares_t[i] / shares_t.sum())}
                    for i, t in enumerate(data.tensors)},
        "yardsticks": {k: [{"factor": y.factor, "cost": y.mean, "n": len(y.costs), "se": y.se} for y in v]
                       for k, v in req.yardsticks.items()},
        "verdict": _verdict(width, lo_hi, req),
        "measured": measured,
        "notes": notes,
    }


def _measured(data: RunDecreases, kinds: list[str]) -> dict:
    """Per width: the share of each type's first-order decrease its runs kept, with the eps
    they ran with (mean over runs; a yardstick run's SHARE, rule step 4)."""
    out: dict = {}
    if not data.tensors:
        return out
    for w in sorted(set(data.widths.tolist())):
        rows = data.widths == w
        by_type = []
        for r in np.flatnonzero(rows):
            lines = np.concatenate([data.log_rho_run[r], data.log_d0[r]])
            t, _ = retained(np.stack([lines, np.zeros_like(lines)]), np.zeros(1), data.types, kinds)
            by_type.append(t[0])
        mean = np.mean(by_type, axis=0)
        out[f"{w:g}"] = {"runs": int(rows.sum()), "retained_by_type": {k: float(mean[i]) for i, k in enumerate(kinds)}}
    return out


def _width(ln_n: float) -> float:
    """ln width -> width; -inf (already crossed at width 1) -> 1."""
    return 1.0 if ln_n == -math.inf else math.exp(ln_n) if math.isfinite(ln_n) else math.inf


def _rule_text(req: Request) -> str:
    if req.yardsticks:
        return (f"smallest width where the loss cost of eps, sum over layer types of Y_T(Phi_T), reaches "
                f"{req.loss_budget:g}: Phi_T = share of type T's first-order decrease that eps leaves (tensors "
                f"weighted by their decrease without eps, laws fitted per tensor over runs), Y_T = loss increase "
                f"measured at the base width by an intervention leaving type T that share (--yardstick)")
    return (f"smallest width where eps removes {req.lost_budget:.0%} of the model's first-order decrease "
            f"(tensors weighted by their decrease without eps; uncalibrated: pass --yardstick for a loss)")


def _verdict(width: float, ci: list[float] | None, req: Request) -> dict:
    t = req.target_width
    what = (f"a loss cost of {req.loss_budget:g}" if req.yardsticks
            else f"{req.lost_budget:.0%} of the first-order decrease")
    lo, hi = (width, width) if ci is None else ci
    if lo > t:
        return {"action": "keep", "text": f"eps = {req.eps:.0e} stays below {what} up to width {_fmt(width)} "
                f"(interval {_fmt(lo)}-{_fmt(hi)}), past the target {_fmt(t)}: keep it"}
    if hi <= t:
        return {"action": "act", "text": f"eps = {req.eps:.0e} reaches {what} at width {_fmt(width)} "
                f"(interval {_fmt(lo)}-{_fmt(hi)}), before the target {_fmt(t)}: change it (below)"}
    return {"action": "uncertain", "text": f"eps = {req.eps:.0e} reaches {what} at width {_fmt(width)}, but the "
            f"interval {_fmt(lo)}-{_fmt(hi)} contains the target {_fmt(t)}: measure more seeds or widths, or take "
            f"the change below to be safe"}


def _fmt(n: float) -> str:
    return "never" if not math.isfinite(n) else f"{n:,.0f}"
