"""Find a model's residual branches, and scale their outputs (``core.depth``: m = (L/L0)^-alpha).

A residual branch is a path whose output is added back to the stream it started from,
``x = x + f(x)``. ``find_branches`` reads it from the model's structure: every module with
children is traced with ``torch.fx`` one level deep (its children stay opaque calls), and an
addition ``a + b`` is residual when one operand depends on the other: ``a`` is the stream,
``b`` the branch output, and every module called between them (the pre-norm, attention, the
MLP) holds the branch's parameters. The multiplier goes on the output of the module that
produces ``b`` (looking back through dropout, identity and multiplications by constants,
which commute with it), as a forward hook.

When a block does not trace (data-dependent control flow, tuple outputs), the user names the
branches: ``residual_branches=["blocks.*.attn", "blocks.*.mlp"]`` (glob patterns of the modules
whose outputs are added to the stream) and, for parameters on a branch that are not inside
such a module (a pre-norm called in the block's forward), ``residual_params=["blocks.*.ln_*"]``
or a model YAML's ``residual: true`` flags. Anything still ambiguous is refused in one line.
"""

import fnmatch
import operator
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
from torch import nn

from scaleadvise.errors import UserError

_ADD = {operator.add, operator.iadd, torch.add}
_SCALE = {operator.mul, operator.truediv, torch.mul}
_TRANSPARENT_MODULES = (nn.Dropout, nn.Identity)


class ResidualScale:
    """Forward hook: the branch output times m = (L/L0)^-alpha (a Python constant)."""

    def __init__(self, scale: float) -> None:
        self.scale = float(scale)

    def __call__(self, module: nn.Module, args: tuple, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"residual multiplier: {type(module).__name__} returned {type(output).__name__}, "
                            "not a tensor; name the module that returns the branch output in residual_branches")
        return output * self.scale

    def __repr__(self) -> str:
        return f"ResidualScale({self.scale:.6g})"


@dataclass
class Branches:
    outputs: list[str] = field(default_factory=list)  # modules whose output is scaled
    params: set[str] = field(default_factory=set)  # parameter names (named_parameters) on a branch
    blocks: set[str] = field(default_factory=set)  # the modules whose forward adds them (one per block)
    how: str = ""


class _OneLevel(torch.fx.Tracer):
    """Traces one module's own forward; every child module is a single opaque call."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self.root_module = root

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return m is not self.root_module


def _ancestors(node: "torch.fx.Node") -> set:
    seen, stack = set(), list(node.all_input_nodes)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.all_input_nodes)
    return seen


def _is_add(n: "torch.fx.Node") -> bool:
    return (n.op == "call_function" and n.target in _ADD) or (n.op == "call_method" and n.target in ("add", "add_"))


def _transparent(n: "torch.fx.Node", root: nn.Module) -> "torch.fx.Node | None":
    """The input of a node the multiplier commutes with, or None."""
    if n.op == "call_module" and isinstance(root.get_submodule(str(n.target)), _TRANSPARENT_MODULES):
        return n.args[0] if n.args and isinstance(n.args[0], torch.fx.Node) else None
    if n.op == "call_function" and n.target is torch.nn.functional.dropout:
        return n.args[0] if isinstance(n.args[0], torch.fx.Node) else None
    if n.op == "call_function" and n.target in _SCALE and len(n.args) == 2:
        tensors = [a for a in n.args if isinstance(a, torch.fx.Node)]
        consts = [a for a in n.args if isinstance(a, (int, float))]
        if len(tensors) == 1 and len(consts) == 1 and (n.target is not operator.truediv or n.args[0] is tensors[0]):
            return tensors[0]
    return None


def _trace_block(name: str, block: nn.Module) -> list[tuple[str, set[str], set[str]]]:
    """(output module, modules on the branch, attributes on the branch) per residual add of ``block``."""
    graph = _OneLevel(block).trace(block)
    prefix = f"{name}." if name else ""
    where = name or "the model"
    found, heads = [], []
    for node in graph.nodes:
        args = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if not _is_add(node) or len(args) != 2:
            continue
        a, b = args
        if a in _ancestors(b):
            stream, out = a, b
        elif b in _ancestors(a):
            stream, out = b, a
        else:
            continue  # e.g. token + position embeddings: two independent inputs
        on_path = {n for n in _ancestors(out) | {out} if stream in _ancestors(n)}
        head = out
        while head.op != "call_module" or isinstance(block.get_submodule(str(head.target)), _TRANSPARENT_MODULES):
            head = _transparent(head, block)
            if head is None:
                raise UserError(f"parameterize: the residual branch added in {where} does not end in a module "
                                "(cannot place the branch multiplier); pass residual_branches=")
        heads.append(head)
        found.append((prefix + str(head.target), {prefix + str(n.target) for n in on_path if n.op == "call_module"},
                      {prefix + str(n.target) for n in on_path if n.op == "get_attr"}))
    for head in heads:  # a hooked module scales every call: each must end a branch
        if any(n.op == "call_module" and n.target == head.target and n not in heads for n in graph.nodes):
            raise UserError(f"parameterize: {prefix}{head.target} is called in {where} other than as a residual "
                            "branch output; pass residual_branches=")
    return found


def _params_under(model: nn.Module, modules: Iterable[str]) -> set[str]:
    out = set()
    for m in modules:
        for pname, _ in model.get_submodule(m).named_parameters():
            out.add(f"{m}.{pname}" if m else pname)
    return out


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def find_branches(model: nn.Module) -> Branches:
    """Residual branches from the model's structure (module doc); empty when none traced."""
    br = Branches(how="traced (torch.fx)")
    inside: set[str] = set()  # modules on a branch found further up: a residual inside one is not the stream's
    for name, module in model.named_modules():  # parents before children
        if not any(True for _ in module.children()) or _under(name, inside):
            continue
        try:
            found = _trace_block(name, module)
        except UserError:
            raise
        except Exception:  # not traceable: control flow on values, unusual Python; the caller decides
            continue
        for out, mods, attrs in found:
            br.outputs.append(out)
            br.params |= _params_under(model, mods) | attrs
            br.blocks.add(name)
            inside |= mods
    return br


def named_branches(model: nn.Module, patterns: Sequence[str], extra_params: Sequence[str],
                   yaml_residual: set[str]) -> Branches:
    """Branches named by the user (module doc); refuses a block parameter it cannot place."""
    names = [n for n, _ in model.named_modules()]
    outputs = [n for n in names if n and any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    for p in patterns:
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise UserError(f"residual_branches: pattern {p!r} matches no module of the model")
    outputs = [o for o in outputs if not _under(o, [x for x in outputs if x != o])]  # outermost only
    params = _params_under(model, outputs)
    all_params = [n for n, _ in model.named_parameters()]
    params |= {n for n in all_params if any(fnmatch.fnmatchcase(n, p) for p in extra_params)}
    params |= {n for n in all_params if n.removesuffix(".weight") in yaml_residual}
    blocks = {o.rpartition(".")[0] for o in outputs}
    for n in all_params:  # a parameter of a block that is neither on a named branch nor named
        if n not in params and _under(n, [b for b in blocks if b]):
            raise UserError(f"parameterize: cannot tell whether {n} sits on a residual branch (its block does not "
                            "trace with torch.fx); add it to residual_params= (or mark it in model_yaml)")
    return Branches(outputs, params, blocks, "residual_branches")


def attach(model: nn.Module, outputs: Sequence[str], scale: float) -> list:
    """Scale each branch output by ``scale`` with a forward hook; returns the handles."""
    return [model.get_submodule(o).register_forward_hook(ResidualScale(scale)) for o in outputs]


def has_hooks(model: nn.Module) -> bool:
    return any(isinstance(h, ResidualScale) for m in model.modules() for h in m._forward_hooks.values())
