"""Apply a prescription to any ``nn.Module``: init, forward multipliers, LR/eps groups.

    groups = parameterize(model, param="mup", optim="adam", width=4096, base_width=1024,
                          base_lr=3e-3, base_model=make_model(width=256))
    opt = torch.optim.AdamW(groups)

Every number comes from ``scaleadvise.core.prescribe`` (the same code as ``prescribe --json``):
per layer type the LR ``base_lr * gamma * (width / base_width)^-c`` and epsilon, per
tensor the multiplier ``n_t^-a`` and init std ``sigma * n_t^-b`` (docs/CONVENTIONS.md).
This module only has to decide, for each torch parameter, its *layout* (linear,
embedding, norm gain, bias) and its *layer type* (§2.1: embedding l = 1, hidden
2..L, readout L+1), by the first rule that applies:

1. ``layer_types={"lm_head": "readout", "blocks.*": "hidden"}``: glob patterns matched
   against the parameter name, the name without ``.weight``, or the owning module's name
   (a bias or gain of a matched layer is embedding-type, or fixed for a readout).
2. ``model_yaml=`` (a preset or YAML file for ``scaleadvise.core.model.load_model``): the
   types the YAML derives at ``width``, matched by tensor name.
3. ``base_model=``: a narrower copy of the model (mup's base shapes). A dimension that
   differs between the two grows with width, and the muP cheat sheet's rule applies:
   fan-in fixed & fan-out grows -> embedding, both grow -> hidden, fan-in grows &
   fan-out fixed -> readout.
4. Names (``scaleadvise.core.classify.by_name``) for matrices; ``nn.Embedding``
   tables are embedding-type (a lookup is a one-hot matmul, fan_in = num_embeddings);
   vectors (norm gains, biases) are embedding-type (fan_in 1), except the bias of a
   readout layer.

A tensor none of whose dimensions grows (a readout bias [vocab], a norm over a fixed
dimension) is ``"fixed"``: width-independent, so it keeps its module's own init, a
multiplier of 1 and ``base_lr`` (mup treats such tensors the same way).

Multipliers are ``torch.nn.utils.parametrize`` parametrizations (a constant product, so
torch.compile traces it and FSDP shards the stored tensor). They change ``state_dict``
keys from ``<module>.weight`` to ``<module>.parametrizations.weight.original`` (the stored
tensor, before the multiplier): save and load between parameterized models as usual;
``plain_state_dict`` gives the effective weights under the ordinary keys for export.
FSDP2's ``fully_shard`` and DDP replace or wrap the parameters: build the optimizer from
``param_groups(model)`` *after* wrapping (the groups ``parameterize`` returns hold the
parameters as they were before).

Depth and weight decay (``core.depth``, ``core.weight_decay``): with ``depth_param=`` the
residual branches are found from the model's structure (``scaleadvise.torch.residual``), or
named with ``residual_branches=`` / ``residual_params=``; each branch output is multiplied
by (L/L0)^-alpha (a forward hook) and each branch tensor's group gets the depth factors of
its LR and epsilon. ``weight_decay=`` / ``wd_timescale=`` put each group's ``weight_decay`` in
torch's convention (λ / lr_l) or, with ``wd_convention="coupled"``, torch's coefficient as is.
"""

import fnmatch
import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize as P

from scaleadvise.core.classify import LABELS, Label, TensorKind, by_growth, by_name
from scaleadvise.core.model import Tensor, expand, load_model
from scaleadvise.core.parameterizations import Parameterization
from scaleadvise.core.prescribe import PrescribeRequest, prescribe
from scaleadvise.core.prescribe import UMUP_OPS_NOTE
from scaleadvise.core.rule import fans, scale_dim
from scaleadvise.errors import UserError
from scaleadvise.torch import apply

MARK = "_scaleadvise_prescription"  # set on the root module: applying twice is an error
_ORIGINAL = ".parametrizations."


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


@dataclass
class Slot:
    """One parameter: where it lives, its layout, and (once classified) its layer type."""

    name: str  # as in named_parameters(): "blocks.0.mlp.up.weight"
    module_name: str
    attr: str
    module: nn.Module
    kind: TensorKind
    shape: list[int]
    label: Label | None = None
    why: str = ""
    residual: bool = False  # on a residual branch (scaleadvise.torch.residual)

    @property
    def tensor_name(self) -> str:
        """The CONVENTIONS.md tensor name: ``.weight`` dropped, ``.bias`` kept."""
        return self.name[: -len(".weight")] if self.name.endswith(".weight") else self.name


def _kind(module: nn.Module, attr: str, shape: list[int]) -> TensorKind:
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and attr == "weight":
        return "embedding"
    if len(shape) >= 2:
        return "linear"  # nn.Linear / nn.ConvNd layout: [fan_out, fan_in, *kernel]
    if attr.endswith("bias"):
        return "bias"
    return "norm"


def _plain_name(name: str) -> str:
    """``x.parametrizations.weight.original`` -> ``x.weight``."""
    if _ORIGINAL in name and name.endswith(".original"):
        head, attr = name[: -len(".original")].split(_ORIGINAL)
        return f"{head}.{attr}"
    return name


def _slots(model: nn.Module) -> list[Slot]:
    seen: dict[int, str] = {}
    out: list[Slot] = []
    for module_name, module in model.named_modules():
        for attr, p in module.named_parameters(recurse=False):
            name = f"{module_name}.{attr}" if module_name else attr
            if id(p) in seen:
                raise UserError(f"parameterize: {name} is the same tensor as {seen[id(p)]} (tied weights); "
                                "untie them: an embedding and a readout need different multipliers and LRs")
            seen[id(p)] = name
            shape = list(p.shape)
            out.append(Slot(name, module_name, attr, module, _kind(module, attr, shape), shape))
    return out


# A vector (bias, norm gain) of a layer has fan_in 1 and the layer's fan_out, so it is
# embedding-type where that fan_out grows and width-independent where it does not.
_VECTOR_OF: dict[str, Label] = {"embedding": "embedding", "hidden": "embedding", "readout": "fixed", "fixed": "fixed"}


def _from_patterns(s: Slot, layer_types: Mapping[str, str]) -> Label | None:
    names = [s.name, s.tensor_name, s.module_name]
    for pattern, label in layer_types.items():
        if any(fnmatch.fnmatchcase(n, pattern) for n in names):
            return _VECTOR_OF[label] if s.kind in ("bias", "norm") else label  # type: ignore[return-value]
    return None


def _from_base(s: Slot, base: dict[str, list[int]]) -> Label:
    if s.name not in base:
        raise UserError(f"base_model: has no parameter {s.name} (the base must be the same model, narrower)")
    b = base[s.name]
    if len(b) != len(s.shape):
        raise UserError(f"base_model: {s.name} has shape {b} there but {s.shape} in the model")
    fi, fo = fans(s.kind, s.shape)
    bfi, bfo = fans(s.kind, b)
    return by_growth(s.kind, fi != bfi, fo != bfo)


def _from_name(s: Slot) -> Label:
    if s.kind == "embedding":
        return "embedding"
    if s.kind == "norm":
        return "embedding"  # a gain is a weight from a constant input: fan_in 1 (cheat sheet)
    label = by_name(s.tensor_name)
    if label is None:
        raise UserError(f"parameterize: cannot tell the layer type of {s.name} {s.shape} from its name; "
                        "pass base_model= (a narrower copy), layer_types={pattern: type} or model_yaml=")
    return label


def classify(
    model: nn.Module,
    width: int,
    base_model: nn.Module | None = None,
    layer_types: Mapping[str, str] | None = None,
    model_yaml: str | None = None,
) -> list[Slot]:
    """Every parameter of ``model`` with its layout and layer type (see the module doc)."""
    patterns = dict(layer_types or {})
    for pattern, label in patterns.items():
        if label not in LABELS:
            raise UserError(f"layer_types[{pattern!r}]: unknown layer type {label!r} (known: {', '.join(LABELS)})")
    yaml_types: dict[str, tuple[Label, list[int], TensorKind]] = {}
    if model_yaml is not None:
        yaml_types = {t.name: (t.layer_type, t.shape, t.kind) for t in expand(load_model(model_yaml), width)}
    base = None if base_model is None else {_plain_name(n): list(p.shape) for n, p in base_model.named_parameters()}

    slots = _slots(model)
    used_yaml: set[str] = set()
    for s in slots:
        if s.kind in ("bias", "norm") and len(s.shape) == 0:
            s.label, s.why = "fixed", "scalar"
        elif (label := _from_patterns(s, patterns)) is not None:
            s.label, s.why = label, "layer_types"
        elif s.tensor_name in yaml_types:
            # The YAML's layout too: a table kept as a bare Parameter (not nn.Embedding) is an embedding.
            s.label, shape, s.kind = yaml_types[s.tensor_name]
            if shape != s.shape:
                raise UserError(f"{model_yaml}: {s.tensor_name} has shape {shape} at width {width}, "
                                f"the model has {s.shape}")
            used_yaml.add(s.tensor_name)
            s.why = "model_yaml"
        elif base is not None:
            s.label, s.why = _from_base(s, base), "base_model"
        elif s.kind != "bias":
            s.label, s.why = _from_name(s), "name"
    missing = sorted(set(yaml_types) - used_yaml)
    if missing:
        raise UserError(f"{model_yaml}: tensor {missing[0]} is not a parameter of the model")
    # Heuristic biases follow their layer: a readout's bias [d_out] does not grow.
    for s in slots:
        if s.label is None:
            owner = next((o for o in slots if o.module is s.module and o.attr == "weight"), None)
            s.label = _VECTOR_OF[owner.label if owner is not None else "embedding"]
            s.why = "bias of a readout layer" if s.label == "fixed" else "bias (fan_in 1)"
    return slots


def _tensor(s: Slot) -> Tensor:
    fan_in, fan_out = fans(s.kind, s.shape)
    return Tensor(name=s.tensor_name, kind=s.kind, shape=s.shape, fan_in=fan_in, fan_out=fan_out,
                  layer_type=s.label, scale_dim=scale_dim(s.label, fan_in, fan_out), residual=s.residual)


def _already(model: nn.Module) -> str | None:
    for name, m in model.named_modules():
        if hasattr(m, MARK):
            return name or "the model"
        if P.is_parametrized(m) and any(isinstance(f, Multiplier) for plist in m.parametrizations.values()
                                        for f in plist):
            return name or "the model"
    from scaleadvise.torch.residual import has_hooks

    return "the model" if has_hooks(model) else None


def parameterize(
    model: nn.Module,
    param: str = "stp",
    optim: str = "adam",
    *,
    width: int,
    base_width: int = 1024,
    base_lr: float = 1e-3,
    alignment: str | None = None,
    omega_readout: float | None = None,
    constants: str = "default",
    eps: float | Literal["per-layer"] | None = None,
    base_eps: float | None = None,
    custom: Parameterization | None = None,
    sgd_readout: Literal["preserve", "max"] = "preserve",
    base_model: nn.Module | None = None,
    layer_types: Mapping[str, str] | None = None,
    model_yaml: str | None = None,
    init: bool = True,
    generator: torch.Generator | None = None,
    hidden_chain: int | None = None,
    depth_param: str = "none",
    depth: int | None = None,
    base_depth: int | None = None,
    residual_branches: Sequence[str] | None = None,
    residual_params: Sequence[str] | None = None,
    weight_decay: float | None = None,
    wd_timescale: str | float | None = None,
    wd_convention: str | None = None,
    tokens_per_step: int | None = None,
    wd_vectors: bool = False,
) -> list[dict[str, Any]]:
    """Re-initialize ``model`` in place, attach its forward multipliers, and return one
    optimizer param group per (layer type, lr, eps), each with ``params``, ``lr``,
    ``eps`` (not for sgd and adam-atan2; an (eps1, eps2) pair for adafactor, as
    torch.optim.Adafactor takes it), ``name`` and ``layer_type``.

    Arguments mean what the ``prescribe`` flags of the same names mean; ``width`` is the
    model's width n (it sets the LR ratio n / base_width), each tensor's own n_t comes
    from its shape. ``init=False`` keeps the weights (e.g. before loading a checkpoint
    saved from a parameterized model). The prescription, per tensor, is kept on the
    model as ``model._scaleadvise_prescription``. ``hidden_chain`` is the number of hidden
    layers on the model's longest path (it matters only for a hidden omega > 1/2, see
    ``core/model.py``); by default every hidden tensor is counted, which errs towards the
    smaller (safer) embedding LR. u-muP is refused: its rules need unit-scaled ops.

    ``depth_param`` ("depth-mup", "completep"), ``depth`` (the model's number of blocks; by
    default the number of blocks whose residual branches were found) and ``base_depth`` scale
    the residual branches (module doc); ``weight_decay`` ... ``wd_vectors`` mean what the
    ``prescribe`` flags of the same names mean (``wd_convention`` "torch" or "coupled": torch's
    optimizers multiply weight_decay by the group LR). Groups then also carry ``weight_decay``.
    """
    where = _already(model)
    if where is not None:
        raise UserError(f"parameterize: {where} is already parameterized; applying it again would multiply "
                        "the multipliers twice: build a fresh model")
    if custom is None and param.strip().lower() in ("umup", "u-mup", "u-μp"):
        raise UserError(f"parameterize: {UMUP_OPS_NOTE}")
    slots = classify(model, width, base_model, layer_types, model_yaml)
    if wd_convention is not None and wd_convention.strip().lower() == "independent":
        raise UserError("parameterize: wd_convention='independent' writes λ for an optimizer that does not multiply "
                        "it by the LR; torch's optimizers do: use 'torch' (the same decay, written as λ / lr)")
    branches = _residual(model, slots, depth_param, residual_branches, residual_params, model_yaml, width)
    pres = prescribe(PrescribeRequest(
        param="custom" if custom is not None else param, optim=optim, width=width, base_width=base_width,
        base_lr=base_lr, alignment=alignment, omega_readout=omega_readout, constants=constants, eps=eps,
        base_eps=base_eps, custom=custom, sgd_readout=sgd_readout, hidden_chain=hidden_chain,
        module_tensors=[_tensor(s) for s in slots], depth_param=depth_param,
        depth=depth if depth is not None or branches is None else len(branches.blocks), base_depth=base_depth,
        weight_decay=weight_decay, wd_timescale=wd_timescale, wd_convention=wd_convention,
        tokens_per_step=tokens_per_step, wd_vectors=wd_vectors))  # validates every argument
    values = {s.name: vars(v) for s, v in zip(slots, pres.tensors)}
    apply.apply_values(((s.module, s.attr, values[s.name]) for s in slots), init=init, generator=generator,
                       attach=lambda module, attr, value: P.register_parametrization(module, attr, Multiplier(value)))
    if branches is not None and pres.residual_multiplier != 1.0:
        from scaleadvise.torch.residual import attach

        attach(model, branches.outputs, pres.residual_multiplier)  # type: ignore[arg-type]

    # Group settings per stored parameter name (parametrized ones end in ".original").
    settings: dict[str, dict[str, Any]] = {}
    for s in slots:
        v = values[s.name]
        stored = f"{s.module_name}.{_ORIGINAL[1:]}{s.attr}.original".lstrip(".") \
            if P.is_parametrized(s.module, s.attr) else s.name
        settings[stored] = {"layer_type": v["layer_type"], "lr": v["lr"]}
        if pres.eps_mode != "none":
            settings[stored]["eps"] = (v["eps"], 1e-3) if pres.optimizer == "adafactor" else v["eps"]
        if v.get("weight_decay") is not None:
            settings[stored]["weight_decay"] = v["weight_decay"]
    doc = pres.to_dict(tensors=False)
    doc.pop("model")
    doc["tensors"] = [{**values[s.name], "why": s.why} for s in slots]
    if branches is not None:
        doc["residual_branches"] = {"outputs": list(branches.outputs), "found": branches.how}
    setattr(model, MARK, {**doc, "param_groups": settings})
    return param_groups(model)


def _residual(model: nn.Module, slots: list[Slot], depth_param: str, patterns: Sequence[str] | None,
              extra: Sequence[str] | None, model_yaml: str | None, width: int):
    """Mark the slots on residual branches (None when no depth parameterization is asked for)."""
    from scaleadvise.core.depth import get_depth_param
    from scaleadvise.torch.residual import find_branches, named_branches

    if get_depth_param(depth_param) == "none":
        if patterns or extra:
            raise UserError("parameterize: residual_branches/residual_params need a depth_param")
        return None
    flagged = set() if model_yaml is None else {t.name for t in expand(load_model(model_yaml), width) if t.residual}
    if patterns:
        branches = named_branches(model, patterns, extra or (), flagged)
    else:
        branches = find_branches(model)
        if not branches.outputs:
            raise UserError("parameterize: found no residual branch (no x + f(x) in a forward that torch.fx can "
                            "trace); name them: residual_branches=['blocks.*.attn', 'blocks.*.mlp']")
        if flagged:
            names = {s.name for s in slots}
            if {n for n in branches.params if n in names} != {n for n in names if n.removesuffix(".weight") in flagged}:
                raise UserError(f"{model_yaml}: its residual: true tensors are not the branches traced in the "
                                "model; pass residual_branches= to say which are")
    for s in slots:
        s.residual = s.name in branches.params
    return branches


def param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """The optimizer param groups of a parameterized model, rebuilt from its current
    parameters. Call it again after wrapping the model in FSDP2 (``fully_shard``
    replaces every parameter with a sharded one) or DDP, then build the optimizer."""
    found = next(((name, m) for name, m in model.named_modules() if hasattr(m, MARK)), None)
    if found is None:
        raise UserError("param_groups: the model has not been through scaleadvise.torch.parameterize")
    settings = getattr(found[1], MARK)["param_groups"]
    out = apply.param_groups((tensor, settings[name]) for name, tensor in found[1].named_parameters())
    for g in out:
        same = [h for h in out if h["layer_type"] == g["layer_type"]]
        wd = len({h.get("weight_decay") for h in same}) > 1
        g["name"] = (f"{g['layer_type']} (lr {g['lr']:.3g}" + (f", wd {g['weight_decay']:.3g})" if wd else ")")
                     if len(same) > 1 else g["layer_type"])
    return out


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The effective weights (multipliers applied) under the ordinary keys, for export
    to code that does not use scaleadvise; load it into an unparameterized model."""
    out: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        for attr, t in module.named_parameters(recurse=False):
            out[prefix + attr] = t.detach().clone()
        for attr, t in module.named_buffers(recurse=False):
            out[prefix + attr] = t.detach().clone()
        if P.is_parametrized(module):
            for attr in module.parametrizations:
                with torch.no_grad():
                    out[prefix + attr] = getattr(module, attr).detach().clone()
    return {k: v for k, v in out.items() if not _ORIGINAL[1:] in k}  # drop the stored originals
