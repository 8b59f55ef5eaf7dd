"""Apply per-tensor values to a torch module: initialization, forward multipliers, optimizer groups.

The one home of "apply": ``scaleadvise.torch.parameterize`` applies ``prescribe``'s values
to any ``nn.Module`` with it, and the training script ``emit-train`` writes bundles this
file verbatim and applies the values its bundled rule computes (so: torch and the standard
library only, no ``from __future__``). A tensor's values are a dict with ``layer_type``,
``init`` ("normal": N(0, init_std^2); "ones": filled with init_std, a norm gain's n_t^-b;
"zeros"; "keep": untouched), ``init_std``, ``multiplier`` (n_t^-a, §2.1), ``lr`` and
``eps`` (absent or None where the optimizer has none).
"""

from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn
from torch.nn.utils import parametrize


class Multiplier(nn.Module):
    """The forward multiplier of the abc-parameterization (§2.1), W = n^-a w, as a
    parametrization: the stored tensor is w, the module computes with W."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)  # a Python constant: torch.compile folds it in

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}"


def set_multiplier(module: nn.Module, attr: str, value: float) -> None:
    """A layer class that scales its own weight (declares a float class attribute ``mult``,
    as the training script's layers do: torch.compile folds it, FSDP applies it to the
    gathered weight) gets the value; any other module a ``Multiplier`` parametrization."""
    if attr == "weight" and isinstance(getattr(type(module), "mult", None), float):
        module.mult = float(value)
    elif value != 1.0:
        parametrize.register_parametrization(module, attr, Multiplier(value))


@torch.no_grad()
def apply_values(slots: Iterable[Tuple[nn.Module, str, Dict[str, Any]]], init: bool = True,
                 generator: Optional[torch.Generator] = None) -> None:
    """Initialize each (module, parameter name, values) in order and set its multiplier.
    With ``init=False`` the weights are kept (e.g. before loading a checkpoint)."""
    for module, attr, v in slots:
        p = getattr(module, attr)
        if init and v["init"] == "normal":
            p.normal_(0.0, v["init_std"], generator=generator)
        elif init and v["init"] in ("ones", "zeros"):
            p.fill_(v["init_std"] if v["init"] == "ones" else 0.0)
        set_multiplier(module, attr, v["multiplier"])


def param_groups(params: Iterable[Tuple[torch.Tensor, Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """One optimizer group per distinct (layer type, lr, eps, weight decay), in order of first
    appearance, each with ``params``, ``layer_type``, ``lr``, and ``eps`` and ``weight_decay``
    where there is one (the decay in the optimizer's convention, ``core.weight_decay``): the
    prescription gives one LR and one epsilon per layer type (§4.2, §4.3), and few groups
    mean few fused-kernel launches. Pass the parameters the optimizer will see: after
    FSDP2's ``fully_shard`` (which replaces them) or DDP."""
    groups: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
    for p, v in params:
        eps, wd = v.get("eps"), v.get("weight_decay")  # weight_decay: only with a prescribed decay
        key = (v["layer_type"], v["lr"], eps, wd)
        if key not in groups:
            groups[key] = {"params": [], "layer_type": v["layer_type"], "lr": v["lr"]}
            if eps is not None:
                groups[key]["eps"] = eps
            if wd is not None:
                groups[key]["weight_decay"] = wd
        groups[key]["params"].append(p)
    return list(groups.values())
