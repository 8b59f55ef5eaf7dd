"""Each width's optimal LR from one loss-vs-log2(lr) bowl shared by all widths.

Why not a parabola per width: real sweeps are steeper above the optimum than
below, and a symmetric parabola's vertex then sits below the true optimum by a
sizeable fraction of an octave (0.2 octaves on a bowl three times steeper
above). A separate asymmetric fit per width removes that bias but multiplies
the variance (the asymmetry and the location trade off within a few points).
What transfers across width is the *shape* of the bowl (the premise of
muTransfer and of the paper's Figure 4), so the shape is fitted once, from every
width, and each width keeps its own height a_i, curvature c_i and location v_i:

    loss(x) = a_i + c_i * g(x - v_i; p),   x = log2 lr,  g(0) = g'(0) = 0, g''(0) = 2

for three shape families (``bowl``): ``symmetric`` (g = d^2), ``kinked`` (d^2,
times e^p above the optimum) and ``exponential`` (2 (e^(p d) - 1 - p d) / p^2:
linear-ish below, exponential above). Each is a nonlinear least-squares fit,
by Levenberg-Marquardt over all widths at once (the normal equations are
block-diagonal per width plus the shared p: solved by the Schur complement),
to each width's cells within WINDOW octaves of its optimum (never past the
first unstable LR of C.1), weighted by their number of runs.

Model error: the three fits are averaged with Akaike weights (AICc, Hurvich &
Tsai 1989, on the runs-level Gaussian likelihood), and the uncertainty of the
average includes the spread between the models (Buckland, Burnham & Augustin
1997, "Model selection: an integral part of inference", eq. 9), so a shape the
data cannot pin down widens the interval instead of biasing it. The noise
level is that of the runs-level regression, (SS_seeds + RSS) / (runs -
parameters), with as many degrees of freedom; when a lack-of-fit F test says
the bowl misses the cell means by more than the seeds scatter (a shape outside
the three, or one that changes with width), it is the cell means' own residual
mean square instead (``ShapeFit.noise``). A single-seed sweep gets it from the
residuals alone.

Widths whose window cannot locate a minimum (fewer than four cells, or the
best LR at an end of its usable range) are left to the caller: ``fitted`` is
False there.
"""

from dataclasses import dataclass, replace

import numpy as np

# A fourth family with both parameters was tried: it fits a symmetric flat-bottomed bowl
# (loss ~ d^2 + d^4) with its minimum 0.17 octaves off, so it is left out.
SHAPES = ("symmetric", "kinked", "exponential")
WINDOW = 1.5  # octaves either side of each width's optimum (and at least two grid steps)
MIN_CELLS = 4  # a, c, v and one residual degree of freedom per width
LACK_OF_FIT_P = 0.05  # below this p-value the bowl misses the cell means by more than seed noise
_R, _LAM = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0), (-1.5, -0.75, 0.01, 0.75, 1.5, 2.5)  # start grids (0.01: no series branch)
_P_GRID = {"symmetric": [()], "kinked": [(r,) for r in _R], "exponential": [(lam,) for lam in _LAM]}
_P_BOUNDS = {"symmetric": ([], []), "kinked": ([-3.0], [3.0]), "exponential": ([-4.0], [4.0])}


def _exp_bowl(d: np.ndarray, lam) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q = 2 (e^(lam d) - 1 - lam d) / lam^2, dq/dd, dq/dlam (lam a number or an array broadcasting with d)."""
    lam = np.asarray(lam, dtype=float)
    small = np.abs(lam) < 1e-4  # its series to O(lam^2) there: no cancellation, and it meets the closed form
    if small.any():
        series = (d * d + lam * d**3 / 3.0 + lam * lam * d**4 / 12.0,
                  2.0 * d + lam * d * d + lam * lam * d**3 / 3.0, d**3 / 3.0 + lam * d**4 / 6.0)
        if small.all():
            return series
    safe = np.where(small, 1.0, lam)
    z = np.clip(safe * d, -60.0, 60.0)
    em1 = np.expm1(z)
    q = 2.0 * (em1 - z) / (safe * safe)
    closed = (q, 2.0 * em1 / safe, 2.0 * d * em1 / (safe * safe) - 2.0 * q / safe)
    return tuple(np.where(small, a, b) for a, b in zip(series, closed)) if small.any() else closed


def bowl(d: np.ndarray, shape: str, p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """g(d; p), dg/dd and dg/dp (..., len(p)) for one shape family; p holds its shared
    parameters: () symmetric, (r,) kinked (e^r times steeper above), (lam,) exponential."""
    p = np.atleast_1d(np.asarray(p, dtype=float))
    if shape == "kinked":
        up = d > 0
        s = np.where(up, np.exp(p[0]), 1.0)
        return d * d * s, 2.0 * d * s, np.where(up, d * d * s, 0.0)[..., None]
    if shape == "exponential":
        q, qd, ql = _exp_bowl(d, p[0])
        return q, qd, ql[..., None]
    return d * d, 2.0 * d, np.zeros((*np.shape(d), 0))


@dataclass(frozen=True)
class Cells:
    """The window cells of the fitted widths, flattened: one entry per (width, lr) cell."""

    width: np.ndarray  # (n,) index into the fitted widths 0..W-1
    x: np.ndarray  # (n,) log2 lr
    y: np.ndarray  # (n,) mean loss of the cell
    m: np.ndarray  # (n,) runs in the cell (the weight)
    n_widths: int
    ss_seeds: float  # sum over cells of the within-cell sum of squares
    dof_seeds: float  # sum over cells of (runs - 1)
    onehot: np.ndarray  # (n, W): per-width sums as one matrix product

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-width sums of ``values`` (..., n) -> (..., W)."""
        return values @ self.onehot


@dataclass(frozen=True)
class ShapeFit:
    """One shape family fitted to every width at once."""

    shape: str
    p: np.ndarray  # the shared shape parameters (none for "symmetric")
    a: np.ndarray  # (W,) loss at the optimum
    c: np.ndarray  # (W,) curvature scale
    v: np.ndarray  # (W,) log2 of the optimal LR
    cov_unit: np.ndarray  # (W, W) covariance of v per unit noise variance
    rss: float  # weighted residual sum of squares of the cell means
    n_params: int
    bad: np.ndarray  # (W,) bool: no convex bowl, or its minimum not inside the width's window

    def noise(self, cells: Cells) -> tuple[float, float, bool]:
        """(sigma^2 of one run, its degrees of freedom, whether the bowl lacks fit).

        The runs-level residual mean square (SS_seeds + RSS) / (runs - parameters), unless
        the classic lack-of-fit F test (pure error from the seeds against the residual of
        the cell means; Draper & Smith, Applied Regression Analysis, 3rd ed., §2.1) finds
        that the curve misses the cell means by more than seed noise: then the shape is
        wrong somewhere and the cell means' own residual mean square, RSS / (cells -
        parameters), is the honest noise level, with its fewer degrees of freedom.
        """
        dof = float(cells.m.sum()) - self.n_params
        if dof <= 0:
            return float("nan"), 0.0, False
        dof_fit = cells.x.size - self.n_params
        if cells.dof_seeds > 0 and dof_fit > 0 and cells.ss_seeds > 0:
            from scipy.special import fdtrc  # the F distribution's survival function

            lack = (self.rss / dof_fit) / (cells.ss_seeds / cells.dof_seeds)
            if fdtrc(dof_fit, cells.dof_seeds, lack) < LACK_OF_FIT_P:
                return self.rss / dof_fit, float(dof_fit), True
        return (cells.ss_seeds + self.rss) / dof, dof, False

    def aicc(self, cells: Cells) -> float:
        """AICc of the runs-level Gaussian model (Hurvich & Tsai 1989), for Akaike weights."""
        n, k = float(cells.m.sum()), self.n_params + 1  # + the noise variance
        rss = max(cells.ss_seeds + self.rss, 1e-300)
        return n * np.log(rss / n) + 2 * k + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else np.inf)


def _profile(cells: Cells, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each width, weighted least squares of y = a + c g: (a, c, rss), over leading axes of g."""
    m, y = cells.m, cells.y
    mg = m * g
    sw, sy, syy = cells.sums(np.stack([m, m * y, m * y * y]))
    sg, sgg, sgy = cells.sums(np.stack([mg, mg * g, mg * y]))
    det = sw * sgg - sg * sg
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (sw * sgy - sg * sy) / det
        a = (sy - c * sg) / sw
    return a, c, syy - a * sy - c * sgy


def _search(cells: Cells, shape: str, v0: np.ndarray, step: float) -> tuple[tuple, np.ndarray] | None:
    """Coarse start: every p of the shape's grid, every v within 3/4 octave of v0 (per width)."""
    offsets = np.arange(-0.75, 0.75 + 1e-9, step / 4.0)
    d = cells.x[None, :] - (v0[cells.width][None, :] + offsets[:, None])  # (V, n)
    grid = np.array(_P_GRID[shape], dtype=float).reshape(len(_P_GRID[shape]), -1)  # (P, k)
    if shape == "kinked":  # every p at once: (P, V, n)
        g = d * d * np.where(d > 0, np.exp(grid[:, :1, None]), 1.0)
    elif shape == "exponential":
        g = _exp_bowl(d, grid[:, :1, None])[0]
    else:
        g = (d * d)[None]
    _, c, rss = _profile(cells, g)  # (P, V, W)
    rss = np.where(np.isfinite(rss) & (c > 0), rss, np.inf)
    j = np.argmin(rss, axis=1)  # (P, W): each width's best v for each p
    total = np.take_along_axis(rss, j[:, None, :], 1)[:, 0].sum(-1)
    i = int(np.argmin(total))
    return (tuple(grid[i]), v0 + offsets[j[i]]) if np.isfinite(total[i]) else None


def fit_shape(cells: Cells, shape: str, v0: np.ndarray, step: float, iterations: int = 60) -> ShapeFit | None:
    """Levenberg-Marquardt over (a_i, c_i, v_i) per width and the shared p (None if it cannot start).

    The normal equations are block-diagonal per width (3 x 3) plus the shared columns,
    solved through their Schur complement. Each v_i stays within the LRs of its window:
    a minimum outside them would be an extrapolation, and such a width is marked ``bad``
    (as is one whose bowl is not convex).
    """
    start = _search(cells, shape, v0, step)
    if start is None:
        return None
    p, v = np.asarray(start[0], dtype=float), start[1]
    W, wi, m, k = cells.n_widths, cells.width, cells.m, p.size
    lo_v = np.full(W, np.inf)
    np.minimum.at(lo_v, wi, cells.x)
    hi_v = np.full(W, -np.inf)
    np.maximum.at(hi_v, wi, cells.x)
    lo_p, hi_p = (np.array(b, dtype=float) for b in _P_BOUNDS[shape])
    a, c, _ = _profile(cells, bowl(cells.x - v[wi], shape, p)[0])

    def state(a, c, v, p):
        g, gd, gp = bowl(cells.x - v[wi], shape, p)
        r = cells.y - a[wi] - c[wi] * g
        J = np.stack([np.ones_like(g), g, -c[wi] * gd], -1)  # (n, 3): d(fit)/d(a, c, v)
        return r, J, c[wi, None] * gp, float(m @ (r * r))  # d(fit)/dp: (n, k)

    def normal(J, Jp, r):
        # Per width A_i (3 x 3), its gradient and B_i (3 x k), each a product with the one-hot matrix.
        mJ = m[:, None] * J
        per_cell = np.concatenate([(mJ[:, :, None] * J[:, None, :]).reshape(-1, 9), mJ * r[:, None],
                                   (mJ[:, :, None] * Jp[:, None, :]).reshape(len(m), 3 * k)], 1)
        sums = cells.onehot.T @ per_cell
        mJp = m[:, None] * Jp
        return sums[:, :9].reshape(W, 3, 3), sums[:, 9:12], sums[:, 12:].reshape(W, 3, k), mJp.T @ Jp, mJp.T @ r

    r, J, Jp, cost = state(a, c, v, p)
    damping = 1e-3
    for _ in range(iterations):
        A, gl, B, D, gs = normal(J, Jp, r)
        Ad = A + damping * (np.einsum("wii->wi", A)[:, :, None] * np.eye(3)) + 1e-12 * np.eye(3)
        try:
            sol = np.linalg.solve(Ad, np.concatenate([gl[..., None], B], -1))  # A^-1 g, A^-1 B
            dp = np.zeros(0)
            if k:
                schur = D + damping * np.diag(np.diag(D)) - np.einsum("wik,wil->kl", B, sol[..., 1:])
                dp = np.linalg.solve(schur + 1e-12 * np.eye(k), gs - np.einsum("wik,wi->k", B, sol[..., 0]))
            dl = sol[..., 0] - sol[..., 1:] @ dp
        except np.linalg.LinAlgError:
            break
        trial = (a + dl[:, 0], c + dl[:, 1], np.clip(v + dl[:, 2], lo_v, hi_v), np.clip(p + dp, lo_p, hi_p))
        r2, J2, Jp2, cost2 = state(*trial)
        if np.isfinite(cost2) and cost2 < cost:
            converged = cost - cost2 <= 1e-10 * max(cost, 1e-30)
            (a, c, v, p), r, J, Jp, cost = trial, r2, J2, Jp2, cost2
            damping = max(damping / 3.0, 1e-9)
            if converged:
                break
        else:
            damping *= 4.0
            if damping > 1e8:
                break
    edge = 1e-6 * max(step, 1e-3)
    bad = ~((c > 0) & (v > lo_v + edge) & (v < hi_v - edge) & np.isfinite(v))
    A, _, B, D, _ = normal(J, Jp, r)
    try:
        Ainv = np.linalg.inv(A)
    except np.linalg.LinAlgError:
        return None
    fit = ShapeFit(shape=shape, p=p, a=a, c=c, v=v, cov_unit=np.full((W, W), np.nan), rss=cost,
                   n_params=3 * W + k, bad=bad)
    if bad.any():  # the caller drops these widths and fits again: no covariance needed
        return fit
    cov = np.diag(Ainv[:, 2, 2])
    if k:
        E = Ainv @ B  # A_i^-1 B_i: (W, 3, k)
        schur = D - np.einsum("wik,wil->kl", B, E)
        try:
            Ev = E[:, 2, :]
            cov = cov + Ev @ np.linalg.solve(schur, Ev.T)  # block inverse: A^-1 + E S^-1 E^T
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.linalg.eigvalsh(schur) > 0):
            return None
    return replace(fit, cov_unit=cov)


@dataclass(frozen=True)
class Estimate:
    """A linear function of the optima (k, a prediction, one width's log2 lr*), model-averaged."""

    value: float
    se: float
    dof: float


@dataclass(frozen=True)
class Averaged:
    """Every found width's log2 optimum under each shape fit, and their Akaike weights.

    A width the bowls could not fit enters every fit at its best observed LR with
    the variance of a uniform error over the LR grid's resolution there.
    """

    rows: np.ndarray  # (W,) grid rows with an optimum
    fitted: np.ndarray  # (W,) bool: located by the bowl fits
    shapes: list[str]
    p: list[np.ndarray]  # each fit's shared shape parameters
    values: np.ndarray  # (M, W) log2 lr* under each fit
    covs: np.ndarray  # (M, W, W) their covariance (noise variance included)
    loss: np.ndarray  # (W,) fitted loss at the optimum (model-averaged)
    weights: np.ndarray  # (M,) Akaike weights
    dof: np.ndarray  # (M,) degrees of freedom of each fit's noise variance
    window: np.ndarray  # (rows of the grid, L) bool: cells the bowls used
    noise_from: str | None  # "seeds and residuals", "residuals", or None (no bowl fitted)
    fits: list[ShapeFit]

    @property
    def v(self) -> np.ndarray:
        return self.weights @ self.values

    def linear(self, coef: np.ndarray, extra_var: np.ndarray | None = None, extra_dof: float = np.inf) -> Estimate:
        """sum_i coef_i v_i, averaged over the shape fits with the variance of Buckland et al. (1997, eq. 9):
        se = sum_m w_m sqrt(var_m + (theta_m - theta_bar)^2), so disagreement between shapes counts as error.

        ``extra_var`` (one per fit) is variance from outside the bowl fits (the optima's
        scatter about the power law) with ``extra_dof`` degrees of freedom; each fit's
        degrees of freedom combine the two by Satterthwaite's (1946) approximation.
        """
        vals = self.values @ coef
        noise = (self.covs @ coef) @ coef
        extra = np.zeros_like(noise) if extra_var is None else np.asarray(extra_var, float)
        total = noise + extra
        mean = float(self.weights @ vals)
        se = float(self.weights @ np.sqrt(total + (vals - mean) ** 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            den = noise**2 / self.dof + (extra**2 / extra_dof if np.isfinite(extra_dof) else 0.0)
            dofs = np.where(den > 0, total**2 / den, np.inf)
        return Estimate(value=mean, se=se, dof=float(np.min(dofs[self.weights > 1e-3])))

    def widths(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every width's own estimate at once, as ``linear`` gives it: (value, se, dof) arrays."""
        noise = np.einsum("mii->mi", self.covs)
        mean = self.weights @ self.values
        se = self.weights @ np.sqrt(noise + (self.values - mean) ** 2)
        dof = np.min(np.where(self.weights[:, None] > 1e-3, self.dof[:, None], np.inf), axis=0)
        return mean, se, np.broadcast_to(dof, mean.shape)

    def width(self, i: int) -> Estimate:
        value, se, dof = self.widths()
        return Estimate(value=float(value[i]), se=float(se[i]), dof=float(dof[i]))


def grid_variance(log2_lr: np.ndarray, present: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Variance of a uniform error between the midpoints to the neighbouring LRs swept
    (mirrored at an end of the sweep; one octave when a width has a single LR)."""
    out = np.empty(best.size)
    for i, b in enumerate(best):  # a loop over widths
        xs = log2_lr[present[i]]
        xb = log2_lr[b]
        below, above = xb - xs[xs < xb], xs[xs > xb] - xb
        lo = below.min() if below.size else (above.min() if above.size else 1.0)
        hi = above.min() if above.size else lo
        out[i] = ((lo + hi) / 2.0) ** 2 / 12.0
    return out


def estimate_optima(log2_lr: np.ndarray, loss: np.ndarray, std: np.ndarray, runs: np.ndarray, usable: np.ndarray,
                    present: np.ndarray, found: np.ndarray, best: np.ndarray, v0: np.ndarray) -> Averaged:
    """Fit every shape to the widths that can be fitted, average them, and add the rest.

    ``loss``, ``std``, ``runs``: the grid's (W, L) cell means, seed sd and runs;
    ``usable``: cells a bowl may use (finite, at or below the first unstable LR of C.1);
    ``found``: widths with any finite LR; ``best``: index of each width's best LR;
    ``v0``: a first guess of each optimum (log2 lr).
    """
    rows = np.flatnonzero(found)
    fit_rows, step = window_cells(log2_lr, usable[rows], best[rows], v0[rows])
    fit_rows = rows[fit_rows]
    fits, weights, sigma2, dof, noise_from = [], np.ones(1), np.zeros(1), np.full(1, np.inf), None
    window = np.zeros_like(usable)
    for _ in range(4):  # a width no shape can place inside its window is left out, and the rest refitted
        if fit_rows.size == 0:
            break
        fits, sub, cells = _fit_all(log2_lr, loss, std, runs, usable, v0, fit_rows, step)
        bad = np.zeros(fit_rows.size, bool)
        for f in fits:
            bad |= f.bad
        if not bad.any():
            break
        fit_rows, fits = fit_rows[~bad], []
    noise = [f.noise(cells) for f in fits] if fits else []
    if fits and all(np.isfinite(n[0]) and n[1] > 0 for n in noise):
        aicc = np.array([f.aicc(cells) for f in fits])
        weights = np.exp(-(aicc - aicc.min()) / 2.0)
        weights /= weights.sum()
        sigma2, dof = np.array([n[0] for n in noise]), np.array([n[1] for n in noise])
        noise_from = ("residuals (the bowl lacks fit)" if noise[int(np.argmax(weights))][2] else
                      "seeds and residuals" if cells.dof_seeds > 0 else "residuals")
        window[fit_rows] = sub
    else:  # no convex bowl, or as many parameters as cells (no noise level): no bowl at all
        fits, fit_rows = [], fit_rows[:0]
    fitted = np.isin(rows, fit_rows)
    M, W = max(len(fits), 1), rows.size
    values = np.tile(np.take(log2_lr, best[rows]), (M, 1))
    covs = np.zeros((M, W, W))
    other = np.flatnonzero(~fitted)
    covs[:, other, other] = grid_variance(log2_lr, present[rows[other]], best[rows[other]])
    at = np.flatnonzero(fitted)
    loss_at = np.take_along_axis(loss[rows], best[rows][:, None], 1)[:, 0]
    for k, (f, s2) in enumerate(zip(fits, sigma2)):
        values[k, at] = f.v
        covs[k][np.ix_(at, at)] = s2 * f.cov_unit
    if fits:
        loss_at = loss_at.copy()
        loss_at[at] = weights @ np.stack([f.a for f in fits])
    return Averaged(rows=rows, fitted=fitted, shapes=[f.shape for f in fits] or ["grid"],
                    p=[f.p for f in fits] or [np.zeros(0)], values=values, covs=covs, loss=loss_at,
                    weights=weights, dof=dof, window=window, noise_from=noise_from, fits=fits)


def _fit_all(log2_lr, loss, std, runs, usable, v0, fit_rows, step) -> tuple[list[ShapeFit], np.ndarray, Cells]:
    """Every shape fitted to the windows of ``fit_rows``: (fits, windows (rows, L), cells)."""
    sub = usable[fit_rows] & (np.abs(log2_lr[None, :] - v0[fit_rows, None]) <= _half(step) + 1e-9)
    r, j = np.nonzero(sub)
    m = runs[fit_rows][sub].astype(float)
    s = std[fit_rows][sub]
    seeds = (m >= 2) & np.isfinite(s)
    onehot = np.zeros((r.size, fit_rows.size))
    onehot[np.arange(r.size), r] = 1.0
    cells = Cells(width=r, x=log2_lr[j], y=loss[fit_rows][sub], m=m, n_widths=fit_rows.size,
                  ss_seeds=float(((m - 1) * np.where(seeds, s, 0.0) ** 2).sum()),
                  dof_seeds=float(((m - 1) * seeds).sum()), onehot=onehot)
    fits = [f for f in (fit_shape(cells, shape, v0[fit_rows], step) for shape in SHAPES) if f is not None]
    return fits, sub, cells


def _half(step: float) -> float:
    return max(WINDOW, 2.0 * step)


def window_cells(log2_lr: np.ndarray, usable: np.ndarray, best: np.ndarray,
                 v0: np.ndarray) -> tuple[np.ndarray, float]:
    """(rows that can be fitted, median grid step in octaves): at least MIN_CELLS usable
    cells within the window, and a usable LR on each side of the best one."""
    x = log2_lr
    steps = np.diff(x)
    step = float(np.median(steps)) if steps.size else 1.0
    win = usable & (np.abs(x[None, :] - v0[:, None]) <= _half(step) + 1e-9)
    idx = np.arange(x.size)
    has_low = (usable & (idx[None, :] < best[:, None])).any(-1)
    has_high = (usable & (idx[None, :] > best[:, None])).any(-1)
    ok = (win.sum(-1) >= MIN_CELLS) & has_low & has_high & np.isfinite(v0)
    return np.flatnonzero(ok), step


def resample_optima(avg: Averaged, log2_lr: np.ndarray, loss: np.ndarray, runs: np.ndarray,
                    iterations: int = 6) -> np.ndarray:
    """log2 optima of resampled grids ``loss`` (B, rows, L; ``runs`` per cell) with each shape, its p, the
    windows and the Akaike weights held at the fitted values: (B, W) model-averaged.

    Gauss-Newton on (a, c, v) per replicate and width, from the fitted values, batched
    over replicates and widths. It resamples the noise only (not the choice of shape),
    so it is a check on the delta-method variance, not an interval of its own. Widths
    not fitted take each replicate's best observed LR.
    """
    B = loss.shape[0]
    sub = loss[:, avg.rows]
    finite = np.isfinite(sub)
    best = np.argmin(np.where(finite, sub, np.inf), -1)
    out = np.where(finite.any(-1), np.take(log2_lr, best), np.nan)
    at = np.flatnonzero(avg.fitted)
    if not avg.fits or at.size == 0:
        return out
    win = avg.window[avg.rows[at]]  # (Wf, L)
    K = int(win.sum(-1).max())
    order = np.argsort(~win, axis=-1, kind="stable")[:, :K]  # each width's window cells first
    valid = np.take_along_axis(win, order, -1)  # (Wf, K)
    xk = np.where(valid, log2_lr[order], 0.0)
    yk = np.take_along_axis(sub[:, at], np.broadcast_to(order, (B, *order.shape)), -1)
    mk = np.where(valid & np.isfinite(yk), np.take_along_axis(runs[avg.rows[at]], order, -1), 0.0)
    yk = np.where(mk > 0, yk, 0.0)
    total = np.zeros((B, at.size))
    for w, f in zip(avg.weights, avg.fits):
        a, c, v = (np.broadcast_to(t, (B, at.size)).copy() for t in (f.a, f.c, f.v))
        for _ in range(iterations):
            g, gd, _ = bowl(xk - v[..., None], f.shape, f.p)
            r = yk - a[..., None] - c[..., None] * g
            J = np.stack([np.ones_like(g), g, -c[..., None] * gd], -1)  # (B, Wf, K, 3)
            mJ = mk[..., None] * J
            A = np.matmul(np.swapaxes(mJ, -1, -2), J) + 1e-12 * np.eye(3)
            step = np.linalg.solve(A, np.matmul(np.swapaxes(mJ, -1, -2), r[..., None]))[..., 0]
            a, c, v = a + step[..., 0], c + step[..., 1], v + np.clip(step[..., 2], -0.5, 0.5)
        total += w * np.where(c > 0, v, np.nan)
    out[:, at] = total
    return out
