"""The typed result of ``prescribe``: what every layer type and every tensor gets.

``Prescription.to_dict()`` is the JSON contract of ``scaleadvise prescribe --json``
(docs/CONTRACTS.md); everything inside the package reads the attributes.
"""

from dataclasses import dataclass, field
from typing import Any

from scaleadvise.core.alignment import Alignment
from scaleadvise.core.classify import LAYER_TYPES, Label, LayerType, TensorKind
from scaleadvise.core.optimizers import Family


@dataclass(frozen=True)
class LayerValues:
    """One layer type: exponents (negative powers of n), constant and values at the target width."""

    a: float  # multiplier n^-a
    b: float  # init std n^-b
    c: float  # LR (n/b)^-c
    g: float  # gradient n^-g at initialization (B.7)
    g_train: float  # gradient exponent once the readout has moved (B.13)
    gamma: float  # LR constant, at the prescription's base width
    lr: float
    eps: float | None
    eps_exponent: float | None  # eps = base_eps (n/b)^-eps_exponent; 0 for a constant; None: no eps
    init_std: float  # of the layer type's representative matrix or table at the target width
    multiplier: float
    why: str  # the constraint that pins c
    weight_decay: float | None = None  # the representative's group value (core.weight_decay); None: no decay


@dataclass(frozen=True)
class TensorValues:
    name: str  # PyTorch's parameter name without ".weight"
    layer_type: Label
    kind: TensorKind
    shape: list[int]
    scale_dim: int  # n_t
    init: str  # "normal", "ones" (norm gains: filled with init_std), "zeros" (biases), "keep" (fixed)
    sigma: float | None  # init std = sigma n_t^-b: the width-independent factor (C.2)
    init_std: float | None
    multiplier: float
    lr: float
    eps: float | None
    residual: bool | None = None  # on a residual branch (only with a depth parameterization)
    weight_decay: float | None = None  # the group value in the convention in force (only with decay)


# Keys that appear only when a depth parameterization or weight decay is in force, so that a
# request without them prints today's JSON byte for byte (issue 12).
_OPTIONAL = ("residual", "weight_decay")


def _present(values: Any) -> dict[str, Any]:
    d = vars(values).copy()
    for key in _OPTIONAL:
        if key in d and d[key] is None:
            del d[key]
    return d


@dataclass(frozen=True)
class ModelSummary:
    name: str
    width: int
    depth: int
    head_dim: int | None
    dims: dict[str, int]  # vocab, context, heads, ffn, ... at the target width
    parameters: int
    hidden_chain: int  # hidden layers on the longest path, the theory's L - 1 (core/model.py)


@dataclass(frozen=True)
class Violation:
    layer: str
    constraint: str
    shortfall: float


@dataclass(frozen=True)
class Prescription:
    parameterization: str
    optimizer: str
    family: Family
    width: int
    base_width: int
    base_lr: float
    alignment: Alignment
    alignment_source: str
    constants: dict[LayerType, float]  # gamma at this base width
    constants_source: str
    eps_mode: str  # "constant", "per-layer" or "none"
    base_eps: float | None
    attention_scale: str  # "sqrt" (1/sqrt(head_dim)) or "linear" (1/head_dim), C.2
    layers: dict[LayerType, LayerValues]
    model: ModelSummary
    stable: bool
    nontrivial: bool
    feature_learning: bool
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tensors: list[TensorValues] = field(default_factory=list)
    command: str | None = None
    depth: dict[str, Any] | None = None  # core.depth.Depth.to_dict(); None: --depth-param none
    residual_multiplier: float | None = None  # (L/L0)^-alpha on every residual branch's output
    weight_decay: dict[str, Any] | None = None  # core.weight_decay.Decay.to_dict(); None: no decay

    def tensor(self, name: str) -> TensorValues:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_dict(self, tensors: bool = True) -> dict[str, Any]:
        """The ``prescribe --json`` document (field order is part of the contract's look)."""
        m = self.model
        doc: dict[str, Any] = {
            "parameterization": self.parameterization,
            "optimizer": self.optimizer,
            "optimizer_family": self.family.value,
            "width": self.width,
            "base_width": self.base_width,
            "base_lr": self.base_lr,
            "alignment": self.alignment.as_dict(),
            "alignment_source": self.alignment_source,
            "constants": dict(self.constants),
            "constants_source": self.constants_source,
            "eps_mode": self.eps_mode,
            "base_eps": self.base_eps,
            "attention_scale": self.attention_scale,
            **({"depth": self.depth, "residual_multiplier": self.residual_multiplier} if self.depth else {}),
            **({"weight_decay": self.weight_decay} if self.weight_decay else {}),
            "layers": {t: _present(v) for t, v in self.layers.items()},
            "model": {"name": m.name, "width": m.width, "depth": m.depth, "head_dim": m.head_dim, **m.dims,
                      "parameters": m.parameters, "hidden_chain": m.hidden_chain},
            "stable": self.stable,
            "nontrivial": self.nontrivial,
            "feature_learning": self.feature_learning,
            "violations": [vars(v).copy() for v in self.violations],
            "notes": list(self.notes),
        }
        if tensors and self.tensors:
            doc["tensors"] = [_present(t) for t in self.tensors]
        if self.command:
            doc["command"] = self.command
        return doc


__all__ = ["LAYER_TYPES", "LayerValues", "ModelSummary", "Prescription", "TensorValues", "Violation"]
