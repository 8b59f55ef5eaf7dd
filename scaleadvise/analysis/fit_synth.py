"""Synthetic LR sweeps drawn from known laws, for tests, benchmarks and examples.

The loss of a run at width n and learning rate lr is

    L = E + A n^-alpha + kappa * h(d) + noise,   d = log2 lr - log2 lr*(n),

with lr*(n) = lr0 * (n / n0)^k a power-law optimum and h one of two bowls in
log2(lr), both with h(0) = h'(0) = 0, h''(0) = 2 and their minimum at d = 0
(so lr*(n) is exactly where the noise-free loss is lowest):

* ``shape="parabola"``: h = d^2 (1 + skew [d > 0]), a parabola (the shape of the
  paper's Figure 4 sweeps near their minimum), steeper above the optimum when
  ``skew > 0``;
* ``shape="exp"``: h = 2 (e^(skew d) - 1 - skew d) / skew^2, smooth and
  asymmetric: it rises linearly below the optimum and exponentially above it,
  the usual look of a loss-vs-log-LR curve over a wide sweep (``skew`` per octave;
  skew -> 0 is the parabola).

Runs more than ``diverge_octaves`` above the optimum are NaN (diverged). With
``steps`` the table has one row per logged step, the loss decaying to its final
value.
"""

SHAPES = ("parabola", "exp")


def bowl(d, shape: str = "parabola", skew: float = 0.0):
    """h(d): the loss above its minimum, in units of kappa, ``d`` octaves from the optimum."""
    d = np.asarray(d, float)
    if shape == "parabola":
        return d * d * (1.0 + skew * (d > 0))
    if shape == "exp":
        if skew == 0.0:
            return d * d
        z = skew * d
        return 2.0 * np.expm1(z) / skew**2 - 2.0 * d / skew
    raise ValueError(f"unknown shape {shape!r}; use one of {SHAPES}")

from collections.abc import Sequence

import numpy as np


def synthetic_sweep(widths: Sequence[float], lrs: Sequence[float], *, k: float = -1.0, lr0: float = 2.0**-6,
                    n0: float | None = None, E: float = 2.0, A: float = 20.0, alpha: float = 0.5,
                    kappa: float = 0.05, skew: float = 0.0, shape: str = "parabola",
                    diverge_octaves: float | None = 3.0, noise: float = 0.0, seeds: int = 1, steps: Sequence[int] | None = None,
                    rng: int | np.random.Generator = 0, as_frame: bool = True):
    """A sweep table (pandas DataFrame, or a dict of arrays) with known optimum lr*(n) = lr0 (n/n0)^k."""
    rng = np.random.default_rng(rng)
    widths, lrs = np.asarray(widths, float), np.asarray(lrs, float)
    n0 = float(widths[0]) if n0 is None else float(n0)
    w, lr, seed = (a.ravel() for a in np.meshgrid(widths, lrs, np.arange(seeds), indexing="ij"))
    d = np.log2(lr) - np.log2(optimal_lr(w, k=k, lr0=lr0, n0=n0))
    final = E + A * w**-alpha + kappa * bowl(d, shape, skew) + rng.normal(0.0, noise, w.size)
    if diverge_octaves is not None:
        final = np.where(d > diverge_octaves, np.nan, final)
    cols = {"width": w, "lr": lr, "seed": seed}
    if steps is None:
        cols["loss"] = final
    else:
        steps = np.asarray(steps)
        t = np.tile(steps, w.size)
        cols = {name: np.repeat(v, steps.size) for name, v in cols.items()}
        # Loss falls towards its final value; a diverged run is NaN at every logged step.
        cols["step"] = t
        cols["loss"] = np.repeat(final, steps.size) + 0.5 * (1.0 - t / steps.max()) ** 2
    if not as_frame:
        return cols
    import pandas as pd

    return pd.DataFrame(cols)


def optimal_lr(width, *, k: float, lr0: float, n0: float):
    """The law the sweep was drawn from: lr*(n) = lr0 (n / n0)^k."""
    return lr0 * (np.asarray(width, float) / n0) ** k


def true_max_stable_lr(width, *, k: float, lr0: float, n0: float, kappa: float = 0.05, skew: float = 0.0,
                       E: float = 2.0, A: float = 20.0, alpha: float = 0.5, diverge_octaves: float | None = 3.0,
                       instability: float = 0.2):
    """The continuous C.1 threshold: where loss reaches (1 + 20%) x minimum, or divergence, if sooner."""
    width = np.asarray(width, float)
    floor = E + A * width**-alpha
    d = np.sqrt(instability * floor / (kappa * (1.0 + skew)))
    if diverge_octaves is not None:
        d = np.minimum(d, diverge_octaves)
    return optimal_lr(width, k=k, lr0=lr0, n0=n0) * 2.0**d
