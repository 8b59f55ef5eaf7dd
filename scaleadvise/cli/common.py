"""Options and small renderers shared by several commands."""

import math

PARAM_HELP = "Parameterization: stp, ntk, mup, mfp, umup (aliases sp, ntp, ntp-na, mup-na, mean-field, u-mup), or custom."
OPTIM_HELP = "Optimizer: sgd, adam, adamw, adam-atan2, adafactor, adam-ps."
ALIGN_HELP = ("Alignment exponents: 'full' (alpha=u=1, omega=1/2), 'none' (all 1/2), 'yang-hu' "
              "(full with omega_readout=1), or ALPHA,OMEGA,U measured values in [0, 1].")
OMEGA_READOUT_HELP = "Override omega on the readout layer (Yang & Hu assume 1; Table 1 assumes 1/2)."


def power(x: float, var: str = "n") -> str:
    """The quantity n^-x written as a person would: 1, 1/√n, n, 1/n^1.5, n^0.3 ..."""
    if abs(x) < 1e-12:
        return "1"
    mag = abs(x)
    if math.isclose(mag, 0.5):
        body = f"√{var}"
    elif math.isclose(mag, 1.0):
        body = var
    else:
        body = f"{var}^{mag:g}"
    return f"1/{body}" if x > 0 else body


def fmt(x: float | None) -> str:
    if x is None:
        return "—"
    if x == 0:
        return "0"
    return f"{x:.4g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.3g}"
