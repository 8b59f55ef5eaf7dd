"""The abc-symmetry of §3.2 / B.2: moving a factor n^-θ from a layer's init into its
multiplier (a += θ, b -= θ) leaves the forward pass unchanged, and with the LR exponent
corrected (c -= kθ: k = 2 for SGD, 1 for Adam, 0 for Adafactor) every training step too.
SP and NTK are one class, muP and MFP another (Table 1's rows, up to this shift)."""

from typing import Mapping

from scaleadvise.core.classify import LAYER_TYPES, LayerType
from scaleadvise.core.optimizers import Family, optimizer_family
from scaleadvise.core.theory import _TOL, LR_SHIFT, _clean


def abc_shift(
    a: Mapping[str, float],
    b: Mapping[str, float],
    c: Mapping[str, float],
    theta: Mapping[str, float] | float,
    optim: str | Family,
) -> tuple[dict[LayerType, float], dict[LayerType, float], dict[LayerType, float]]:
    """Move along the abc-symmetry orbit (§3.2, B.2): a += θ, b -= θ, c -= kθ.

    k = 2 for SGD, 1 for Adam, 0 for Adafactor. θ may differ per layer type. The
    forward pass and, with the LR corrected, every training step are unchanged.
    """
    k = LR_SHIFT[optimizer_family(optim)]
    th = {t: float(theta) for t in LAYER_TYPES} if isinstance(theta, (int, float)) else dict(theta)
    return (
        {t: a[t] + th.get(t, 0.0) for t in LAYER_TYPES},
        {t: b[t] - th.get(t, 0.0) for t in LAYER_TYPES},
        {t: c[t] - k * th.get(t, 0.0) for t in LAYER_TYPES},
    )


def equivalence_theta(
    abc1: tuple[Mapping[str, float], Mapping[str, float], Mapping[str, float]],
    abc2: tuple[Mapping[str, float], Mapping[str, float], Mapping[str, float]],
    optim: str | Family,
) -> dict[LayerType, float] | None:
    """The per-layer θ taking abc1 to abc2, or None when they are not equivalent."""
    k = LR_SHIFT[optimizer_family(optim)]
    (a1, b1, c1), (a2, b2, c2) = abc1, abc2
    theta: dict[LayerType, float] = {}
    for t in LAYER_TYPES:
        th = a2[t] - a1[t]
        if abs(b1[t] - th - b2[t]) > _TOL or abs(c1[t] - k * th - c2[t]) > _TOL:
            return None
        theta[t] = _clean(th)
    return theta
