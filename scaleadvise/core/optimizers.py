"""The optimizers scaleadvise knows: family, where epsilon enters, the paper's defaults.

One table, read everywhere (theory, prescribe, epsilon, the training script's data block):

* family (§2.1, B.8): how the update scales with the gradient and the weight.
      SGD         update = lr · grad
      Adam        update = lr · grad / |grad|          (adam, adamw, adam-atan2, lion, sign-sgd)
      Adafactor   update = lr · |W| · grad / |grad|    (adafactor, adam-ps = Adam + parameter scaling)
* eps (§4.3, C.2, C.5): where the additive epsilon sits in the denominator.
      "sqrt_v"  m / (sqrt(v) + eps)       Adam, AdamW, Adam + parameter scaling
      "v"       g / sqrt(v + eps)         Adafactor adds eps to g² (Shazeer & Stern 2018; Optax's
                                           ``adafactor(eps=1e-30)``), so eps is compared with v = g²
      None      no epsilon                SGD, Lion, sign-SGD, Adam-atan2 (C.5: atan2 needs none)
  The per-layer epsilon that keeps eps/scale constant across width therefore scales as
  the gradient for "sqrt_v", eps_l ∝ n^-g_l (§4.3), and as its square for "v", eps_l ∝ n^-2g_l.
* default_eps: Table C2 (Adam and Adam+PS 1e-9, Adafactor 1e-30).
* scripted: the emitted training script implements it.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from scaleadvise.errors import UserError


class Family(str, Enum):
    """Optimizer families by how the update scales (§2.1, B.8)."""

    SGD = "sgd"
    ADAM = "adam"
    ADAFACTOR = "adafactor"


EpsPlacement = Literal["sqrt_v", "v"]


@dataclass(frozen=True)
class Optimizer:
    name: str
    family: Family
    eps: EpsPlacement | None
    default_eps: float | None = None
    scripted: bool = False

    def eps_exponent(self, g: float) -> float | None:
        """Negative width exponent of the per-layer epsilon for gradient exponent g (§4.3)."""
        if self.eps is None:
            return None
        return 2.0 * g if self.eps == "v" else g


OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in (
    Optimizer("sgd", Family.SGD, None, scripted=True),
    Optimizer("adam", Family.ADAM, "sqrt_v", 1e-9, scripted=True),
    Optimizer("adamw", Family.ADAM, "sqrt_v", 1e-9, scripted=True),
    Optimizer("adam-atan2", Family.ADAM, None, scripted=True),
    Optimizer("lion", Family.ADAM, None),
    Optimizer("sign-sgd", Family.ADAM, None),
    Optimizer("adafactor", Family.ADAFACTOR, "v", 1e-30),
    Optimizer("adam-ps", Family.ADAFACTOR, "sqrt_v", 1e-9, scripted=True),
)}
SCRIPTED = tuple(name for name, o in OPTIMIZERS.items() if o.scripted)


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def get_optimizer(name: str, field: str = "optim") -> Optimizer:
    """The optimizer called ``name`` (case and ``_``/``-`` insensitive); a UserError naming
    ``field`` otherwise."""
    key = _key(name)
    if key in OPTIMIZERS:
        return OPTIMIZERS[key]
    from difflib import get_close_matches

    hint = get_close_matches(key, list(OPTIMIZERS), n=1)
    extra = f"; did you mean {hint[0]!r}?" if hint else ""
    raise UserError(f"unknown optimizer {name!r} (known: {', '.join(OPTIMIZERS)}){extra}", field)


def optimizer_family(name: "str | Family") -> Family:
    """Family of an optimizer name (or of a family name: ``sgd``, ``adam``, ``adafactor``)."""
    if isinstance(name, Family):
        return name
    key = _key(name)
    if key not in OPTIMIZERS and key in {f.value for f in Family}:
        return Family(key)
    return get_optimizer(name).family
