"""Power laws fitted to sweep summaries: lr*(n) = C * n^k and L(n) = E + A * n^-alpha.

Two fits the paper relies on:

* The optimal (or max stable) learning rate against width, a straight line in
  log-log space (paper §4.2, Figure 4 bottom row; Appendix I, Table I1). We fit
  it by ordinary least squares in log2 space, so ``k`` is "how many doublings
  of the LR per doubling of width", and report a Student-t interval for the
  slope and for the prediction at a target width. ``batched_slopes`` does the
  same fit for thousands of bootstrap replicates at once.
* The best loss against width with an irreducible term, fitted as Chinchilla's
  approach 3 does (Hoffmann et al. 2022): a Huber loss on log-space residuals,
  minimised by L-BFGS from a grid of initialisations, keeping the best.

numpy and scipy only; nothing here knows about files or the CLI.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from scaleadvise.analysis.fit_bowl import Averaged

# Huber threshold on log-loss residuals; Chinchilla (approach 3) uses 1e-3.
HUBER_DELTA = 1e-3


@dataclass(frozen=True)
class PowerLaw:
    """log2 y = log2_c + k * log2 x, fitted by least squares on ``n`` points."""

    k: float
    log2_c: float
    n: int
    k_se: float  # standard error of k; nan with fewer than three points
    resid_sd: float  # residual standard deviation in log2 units; nan when dof == 0
    x_mean: float  # mean of log2 x, for prediction intervals
    sxx: float  # sum of squared deviations of log2 x

    @property
    def dof(self) -> int:
        return self.n - 2

    @property
    def c(self) -> float:
        return float(2.0**self.log2_c)

    def predict(self, x: float) -> float:
        return float(2.0 ** (self.log2_c + self.k * np.log2(x)))

    def k_interval(self, level: float = 0.95) -> tuple[float, float] | None:
        """Student-t interval for the slope; None when there is no residual dof."""
        if self.dof < 1 or not np.isfinite(self.k_se):
            return None
        h = _t_quantile(level, self.dof) * self.k_se
        return (self.k - h, self.k + h)

    def predict_interval(self, x: float, level: float = 0.95) -> tuple[float, float] | None:
        """Interval for the fitted line (the mean lr*) at ``x``, back in linear units."""
        if self.dof < 1 or not np.isfinite(self.resid_sd):
            return None
        x0 = float(np.log2(x))
        se = self.resid_sd * np.sqrt(1.0 / self.n + (x0 - self.x_mean) ** 2 / self.sxx)
        mid = self.log2_c + self.k * x0
        h = _t_quantile(level, self.dof) * se
        return (float(2.0 ** (mid - h)), float(2.0 ** (mid + h)))


def _t_quantile(level: float, dof: float) -> float:
    from scaleadvise.analysis.fit_optima import _quantile

    return _quantile(level, dof)


def fit_power_law(x: np.ndarray, y: np.ndarray) -> PowerLaw | None:
    """Least-squares line through (log2 x, log2 y); None with fewer than two distinct x."""
    lx = np.log2(np.asarray(x, dtype=float))
    ly = np.log2(np.asarray(y, dtype=float))
    ok = np.isfinite(lx) & np.isfinite(ly)
    lx, ly = lx[ok], ly[ok]
    n = lx.size
    if n < 2 or np.ptp(lx) == 0:
        return None
    x_mean = lx.mean()
    dx = lx - x_mean
    sxx = float(dx @ dx)
    k = float(dx @ (ly - ly.mean()) / sxx)
    log2_c = float(ly.mean() - k * x_mean)
    if n > 2:
        resid = ly - (log2_c + k * lx)
        resid_sd = float(np.sqrt(resid @ resid / (n - 2)))
        k_se = resid_sd / np.sqrt(sxx)
    else:
        resid_sd = k_se = float("nan")
    return PowerLaw(k=k, log2_c=log2_c, n=n, k_se=k_se, resid_sd=resid_sd, x_mean=float(x_mean), sxx=sxx)


def batched_slopes(log2_x: np.ndarray, log2_y: np.ndarray, target_log2_x: float | None = None):
    """Slopes (and predictions at a target) of many least-squares lines at once.

    ``log2_y`` has shape (B, W); NaN entries are left out of their own row's fit
    (a width whose optimum a bootstrap replicate could not find). Rows with fewer
    than two usable widths give NaN. Returns (k, log2 y at target or None).
    """
    y = np.asarray(log2_y, dtype=float)
    m = np.isfinite(y)
    w = m.astype(float)
    x = np.broadcast_to(np.asarray(log2_x, dtype=float), y.shape)
    n = w.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = (w * x).sum(-1) / n
        ym = np.where(m, y, 0.0).sum(-1) / n
        dx = np.where(m, x - xm[:, None], 0.0)
        sxx = (dx * dx).sum(-1)
        k = (dx * np.where(m, y - ym[:, None], 0.0)).sum(-1) / sxx
        k = np.where((n >= 2) & (sxx > 0), k, np.nan)
        pred = None if target_log2_x is None else ym + k * (target_log2_x - xm)
    return k, pred


@dataclass(frozen=True)
class LossLaw:
    """L(n) = E + A * n^-alpha (Chinchilla approach 3 in one variable)."""

    e: float
    a: float
    alpha: float
    n: int

    def predict(self, width: float) -> float:
        return float(self.e + self.a * float(width) ** -self.alpha)


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def fit_loss_law(widths: np.ndarray, losses: np.ndarray, delta: float = HUBER_DELTA,
                 iterations: int = 300) -> LossLaw | None:
    """Robust fit of L(n) = E + A n^-alpha to the best loss per width.

    As in Chinchilla's approach 3 we parameterise E = exp(e), A = exp(a) and
    minimise the Huber loss of log L_pred - log L_obs, where
    log L_pred = logsumexp(a - alpha log n, e), from a grid of initialisations
    (the objective is not convex) and keep the lowest. The minimiser is
    Levenberg-Marquardt on Huber-reweighted residuals (IRLS), run for every
    initialisation at once as one batched numpy computation, accepting a step
    only when it lowers that start's Huber loss. Needs three widths and
    positive losses; returns None otherwise.
    """
    n = np.asarray(widths, dtype=float)
    y = np.asarray(losses, dtype=float)
    ok = np.isfinite(n) & np.isfinite(y) & (n > 0) & (y > 0)
    n, y = n[ok], y[ok]
    if np.unique(n).size < 3:
        return None
    log_n, log_y = np.log(n), np.log(y)

    # Initialisations: E a fraction of the smallest loss, alpha over a range, A through
    # the smallest width's loss.
    y_min = float(y.min())
    e0, alpha0 = (g.ravel() for g in np.meshgrid(np.log(np.array([1e-3, 0.5, 0.9]) * y_min),
                                                  np.array([0.1, 0.3, 0.6, 1.0, 2.0])))
    a0 = np.log(np.maximum(y[np.argmin(n)] - np.exp(e0), 1e-3 * y_min)) + alpha0 * log_n.min()
    theta = np.stack([a0, e0, alpha0], 1)  # (S, 3)

    def evaluate(th: np.ndarray):
        t_pow = th[:, :1] - th[:, 2:] * log_n  # (S, N)
        t_e = np.broadcast_to(th[:, 1:2], t_pow.shape)
        top = np.maximum(t_pow, t_e)
        log_pred = top + np.log(np.exp(t_pow - top) + np.exp(t_e - top))
        r = log_pred - log_y
        wa = np.exp(t_pow - log_pred)  # the power-law term's share of the prediction
        jac = np.stack([wa, 1.0 - wa, -wa * log_n], -1)  # (S, N, 3)
        return r, jac, _huber(r, delta).sum(-1)

    r, jac, cost = evaluate(theta)
    damping = np.full(theta.shape[0], 1e-3)
    done = np.zeros(theta.shape[0], dtype=bool)
    for _ in range(iterations):
        w = np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))  # IRLS weights of the Huber loss
        jw = jac * w[..., None]
        h = np.einsum("snk,snl->skl", jw, jac)
        g = np.einsum("snk,sn->sk", jw, r)
        h = h + damping[:, None, None] * (np.eye(3) * np.diagonal(h, axis1=1, axis2=2)[:, None, :] + 1e-12 * np.eye(3))
        step = np.linalg.solve(h, g[..., None])[..., 0]
        trial = theta - step
        trial[:, 2] = np.clip(trial[:, 2], 0.0, 10.0)
        r_t, jac_t, cost_t = evaluate(trial)
        better = cost_t < cost
        theta = np.where(better[:, None], trial, theta)
        r = np.where(better[:, None], r_t, r)
        jac = np.where(better[:, None, None], jac_t, jac)
        # A start is done once an accepted step gains almost nothing, or no step helps.
        done |= (better & (cost - cost_t <= 1e-10 * np.maximum(cost, 1e-30))) | (damping > 1e10)
        cost = np.where(better, cost_t, cost)
        damping = np.where(better, damping / 3.0, damping * 4.0)
        if done.all():
            break
    a, e, alpha = theta[int(np.argmin(cost))]
    return LossLaw(e=float(np.exp(e)), a=float(np.exp(a)), alpha=float(alpha), n=int(n.size))


def grid_offsets(log2_x: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 target_log2_x: float | None = None) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """How far the LR grid's resolution alone can move a fitted slope (and prediction).

    When each log2 y_i is only known to lie in [y_i + lo_i, y_i + hi_i] (a max
    stable LR lies between the last stable LR and the first unstable one, C.1),
    the slope and the prediction are linear in the unknown offsets, so their
    exact range is reached at a corner of the box. It is a bound, not a random
    error: on power-of-two grids the offsets drift smoothly with width, which is
    exactly the pattern that tilts a fitted line.
    """
    lx = np.asarray(log2_x, dtype=float)
    dx = lx - lx.mean()
    w_k = dx / float(dx @ dx)

    def bound(weights: np.ndarray) -> tuple[float, float]:
        ends = np.stack([weights * lo, weights * hi])
        return (float(ends.min(0).sum()), float(ends.max(0).sum()))

    k_off = bound(w_k)
    if target_log2_x is None:
        return k_off, None
    return k_off, bound(1.0 / lx.size + (target_log2_x - lx.mean()) * w_k)


def line_weights(log2_x: np.ndarray, target_log2_x: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The least-squares line as linear maps of the y values: slope = w_k @ y and, at
    the target, prediction = w_p @ y (w_p = 1/n + (x_t - mean x) w_k)."""
    lx = np.asarray(log2_x, dtype=float)
    dx = lx - lx.mean()
    w_k = dx / float(dx @ dx)
    return w_k, None if target_log2_x is None else 1.0 / lx.size + (target_log2_x - lx.mean()) * w_k


def scatter_variance(log2_x: np.ndarray, values: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """Variance of the points about the line beyond their own errors, one per row of ``values``.

    The method-of-moments estimate of a random-effects meta-regression (DerSimonian &
    Laird 1986, extended to a slope and to correlated estimates): with H the hat matrix
    of the line and S the points' covariance, E[e'e] = tr((I - H)(S + tau2 I)), so
    tau2 = max(0, (e'e - tr((I - H) S)) / (n - 2)). Zero with two points (nothing to see).
    """
    lx = np.asarray(log2_x, dtype=float)
    n = lx.size
    if n < 3:
        return np.zeros(len(values))
    X = np.stack([np.ones(n), lx - lx.mean()], 1)
    resid_maker = np.eye(n) - X @ np.linalg.solve(X.T @ X, X.T)
    e = values @ resid_maker.T  # (M, n) residuals of each row's line
    own = np.einsum("ij,mji->m", resid_maker, covs)
    return np.maximum(0.0, ((e * e).sum(-1) - own) / (n - 2))


@dataclass(frozen=True)
class LawBand:
    """The interval of the fitted law lr*(n) at any width, as ``_line`` computes it at the target
    (for the plot's band)."""

    avg: "Averaged"  # fit_bowl.Averaged: the per-width optima under each shape fit
    log2_widths: np.ndarray  # of the widths in the fit
    tau2: np.ndarray  # scatter about the law, per shape fit
    level: float

    def __call__(self, widths: np.ndarray) -> np.ndarray:
        """(len(widths), 2) lower and upper lr* at each width."""
        extra_dof = float(self.log2_widths.size - 2) if self.log2_widths.size > 2 else np.inf
        out = []
        for x in np.log2(np.asarray(widths, float)):
            w = line_weights(self.log2_widths, float(x))[1]
            est = self.avg.linear(w, (w @ w) * self.tau2, extra_dof)
            h = _t_quantile(self.level, round(est.dof, 1)) * est.se
            out.append((est.value - h, est.value + h))
        return np.exp2(np.array(out))


def law_intervals(avg, log2_widths: np.ndarray, target: float | None, level: float) -> dict:
    """k and the prediction at the target from the model-averaged optima (``fit_bowl.Averaged``),
    with small-sample intervals: {"k": (Estimate, ci), "pred": (Estimate, ci) or None, "tau", "band"}.

    Each estimate's variance is the optima's own (noise, shape uncertainty) plus their
    scatter about the power law (``scatter_variance``, with n - 2 degrees of freedom);
    the interval is Student-t with Satterthwaite's degrees of freedom. With two widths
    there is no scatter to measure: the interval then assumes the optima lie on the law.
    """
    lx = log2_widths[avg.rows]
    w_k, w_p = line_weights(lx, target)
    tau2 = scatter_variance(lx, avg.values, avg.covs)
    extra_dof = float(lx.size - 2) if lx.size > 2 else np.inf
    out = {"tau": float(np.sqrt(avg.weights @ tau2)), "band": LawBand(avg, lx, tau2, level)}
    for name, w in (("k", w_k), ("pred", w_p)):
        if w is None:
            out[name] = None
            continue
        est = avg.linear(w, (w @ w) * tau2, extra_dof)
        h = _t_quantile(level, round(est.dof, 1)) * est.se
        out[name] = (est, (est.value - h, est.value + h))
    return out
