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

import numpy as np

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


def _t_quantile(level: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, dof))


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


def _huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss of residuals and its derivative."""
    small = np.abs(r) <= delta
    loss = np.where(small, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))
    grad = np.where(small, r, delta * np.sign(r))
    return loss, grad


def fit_loss_law(widths: np.ndarray, losses: np.ndarray, delta: float = HUBER_DELTA) -> LossLaw | None:
    """Robust fit of L(n) = E + A n^-alpha to the best loss per width.

    As in Chinchilla's approach 3 we parameterise E = exp(e), A = exp(a) and
    minimise the Huber loss of log L_pred - log L_obs, where
    log L_pred = logsumexp(a - alpha log n, e), from a grid of initialisations
    (the objective is not convex) and keep the lowest. Needs three widths and
    positive losses; returns None otherwise.
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    n = np.asarray(widths, dtype=float)
    y = np.asarray(losses, dtype=float)
    ok = np.isfinite(n) & np.isfinite(y) & (n > 0) & (y > 0)
    n, y = n[ok], y[ok]
    if np.unique(n).size < 3:
        return None
    log_n, log_y = np.log(n), np.log(y)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, e, alpha = theta
        terms = np.stack([a - alpha * log_n, np.full_like(log_n, e)])
        log_pred = logsumexp(terms, axis=0)
        loss, dr = _huber(log_pred - log_y, delta)
        # d log_pred / d(a, e, alpha): softmax weights of the two terms.
        wa = np.exp(terms[0] - log_pred)
        we = 1.0 - wa
        grad = np.array([dr @ wa, dr @ we, dr @ (-wa * log_n)])
        return float(loss.sum()), grad

    best = None
    y_min = float(y.min())
    for e_frac in (0.0, 0.5, 0.9):
        for alpha0 in (0.1, 0.3, 0.6, 1.0, 2.0):
            e0 = np.log(max(e_frac * y_min, 1e-3 * y_min))
            # A from the smallest width, so each start passes near the data.
            a0 = np.log(max(y[np.argmin(n)] - np.exp(e0), 1e-3 * y_min)) + alpha0 * log_n.min()
            res = minimize(objective, np.array([a0, e0, alpha0]), jac=True, method="L-BFGS-B",
                           bounds=[(None, None), (None, None), (0.0, 10.0)])
            if best is None or res.fun < best.fun:
                best = res
    a, e, alpha = best.x
    return LossLaw(e=float(np.exp(e)), a=float(np.exp(a)), alpha=float(alpha), n=int(n.size))


def grid_offsets(log2_x: np.ndarray, lo: np.ndarray, hi: np.ndarray, target_log2_x: float | None = None,
                 level: float = 0.95) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """How far the grid's resolution alone can move a fitted slope (and prediction).

    When each log2 y_i is only known to lie in [y_i + lo_i, y_i + hi_i] (a max
    stable LR lies between the last stable LR and the first unstable one, C.1),
    treat the unknown offset as uniform and independent across widths: slope
    and prediction are linear in the offsets, so their mean and variance follow
    exactly; return normal intervals as offsets from the fitted values.
    """
    from scipy.stats import norm

    lx = np.asarray(log2_x, dtype=float)
    dx = lx - lx.mean()
    w_k = dx / float(dx @ dx)
    z = float(norm.ppf(0.5 + level / 2.0))
    mid, var = (lo + hi) / 2.0, (hi - lo) ** 2 / 12.0

    def interval(weights: np.ndarray) -> tuple[float, float]:
        centre, sd = float(weights @ mid), float(np.sqrt(weights**2 @ var))
        return (centre - z * sd, centre + z * sd)

    k_off = interval(w_k)
    if target_log2_x is None:
        return k_off, None
    return k_off, interval(1.0 / lx.size + (target_log2_x - lx.mean()) * w_k)
