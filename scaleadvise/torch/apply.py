"""Apply per-tensor values to a torch module: init, multipliers, optimizer groups.

The one home of "apply": ``scaleadvise.torch.parameterize`` applies ``prescribe``'s values
to any ``nn.Module`` with it (attaching multipliers as parametrizations), and the training
script ``emit-train`` writes bundles this file (its docstrings cut to their first paragraph)
and applies the values its bundled rule computes (so: torch and the standard library only,
no ``from __future__``). A tensor's values are a dict with ``layer_type``,
``init`` ("normal": N(0, init_std^2); "ones": filled with init_std, a norm gain's n_t^-b;
"zeros"; "keep": untouched), ``init_std``, ``multiplier`` (n_t^-a, §2.1), ``lr`` and
``eps`` (absent or None where the optimizer has none).
"""

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn


@torch.no_grad()
def apply_values(slots: Iterable[Tuple[nn.Module, str, Dict[str, Any]]], init: bool = True,
                 generator: Optional[torch.Generator] = None,
                 attach: Optional[Callable[[nn.Module, str, float], None]] = None) -> None:
    """Initialize each (module, parameter name, values) in order and set its multiplier n_t^-a.

    With ``init=False`` the weights are kept (e.g. before loading a checkpoint). A layer class
    that scales its own weight (a float class attribute ``mult``, as the training script's
    layers: torch.compile folds it, FSDP applies it to the gathered weight) gets the value in
    ``mult``; any other tensor with a multiplier other than 1 goes to ``attach(module, attr,
    value)`` (``torch.parameterize`` registers a parametrization), an error without one."""
    for module, attr, v in slots:
        p, m = getattr(module, attr), v["multiplier"]
        if init and v["init"] == "normal":
            p.normal_(0.0, v["init_std"], generator=generator)
        elif init and v["init"] in ("ones", "zeros"):
            p.fill_(v["init_std"] if v["init"] == "ones" else 0.0)
        if attr == "weight" and isinstance(getattr(type(module), "mult", None), float):
            module.mult = float(m)
        elif m != 1.0:
            if attach is None:
                raise ValueError(f"{type(module).__name__}.{attr}: multiplier {m:g} and no way to attach it")
            attach(module, attr, m)


def param_groups(params: Iterable[Tuple[torch.Tensor, Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """One optimizer group per distinct (layer type, lr, eps, weight decay), in order of first appearance.

    Each has ``params``, ``layer_type``, ``lr``, and ``eps`` and ``weight_decay``
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
