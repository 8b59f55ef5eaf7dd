"""The alignment exponents of B.11 and the paper's default assumption per optimizer family.

alpha_l, omega_l, u_l (Definition B.6) are the exponents of the three aligned terms of a
layer's activation change (§3.3): ΔW_l·z_{l-1}, W_l·Δz_{l-1} and ΔW_l·Δz_{l-1}. 1/2 is
no alignment (central-limit scaling, §2.3), 1 is full alignment (law of large numbers).

Which assumption to prescribe with by default follows the paper's experiments, not its
theory alone (§4.2):
* Adam family: full alignment. Its per-layer exponents encapsulate the LR scaling (the
  optimal base LR's width exponents are -0.05, -0.02, -0.06 for STP, NTK, muP, §4.2.1,
  Figure 4), while the no-alignment exponents leave -0.58 to -0.69 (Figure E1).
* Adafactor family (Adafactor, Adam + parameter scaling): no alignment. Better losses at
  every size, lower LR sensitivity, and its tuned constants transfer positively where the
  full-alignment ones transfer negatively (§4.2.2, Figure 5, Table 3).
* SGD: full alignment (Table 1, middle); the paper cannot tell the settings apart through
  SGD's noise (§4.2.2, Table 3 has winners of both kinds).
``--alignment`` overrides the default; every output says which one was used and why.
"""

from dataclasses import dataclass

from scaleadvise.core.classify import LayerType
from scaleadvise.core.optimizers import Family
from scaleadvise.errors import UserError


@dataclass(frozen=True)
class Alignment:
    """Alignment exponents (B.11) for layers l >= 2.

    alpha: ΔW_l · z_{l-1};  omega: W_l · Δz_{l-1};  u: ΔW_l · Δz_{l-1}.
    1/2 is no alignment (central-limit scaling), 1 is full alignment (law of large
    numbers). The ``*_readout`` fields override the value on the readout layer.
    """

    alpha: float = 1.0
    omega: float = 0.5
    u: float = 1.0
    alpha_readout: float | None = None
    omega_readout: float | None = None
    u_readout: float | None = None

    def at(self, layer: LayerType) -> tuple[float, float, float]:
        """(alpha, omega, u) on a hidden or readout layer."""
        if layer == "readout":
            return (
                self.alpha if self.alpha_readout is None else self.alpha_readout,
                self.omega if self.omega_readout is None else self.omega_readout,
                self.u if self.u_readout is None else self.u_readout,
            )
        return self.alpha, self.omega, self.u

    def as_dict(self) -> dict[str, float]:
        alpha_r, omega_r, u_r = self.at("readout")
        return {"alpha": self.alpha, "omega": self.omega, "u": self.u,
                "alpha_readout": alpha_r, "omega_readout": omega_r, "u_readout": u_r}


FULL = Alignment(alpha=1.0, omega=0.5, u=1.0)  # Table 1 middle
NONE = Alignment(alpha=0.5, omega=0.5, u=0.5)  # Table 1 right
YANG_HU = Alignment(alpha=1.0, omega=0.5, u=1.0, omega_readout=1.0)  # Tensor Programs, §3.3.3
NAMED_ALIGNMENTS = {"full": FULL, "none": NONE, "yang-hu": YANG_HU, "tp": YANG_HU}


def parse_alignment(text: str | Alignment, omega_readout: float | None = None) -> Alignment:
    """Parse ``full``, ``none``, ``yang-hu``, ``ALPHA,OMEGA,U`` (every layer l >= 2) or six
    numbers ``ALPHA,OMEGA,U,ALPHA_R,OMEGA_R,U_R`` (hidden, then readout: measurements
    differ by layer type, Figure 2, and `scaleadvise align` prints them in this form).

    Every exponent must lie in [0, 1] (B.11: 1/2 is no alignment, 1 full); errors name
    the field ``alignment`` or ``omega_readout``."""
    if isinstance(text, Alignment):
        base = text
    else:
        key = text.strip().lower()
        if key in NAMED_ALIGNMENTS:
            base = NAMED_ALIGNMENTS[key]
        else:
            parts = [p.strip() for p in key.split(",")]
            if len(parts) not in (3, 6):
                raise UserError(
                    "expected full, none, yang-hu, ALPHA,OMEGA,U or ALPHA,OMEGA,U,ALPHA_R,OMEGA_R,U_R "
                    f"(three or six numbers), got {text!r}", "alignment")
            try:
                values = [float(p) for p in parts]
            except ValueError:
                raise UserError(f"{text!r} is not {len(parts)} numbers", "alignment") from None
            base = Alignment(*values)
    if omega_readout is not None:
        base = Alignment(base.alpha, base.omega, base.u, base.alpha_readout, omega_readout, base.u_readout)
    for name, value in base.as_dict().items():
        if not 0.0 <= value <= 1.0:
            field = "omega_readout" if name == "omega_readout" and omega_readout is not None else "alignment"
            raise UserError(f"{name} = {value:g} is outside [0, 1]", field)
    return base


_DEFAULT_REASON = {
    Family.ADAM: ("full", "full alignment, the paper's choice for the Adam family "
                          "(§4.2.1: its exponents keep the optimal base LR fixed across width)"),
    Family.ADAFACTOR: ("none", "no alignment, the paper's recommendation for the Adafactor family "
                               "(§4.2.2: better loss, lower LR sensitivity, constants transfer)"),
    Family.SGD: ("full", "full alignment (Table 1); for SGD the paper finds no clear winner (§4.2.2)"),
}


def resolve_alignment(text: "str | Alignment | None", family: Family,
                      omega_readout: float | None = None) -> tuple[Alignment, str]:
    """The alignment to prescribe with and a sentence saying where it came from:
    ``text`` (the user's ``--alignment``) when given, else the family's default."""
    if text is None:
        name, reason = _DEFAULT_REASON[family]
        return parse_alignment(name, omega_readout), f"default for {family.value}: {reason}"
    source = "--alignment " + (text if isinstance(text, str) else "(given)")
    return parse_alignment(text, omega_readout), source
