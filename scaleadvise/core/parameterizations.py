"""The named parameterizations: (a, b) per layer type, and what else they fix.

Following the paper's convention (§2.1), a parameterization's *name* refers to its
multipliers n^-a and init n^-b (Table 1, left; Figure 1); its learning rates come
from the theory (``theory.max_stable_lr_exponents``) for the chosen optimizer and
alignment. Two names also fix something the theory leaves free:

* the attention logit scale (C.2): 1/sqrt(head_dim) for stp/ntk, 1/head_dim for
  the muP class (mup, mfp, umup);
* u-muP (the muP cheat sheet): unit init (sigma = 1, b = 0 everywhere, the scale
  carried by the multipliers: the same (a, b) as mfp) and a *down-scaled input
  LR*, 1/sqrt(n) below the embedding's maximal stable LR (``c_offset``).
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

from scaleadvise.errors import UserError
from scaleadvise.core.classify import LAYER_TYPES, LayerType

AttentionScale = Literal["sqrt", "linear"]


@dataclass(frozen=True)
class Parameterization:
    name: str
    a: dict[LayerType, float]
    b: dict[LayerType, float]
    description: str
    attention_scale: AttentionScale = "sqrt"
    c_offset: dict[LayerType, float] = field(default_factory=lambda: {t: 0.0 for t in LAYER_TYPES})
    unit_init: bool = False  # u-muP: every std constant is 1 (no 0.01 embedding std)
    implied_alignment: str | None = None  # e.g. the cheat sheet's "mup-na"


def _abc(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[dict, dict]:
    return dict(zip(LAYER_TYPES, map(float, a))), dict(zip(LAYER_TYPES, map(float, b)))


# Table 1, left: init variance n^-2b and multiplier n^-a.
_TABLE = {
    "stp": (*_abc((0, 0, 0), (0, 0.5, 0.5)), "standard: unit multipliers, 1/fan_in init variance", "sqrt"),
    "ntk": (*_abc((0, 0.5, 0.5), (0, 0, 0)), "neural tangent: unit init, 1/sqrt(fan_in) multipliers", "sqrt"),
    "mup": (*_abc((-0.5, 0, 0.5), (0.5, 0.5, 0.5)), "maximal update (Yang & Hu 2021, TP5 Table 9 variant)", "linear"),
    "mfp": (*_abc((0, 0.5, 1.0), (0, 0, 0)), "mean-field: unit init, 1/n readout multiplier", "linear"),
}

ALIASES: dict[str, tuple[str, str | None]] = {
    "sp": ("stp", None), "standard": ("stp", None), "stp": ("stp", None),
    "ntk": ("ntk", None), "ntp": ("ntk", None), "ntp-na": ("ntk", "none"), "ntp-fa": ("ntk", "full"),
    "mup": ("mup", None), "μp": ("mup", None), "mup-fa": ("mup", "full"), "mup-na": ("mup", "none"),
    "mfp": ("mfp", None), "mf": ("mfp", None), "mean-field": ("mfp", None), "meanfield": ("mfp", None),
    "umup": ("umup", None), "u-mup": ("umup", None), "u-μp": ("umup", None),
    "custom": ("custom", None),
}
NAMES = ("stp", "ntk", "mup", "mfp", "umup")


def get_parameterization(name: str, field: str = "param") -> Parameterization:
    """A named parameterization; cheat-sheet aliases (sp, ntp-na, mup-na, ...) accepted.
    An unknown name is a UserError naming ``field``."""
    key = name.strip().lower().replace("_", "-")
    if key not in ALIASES or ALIASES[key][0] == "custom":
        from difflib import get_close_matches

        hint = get_close_matches(key, [k for k in ALIASES if k != "custom"], n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        what = ("'custom' has no exponents of its own: give its a and b" if key == "custom"
                else f"unknown parameterization {name!r}")
        raise UserError(f"{what} (known: {', '.join(NAMES)}, custom){extra}", field)
    canonical, implied = ALIASES[key]
    if canonical == "umup":
        a, b, *_ = _TABLE["mfp"]
        return Parameterization(
            name="umup", a=dict(a), b=dict(b),
            description="u-muP: unit init, scale in the multipliers, input LR down-scaled by 1/sqrt(n)",
            attention_scale="linear", c_offset={"embedding": 0.5, "hidden": 0.0, "readout": 0.0},
            unit_init=True, implied_alignment=implied,
        )
    a, b, description, attention = _TABLE[canonical]
    return Parameterization(canonical, dict(a), dict(b), description, attention, implied_alignment=implied)


def custom_parameterization(
    a: Mapping[str, float],
    b: Mapping[str, float],
    attention_scale: AttentionScale = "sqrt",
    name: str = "custom",
) -> Parameterization:
    missing = [t for t in LAYER_TYPES if t not in a or t not in b]
    if missing:
        raise UserError(f"custom parameterization: a and b need values for {', '.join(missing)}", "custom")
    return Parameterization(name, {t: float(a[t]) for t in LAYER_TYPES}, {t: float(b[t]) for t in LAYER_TYPES},
                            "user-defined (a, b) per layer type", attention_scale)


def parse_triple(text: str, field: str) -> dict[LayerType, float]:
    """``0,0.5,0.5`` -> {embedding: 0, hidden: 0.5, readout: 0.5}; errors name ``field``
    (``a``, ``b``, ``c``, ``theta``)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise UserError(f"expected three numbers EMBEDDING,HIDDEN,READOUT, got {text!r}", field)
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UserError(f"{text!r} is not three numbers EMBEDDING,HIDDEN,READOUT", field) from None
    for t, v in zip(LAYER_TYPES, values):
        if not math.isfinite(v):
            raise UserError(f"the {t} value {v} is not a finite number", field)
    return dict(zip(LAYER_TYPES, values))


def load_custom(path: str | Path) -> Parameterization:
    """A YAML file ``{name?, a: {embedding, hidden, readout}, b: {...}, attention_scale?}``."""
    from scaleadvise.core.files import layer_numbers, read_yaml

    p, field = Path(path), "custom"
    data = read_yaml(p, field)
    if not isinstance(data, dict) or "a" not in data or "b" not in data:
        raise UserError(f"{p}: expected a mapping with keys 'a' and 'b' (each embedding/hidden/readout)", field)
    vals = {key: layer_numbers(data[key], p, key, field) for key in ("a", "b")}
    scale = data.get("attention_scale", "sqrt")
    if scale not in ("sqrt", "linear"):
        raise UserError(f"{p}: field 'attention_scale' must be 'sqrt' or 'linear', got {scale!r}", field)
    return custom_parameterization(vals["a"], vals["b"], scale, name=str(data.get("name", "custom")))
