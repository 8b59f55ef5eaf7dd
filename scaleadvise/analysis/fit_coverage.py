"""How often `fit`'s 95% intervals contain the truth, on sweeps drawn from known laws.

A *family* fixes how a sweep is drawn: the number of widths (128, 256, ...),
seeds per (width, lr), the seed noise of the final loss, the shape of the
loss-vs-log2(lr) bowl (``fit_synth.bowl``: symmetric, or steeper above the
optimum), the LR grid spacing and where runs diverge. Each repetition draws a
fresh law (exponent k uniform in [-1, 0.25], the optimum's offset from the LR
grid uniform over one grid step, so grid phase is averaged over), writes the
sweep as a CSV and runs the real ``fit_sweep`` on it, as ``scaleadvise fit``
does. The truth is the law the sweep was drawn from: at every width the
noise-free expected loss is lowest exactly at lr*(n) = lr0 (n/n0)^k (``bowl``
has its minimum at d = 0 for every shape), so the estimands are k and
lr*(target).

``coverage(family, reps)`` counts how often the intervals for k
(``lr_exponent_ci``) and for ``predicted_lr`` contain them (a missing interval
counts as a miss), and the mean errors of the point estimates: the bias of k,
of log2 predicted_lr and of each width's log2 optimum.

    python examples/fit/coverage.py            # the table in the report; -h for options
"""

import os
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from scaleadvise.analysis.fit import FitOptions, fit_sweep
from scaleadvise.analysis.fit_synth import optimal_lr, synthetic_sweep

N0 = 128  # the smallest width; widths are N0 * 2^i
TARGET_WIDTH = 16384


@dataclass(frozen=True)
class Family:
    """How the sweeps of one family are drawn (see the module docstring)."""

    name: str
    n_widths: int = 4
    seeds: int = 2
    noise: float = 0.01  # sd of one run's final loss
    shape: str = "parabola"  # fit_synth.bowl
    skew: float = 0.0
    kappa: float = 0.05  # loss per octave^2 at the optimum (half the curvature)
    step: float = 0.5  # LR grid spacing in octaves
    diverge_octaves: float | None = 3.0  # runs this far above the optimum are NaN
    span: float = 5.0  # octaves swept either side of the smallest/largest optimum

    def widths(self) -> np.ndarray:
        return N0 * 2.0 ** np.arange(self.n_widths)


def _families() -> tuple[Family, ...]:
    base = Family("base")
    out = [base]
    for n in (2, 3, 6):
        out.append(replace(base, name=f"widths={n}", n_widths=n))
    for s in (1, 3, 4):
        out.append(replace(base, name=f"seeds={s}", seeds=s))
    out.append(replace(base, name="noise=0.003", noise=0.003))
    out.append(replace(base, name="noise=0.02", noise=0.02))
    out.append(replace(base, name="skew=2 (parabola)", skew=2.0))
    out.append(replace(base, name="skew=1.5 (exp)", shape="exp", skew=1.5))
    out.append(replace(base, name="skew=2, widths=2", skew=2.0, n_widths=2))
    out.append(replace(base, name="exp, widths=6, seeds=4", shape="exp", skew=1.5, n_widths=6, seeds=4))
    out.append(replace(base, name="exp, seeds=1", shape="exp", skew=1.5, seeds=1))
    out.append(replace(base, name="skew=2, widths=6, seeds=4, noise=0.003", skew=2.0, n_widths=6, seeds=4,
                       noise=0.003))
    out.append(replace(base, name="exp, widths=6, seeds=4, noise=0.003", shape="exp", skew=1.5, n_widths=6,
                       seeds=4, noise=0.003))
    out.append(replace(base, name="diverge at 1.5 oct", diverge_octaves=1.5))
    out.append(replace(base, name="exp, diverge at 1 oct", shape="exp", skew=1.5, diverge_octaves=1.0))
    out.append(replace(base, name="grid step 1 oct", step=1.0))
    out.append(replace(base, name="exp, step 0.25, seeds=3", shape="exp", skew=1.5, step=0.25, seeds=3))
    return tuple(out)


FAMILIES = _families()


def draw_sweep(family: Family, rng: np.random.Generator):
    """One sweep of ``family`` and its truth: (DataFrame, {"k", "lr0", "predicted_lr"})."""
    k = float(rng.uniform(-1.0, 0.25))
    log2_lr0 = -7.0 + float(rng.uniform(0.0, family.step))  # the optimum's phase on the grid
    widths = family.widths()
    log2_opt = log2_lr0 + k * np.log2(widths / N0)
    lo = np.floor(log2_opt.min() - family.span)
    lrs = 2.0 ** np.arange(lo, log2_opt.max() + family.span + 1e-9, family.step)
    df = synthetic_sweep(widths, lrs, k=k, lr0=2.0**log2_lr0, n0=N0, kappa=family.kappa, skew=family.skew,
                         shape=family.shape, diverge_octaves=family.diverge_octaves, noise=family.noise,
                         seeds=family.seeds, rng=rng)
    truth = {"k": k, "lr0": 2.0**log2_lr0, "predicted_lr": float(optimal_lr(TARGET_WIDTH, k=k, lr0=2.0**log2_lr0,
                                                                             n0=N0))}
    return df, truth


@dataclass
class Coverage:
    family: Family
    reps: int
    k_covered: int = 0
    pred_covered: int = 0
    k_missing: int = 0  # repetitions without an interval for k
    pred_missing: int = 0
    k_error_sum: float = 0.0
    pred_error_sum: float = 0.0  # log2 units
    opt_error_sum: float = 0.0  # per width, log2 units
    opt_count: int = 0
    k_width_sum: float = 0.0
    pred_width_sum: float = 0.0  # log2 units

    @property
    def k_coverage(self) -> float:
        return self.k_covered / self.reps

    @property
    def pred_coverage(self) -> float:
        return self.pred_covered / self.reps

    @property
    def opt_bias(self) -> float:
        return self.opt_error_sum / max(self.opt_count, 1)

    def row(self) -> dict:
        with_k = max(self.reps - self.k_missing, 1)
        with_p = max(self.reps - self.pred_missing, 1)
        return {"family": self.family.name, "reps": self.reps, "k_coverage": self.k_coverage,
                "predicted_lr_coverage": self.pred_coverage, "k_missing": self.k_missing,
                "predicted_lr_missing": self.pred_missing, "k_bias": self.k_error_sum / self.reps,
                "log2_predicted_lr_bias": self.pred_error_sum / self.reps, "log2_optimum_bias": self.opt_bias,
                "k_ci_mean_width": self.k_width_sum / with_k, "log2_predicted_lr_ci_mean_width":
                self.pred_width_sum / with_p, "spec": asdict(self.family)}


def coverage(family: Family, reps: int, seed: int = 0, *, options: FitOptions | None = None,
             workdir: str | None = None, on_rep: Callable[[], None] | None = None) -> Coverage:
    """Draw ``reps`` sweeps of ``family`` (seeded by ``seed``), fit each, count what the intervals cover."""
    opts = options or FitOptions()
    opts = replace(opts, target_width=TARGET_WIDTH, level=0.95)
    rng = np.random.default_rng([seed, zlib.crc32(family.name.encode())])
    out = Coverage(family=family, reps=reps)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = os.path.join(tmp, "sweep.csv")
        for _ in range(reps):
            df, truth = draw_sweep(family, rng)
            df.to_csv(path, index=False)
            g = fit_sweep(path, opts).doc["groups"][0]
            _score(out, g, truth)
            if on_rep is not None:
                on_rep()
    return out


def _score(out: Coverage, g: dict, truth: dict) -> None:
    k, ci = g["lr_exponent"], g["lr_exponent_ci"]
    if k is not None:
        out.k_error_sum += k - truth["k"]
    if ci is None:
        out.k_missing += 1
    else:
        out.k_covered += ci[0] <= truth["k"] <= ci[1]
        out.k_width_sum += ci[1] - ci[0]
    p, pci = g.get("predicted_lr"), g.get("predicted_lr_ci")
    if p is not None:
        out.pred_error_sum += float(np.log2(p / truth["predicted_lr"]))
    if pci is None:
        out.pred_missing += 1
    else:
        out.pred_covered += pci[0] <= truth["predicted_lr"] <= pci[1]
        out.pred_width_sum += float(np.log2(pci[1] / pci[0]))
    for rec in g["optima"]:
        if rec.get("lr_refined") is not None:
            true_opt = optimal_lr(rec["width"], k=truth["k"], lr0=truth["lr0"], n0=N0)
            out.opt_error_sum += float(np.log2(rec["lr_refined"] / true_opt))
            out.opt_count += 1


def coverage_table(families: Sequence[Family] = FAMILIES, reps: int = 200, seed: int = 0, **kw) -> list[dict]:
    """``coverage(...).row()`` of every family."""
    return [coverage(f, reps, seed, **kw).row() for f in families]
