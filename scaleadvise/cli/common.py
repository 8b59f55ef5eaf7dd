"""Options and small renderers shared by several commands."""

import math
from typing import Annotated, Optional

import typer

PARAM_HELP = "Parameterization: stp, ntk, mup, mfp, umup (aliases sp, ntp, ntp-na, mup-na, mean-field, u-mup), or custom."
OPTIM_HELP = "Optimizer: sgd, adam, adamw, adam-atan2, adafactor, adam-ps."
ALIGN_HELP = ("Alignment exponents (default: the paper's choice for the optimizer family, §4.2: full for "
              "SGD and the Adam family, none for Adafactor and adam-ps): 'full' (alpha=u=1, omega=1/2), 'none' (all 1/2), 'yang-hu' "
              "(full with omega_readout=1), ALPHA,OMEGA,U measured values in [0, 1], or six numbers: "
              "hidden ALPHA,OMEGA,U then readout ALPHA_R,OMEGA_R,U_R (as `scaleadvise align` prints them).")
OMEGA_READOUT_HELP = "Override omega on the readout layer (Yang & Hu assume 1; Table 1 assumes 1/2)."

# Options that mean the same in every command that takes them (one declaration each).
AlignmentOpt = Annotated[Optional[str], typer.Option("--alignment", help=ALIGN_HELP)]
OmegaReadoutOpt = Annotated[Optional[float], typer.Option("--omega-readout", help=OMEGA_READOUT_HELP)]
BaseWidthOpt = Annotated[int, typer.Option("--base-width", help="Base width b where base_lr and gamma were tuned (§4.2.1).")]
BaseLrOpt = Annotated[float, typer.Option("--base-lr", help="Learning rate at the base width (beta_n of C.4).")]
ConstantsOpt = Annotated[str, typer.Option(
    "--constants", help="Per-layer LR constants gamma: default (all 1), paper (Table C3), or a YAML file.")]
EpsOpt = Annotated[Optional[str], typer.Option(
    "--eps", help="Adam epsilon: a number, or 'per-layer' (eps_l = base_eps (n/b)^-g_l, §4.3). Default: Table C2.")]
BaseEpsOpt = Annotated[Optional[float], typer.Option("--base-eps", help="With --eps per-layer: epsilon at the base width.")]
# Depth (core/depth.py) and weight decay (core/weight_decay.py).
DepthParamOpt = Annotated[str, typer.Option(
    "--depth-param", help="Depth parameterization: none (default), depth-mup (branches x (L/L0)^-1/2, Yang et al. "
    "2023), completep (x (L/L0)^-1, Dey et al. 2025). Needs --base-depth; --depth is the target depth L.")]
BaseDepthOpt = Annotated[Optional[int], typer.Option(
    "--base-depth", help="Base depth L0 (blocks) where the base LR was tuned (with --depth-param).")]
WeightDecayOpt = Annotated[Optional[float], typer.Option(
    "--weight-decay", help="Independent weight decay: the fraction λ every decayed weight shrinks by per step, "
    "not multiplied by the LR (App. G); with --wd-convention coupled, torch's coefficient instead.")]
WdTimescaleOpt = Annotated[Optional[str], typer.Option(
    "--wd-timescale", help="Or the AdamW timescale τ = 1/(η λ) (Wang & Aitchison 2024): '20000' or '20000steps' "
    "(λ = 1/τ per step), '5e9tokens' (with --tokens-per-step).")]
WdConventionOpt = Annotated[Optional[str], typer.Option(
    "--wd-convention", help="How each group's weight_decay is written: torch (default; λ/lr_l, since torch's AdamW "
    "multiplies by the group LR), independent (λ, applied as is), coupled (λ as torch's coefficient in every group).")]
TokensPerStepOpt = Annotated[Optional[int], typer.Option(
    "--tokens-per-step", help="Tokens per optimizer step (batch x sequence length), for --wd-timescale in tokens.")]
WdVectorsOpt = Annotated[bool, typer.Option(
    "--wd-vectors/--no-wd-vectors", help="Decay norm gains and biases too (default: matrices and tables only).")]
# Column overrides of the tables fit, epsilon and align read.
WidthColOpt = Annotated[Optional[str], typer.Option("--width-col", help="Column holding the width.")]
LayerColOpt = Annotated[Optional[str], typer.Option("--layer-col", help="Column holding the layer/tensor name.")]
StepColOpt = Annotated[Optional[str], typer.Option("--step-col", help="Column holding the training step.")]


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


def alignment_text(al: dict) -> str:
    """'alpha=1 omega=0.5 u=1 omega_readout=0.5', with the readout's alpha and u too when
    they differ from the hidden layers' (six-number --alignment, `align` measurements)."""
    text = f"alpha={al['alpha']:g} omega={al['omega']:g} u={al['u']:g}"
    if (al["alpha_readout"], al["u_readout"]) != (al["alpha"], al["u"]):
        return text + f"; readout alpha={al['alpha_readout']:g} omega={al['omega_readout']:g} u={al['u_readout']:g}"
    return text + f" omega_readout={al['omega_readout']:g}"
