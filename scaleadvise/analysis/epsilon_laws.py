"""Per-layer width laws of the gradient scale and what a constant epsilon does to them
(Everett et al. 2024, §4.3, App. F): s_l(n) = C_l · n^-g_l fitted with one point per run,
eps/s (eps/s² where eps is added to v, Adafactor), the width where that ratio reaches a
threshold, the effective LR factor, and the width where v underflows the state dtype.
The analysis that uses them is ``scaleadvise.analysis.epsilon``."""

import math
from dataclasses import dataclass
from typing import Sequence

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.01, 0.1, 1.0)
# Smallest *normal* number of each optimizer-state dtype. bf16 keeps fp32's 8-bit
# exponent (same range, fewer mantissa bits); fp16 has a 5-bit exponent, 2^-14 ≈ 6.1e-5
# (numpy.finfo(float16).tiny; torch.finfo(bfloat16).tiny == 2^-126).
SMALLEST_NORMAL: dict[str, float] = {"fp32": 2.0**-126, "bf16": 2.0**-126, "fp16": 2.0**-14}
# The smallest constant eps the paper found to help rather than hurt (§4.3, F2: 1e-15
# improves NTK/MFP; F1: 1e-30 harms every parameterization at D = 16384).
SMALLEST_TESTED_EPS = 1e-15
# Which optimizers have an epsilon, where it enters (sqrt(v) or v = g²) and its default
# (Table C2) are core.optimizers' (one table). The smallest constant to recommend, by where
# eps enters: the paper's tested 1e-15 for Adam-style eps (§4.3, App. F); for Adafactor its
# default 1e-30 is already the smallest anyone tested (Table C2).
MIN_EPS_BY_PLACEMENT = {"sqrt_v": SMALLEST_TESTED_EPS, "v": 1e-30}
MAX_WIDTH = 2.0**40  # ~1e12: past any model anyone trains; crossings beyond it read "any width"


# --------------------------------------------------------------------------- power laws


@dataclass(frozen=True)
class GradientLaw:
    """s(n) = exp(log_c) · n^-g: a per-layer gradient (or sqrt(v)) scale vs width."""

    g: float
    log_c: float
    g_ci: tuple[float, float] | None = None  # interval on g; None with too few points
    source: str = "measured"  # "measured" (fitted g) or "theory" (g from Table 1, one width)

    def at(self, n: float) -> float:
        return math.exp(self.log_c - self.g * math.log(n))

    def width_where(self, level: float) -> float:
        """The width n with s(n) = level, solved in log space: ln n = (ln C - ln level) / g.

        inf when s never falls below ``level`` as width grows (g < 0, or g = 0 with s
        at or above it) or only past MAX_WIDTH, where no model is trained and a power law
        fitted over a few doublings says nothing; 0 when g = 0 and s is already below it.
        """
        gap = self.log_c - math.log(level)  # ln s(1) - ln level
        if self.g <= 0:  # s never shrinks with width; at exactly ``level`` it has not fallen below
            return 0.0 if (self.g == 0 and gap < -1e-9) else math.inf
        exponent = gap / self.g
        return math.exp(exponent) if exponent < math.log(MAX_WIDTH) else math.inf


def run_points(widths: Sequence[float], values: Sequence[float], runs: Sequence[object] | None) -> tuple[list, list]:
    """(width, mean ln value) per run: a run's checkpoints collapse to their geometric mean.

    ``runs`` labels each row with its run (width × seed, see ``LayerSamples``); None
    makes every row its own run. A run spans one width; rows of one label at two
    widths are two runs.
    """
    groups: dict[object, list[float]] = {}
    width_of: dict[object, float] = {}
    for i, (w, v) in enumerate(zip(widths, values)):
        key = (float(w), i if runs is None else runs[i])
        groups.setdefault(key, []).append(math.log(v))
        width_of[key] = float(w)
    return [width_of[k] for k in groups], [sum(x) / len(x) for x in groups.values()]


def fit_gradient_law(
    widths: Sequence[float],
    values: Sequence[float],
    runs: Sequence[object] | None = None,
    confidence: float = 0.95,
) -> GradientLaw:
    """Log–log least squares of values ∝ widths^-g, one point per run, with an interval on g.

    The run is the unit of replication: checkpoints of one run share its seed (init
    and data order) and move together, so counting them as replicates understates
    the error (issue 10, item 8: [1.22, 1.38] where the run-level interval is
    [1.12, 1.48]). Each run contributes the mean of its log values (``run_points``);
    the Student-t interval on g comes from the run-level residuals, df = runs - 2
    (None with fewer than three runs). Needs two distinct widths.
    """
    from scaleadvise.analysis.powerlaw import fit_power_law

    w, log_v = run_points(widths, values, runs)
    law = fit_power_law(w, [math.exp(x) for x in log_v])
    if law is None:
        raise ValueError("a power-law fit needs at least two distinct widths")
    k_ci = law.k_interval(confidence)
    ci = None if k_ci is None else (-k_ci[1], -k_ci[0])  # g = -k: the interval flips
    return GradientLaw(g=-law.k, log_c=law.log2_c * math.log(2.0), g_ci=ci, source="measured")


def anchored_gradient_law(width: float, values: Sequence[float], g: float) -> GradientLaw:
    """A law with exponent g (from theory) through the geometric mean of values at one width."""
    log_mean = sum(math.log(v) for v in values) / len(values)
    return GradientLaw(g=g, log_c=log_mean + g * math.log(width), g_ci=None, source="theory")


# --------------------------------------------------------------------------- predictions


def eps_ratio(law: GradientLaw, eps: float, n: float, power: int = 1) -> float:
    """eps / sqrt(v) at width n (power 1, Adam); eps / v = eps / s² (power 2, Adafactor)."""
    return eps / law.at(n) ** power


def crossing_width(law: GradientLaw, eps: float, ratio: float, power: int = 1) -> float:
    """Width at which eps reaches ``ratio`` × s^power: s(n) = (eps / ratio)^(1/power)."""
    return law.width_where((eps / ratio) ** (1.0 / power))


def lr_factor(ratio: float, power: int = 1) -> float:
    """Effective LR multiplier vs eps = 0, with ratio = eps/s^power.

    Adam: s/(s + eps) = 1/(1 + ratio). Adafactor: s/sqrt(s² + eps) = 1/sqrt(1 + ratio).
    """
    return (1.0 + ratio) ** (-1.0 / power)


def v_underflow_width(law: GradientLaw, dtype: str) -> float:
    """Width at which v = s² drops below the dtype's smallest normal number (s < sqrt(tiny))."""
    return law.width_where(math.sqrt(SMALLEST_NORMAL[dtype]))
