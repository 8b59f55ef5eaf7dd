"""Weight decay as part of the prescription: one decay per step, every group's value in its optimizer's convention.

Independent (decoupled-from-the-LR) decay, Everett et al. 2024 App. G: each step shrinks a
weight by a fraction λ that is *not* multiplied by the LR,

    W <- (1 - λ) W - update.

Wang & Aitchison 2024 ("How to set AdamW's weight decay as you scale model and dataset
size", arXiv 2405.13698) read AdamW's weights as an exponential moving average of the
updates with timescale τ = 1/(η λ_torch) steps (τ · tokens per step in tokens) and find
the timescale, not λ_torch, is what should stay fixed as the model grows. The per-step decay
λ = η λ_torch = 1/τ is then the same for every group, at every width and depth, however the
group's LR scales: the user gives λ (``--weight-decay``) or τ (``--wd-timescale``), and every
group's value is written in the optimizer's own convention:

    convention   group["weight_decay"]   decay per step   for
    torch        λ / lr_l                 λ                torch.optim.AdamW, SGD, Adafactor, Lion,
                                                           scaleadvise's AdamAtan2/AdamPS (they all
                                                           multiply weight_decay by the group LR);
                                                           u-muP's ``independent_weight_decay``
    independent  λ                        λ                an optimizer that applies it as is (optax's
                                                           ``add_decayed_weights`` after the LR scaling)
    coupled      λ                        lr_l · λ         the same torch coefficient in every group: the
                                                           decay follows each group's LR (the naive
                                                           AdamW; microsoft/mup issue #1 discusses it)

In the torch convention the group value carries 1/lr_l: its width factor (n/b)^c cancels
the hidden LR's, as in mup's MuAdamW (``weight_decay *= width_mult``) and the CompleteP
reference (``weight_decay / width_lr_scaling``, model.py line 349), and its depth factor
(L/L0)^(1-alpha) cancels the branch LR's. Why the per-step decay should not follow the LR
in depth either (derived here, not in the cited work): a decayed weight is about
(η/λ) · EMA_τ(updates), so a branch's accumulated contribution to the stream is
m η / λ ∝ (L/L0)^-alpha (L/L0)^(alpha-1) = L0/L at fixed λ, the same 1/L per block as one
update's (``core.depth``, 4.); coupling λ to η would leave m/λ_torch ∝ L^-alpha per block,
which for alpha = 1/2 sums to more than O(1) over L blocks when the blocks learn coherently.
At alpha = 1 both agree (the branch LR has no depth factor). The CompleteP reference keeps
torch's coefficient free of depth, so at alpha = 1/2 its branch decay per step is
(L/L0)^-1/2 times this one (tests/test_depth_reference.py).

Caveats the notes repeat: under an LR schedule torch multiplies by the scheduled LR, so
"per step" holds at the peak and follows the schedule's shape elsewhere (u-muP says the
same of its independent decay); torch's SGD adds λ W to the gradient before momentum, which
amplifies the steady-state decay by 1/(1 - momentum). Norm gains and biases get no decay by
default (``vectors=True`` decays them too).
"""

import math
import re
from dataclasses import dataclass
from typing import Literal

from scaleadvise.core import rule
from scaleadvise.errors import UserError

Convention = Literal["torch", "independent", "coupled"]
CONVENTIONS: tuple[Convention, ...] = ("torch", "independent", "coupled")
DECAYED_KINDS = ("linear", "embedding")  # matrices and tables; norm gains and biases only with vectors=True
_TIMESCALE = re.compile(r"^\s*([-+0-9.eE]+|nan|inf|-inf)\s*(steps?|tokens?)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Decay:
    """The decay of one prescription."""

    convention: Convention
    value: float  # λ per step (torch, independent); the torch coefficient (coupled)
    timescale_steps: float | None  # τ at the base LR: 1/λ, or 1/(base_lr λ) for coupled; None when λ = 0
    tokens_per_step: int | None
    vectors: bool
    source: str  # the flag it came from, as given

    def applies(self, kind: str) -> bool:
        return kind in DECAYED_KINDS or self.vectors

    def group_value(self, lr: float, kind: str, name: str = "") -> float:
        """``weight_decay`` of a group with LR ``lr`` in the convention in force."""
        if not self.applies(kind) or self.value == 0.0:
            return 0.0
        if self.convention == "torch" and not lr > 0:
            raise UserError(f"{name or 'a tensor'} has LR {lr:g}; the torch convention writes λ / lr, which "
                            "needs a positive LR (use wd_convention independent)", "weight_decay")
        return rule.weight_decay(self.value, lr, self.convention)

    def per_step(self, lr: float, kind: str) -> float:
        """The fraction a weight of this group shrinks by per step (at the peak LR)."""
        return 0.0 if not self.applies(kind) else rule.decay_per_step(self.group_value(lr, kind), lr, self.convention)

    def to_dict(self) -> dict:
        return {"convention": self.convention, "lambda": self.value,
                "meaning": ("torch weight_decay coefficient in every group (decay per step = lr_l · λ)"
                            if self.convention == "coupled" else "decay per step, not multiplied by the LR"),
                "group_value": {"torch": "λ / lr_l", "independent": "λ", "coupled": "λ"}[self.convention],
                "timescale_steps": self.timescale_steps,
                "timescale_tokens": (None if self.timescale_steps is None or self.tokens_per_step is None
                                     else self.timescale_steps * self.tokens_per_step),
                "tokens_per_step": self.tokens_per_step, "vectors": self.vectors, "source": self.source}


def parse_timescale(text: str | float, field: str = "wd_timescale") -> tuple[float, str]:
    """``20000``, ``20000steps``, ``5e8 tokens`` -> (value, "steps" | "tokens")."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), "steps"
    else:
        m = _TIMESCALE.match(str(text))
        if not m:
            raise UserError("expected a number with an optional unit 'steps' or 'tokens' "
                            f"(e.g. 20000steps, 5e8tokens), got {text!r}", field)
        try:
            value = float(m.group(1))
        except ValueError:
            raise UserError(f"{m.group(1)!r} is not a number", field) from None
        unit = "tokens" if (m.group(2) or "steps").lower().startswith("token") else "steps"
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"the timescale must be a positive number of {unit}, got {value:g}", field)
    return value, unit


def resolve_decay(weight_decay: float | None, timescale: str | float | None, convention: str | None,
                  tokens_per_step: int | None, base_lr: float, vectors: bool, optim: str) -> Decay | None:
    """The request's decay, or None when it asks for none (then nothing in the output changes)."""
    if tokens_per_step is not None and (isinstance(tokens_per_step, bool) or not isinstance(tokens_per_step, int)
                                        or tokens_per_step <= 0):
        raise UserError(f"must be a positive integer, got {tokens_per_step!r}", "tokens_per_step")
    if weight_decay is None and timescale is None:
        for field, given in (("wd_convention", convention is not None), ("wd_vectors", vectors),
                             ("tokens_per_step", tokens_per_step is not None)):
            if given:
                raise UserError("needs weight_decay or wd_timescale", field)
        return None
    if weight_decay is not None and timescale is not None:
        raise UserError("and wd_timescale say the same thing twice: give one", "weight_decay")
    conv = (convention or "torch").strip().lower()
    if conv not in CONVENTIONS:
        raise UserError(f"unknown convention {convention!r} (known: {', '.join(CONVENTIONS)})", "wd_convention")
    if optim == "adam":
        raise UserError("with optim adam: torch.optim.Adam's weight_decay is an L2 penalty that Adam's "
                        "normalization rescales, not a decay; use optim adamw (decoupled)", "weight_decay")
    if weight_decay is not None:
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) \
                or not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise UserError(f"must be a number >= 0, got {weight_decay!r}", "weight_decay")
        lam, source = float(weight_decay), f"weight_decay {weight_decay:g}"
        if conv != "coupled" and lam >= 1:
            raise UserError(f"{lam:g} is a decay per step: it must be below 1 "
                            "(1e-4 shrinks every weight by 0.01% per step)", "weight_decay")
        scale = 1.0 if conv != "coupled" else base_lr
        tau = None if lam == 0 else 1.0 / (lam * scale)
    else:
        value, unit = parse_timescale(timescale)  # type: ignore[arg-type]
        if unit == "tokens":
            if tokens_per_step is None:
                raise UserError("in tokens needs tokens_per_step (batch size x sequence length)", "wd_timescale")
            tau = value / tokens_per_step
        else:
            tau = value
        if tau < 1:
            raise UserError(f"{tau:g} steps is shorter than one step", "wd_timescale")
        # τ = 1/(η λ_torch) (Wang & Aitchison 2024): per step 1/τ; coupled: the coefficient at the base LR.
        lam = 1.0 / tau if conv != "coupled" else 1.0 / (tau * base_lr)
        source = f"wd_timescale {timescale}"
    return Decay(conv, lam, tau, tokens_per_step, bool(vectors), source)  # type: ignore[arg-type]
