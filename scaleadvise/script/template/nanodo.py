"""The model: NanoDO (paper C.1), and the rule's values for its tensors.

A decoder-only Transformer with learned positions, pre-LN with a scale and no bias, GeLU,
untied embedding and readout, no biases, no dropout. Each parameter is the `weight` of a
layer with a forward multiplier n_t^-a (`mult`, a Python float that torch.compile folds; 1
costs nothing); tensor names drop `.weight` (blocks.0.attn.q, readout).
"""

import re

import torch
import torch.nn.functional as F
from torch import nn

from scaleadvise.core.rule import (decay_per_step, depth_factor, epsilon, fans, init_std, learning_rate, multiplier,
                                   scale_dim, weight_decay)
from scaleadvise.script.template.config import BadInput
from scaleadvise.torch.apply import apply_values


class Scaled(nn.Module):
    """A layer computing with mult * weight (§2.1); apply_values sets `mult`."""

    mult = 1.0

    def __init__(self, *shape: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(*shape))  # the rule initializes it (apply_values)

    def w(self) -> torch.Tensor:  # under FSDP the gathered weight: scaling it is smaller than scaling activations
        return self.weight if self.mult == 1.0 else self.weight * self.mult


class Dense(Scaled):  # Linear without bias, weight [fan_out, fan_in]
    def __init__(self, fan_in: int, fan_out: int):
        super().__init__(fan_out, fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w())


class ScaleNorm(Scaled):  # LayerNorm with a learned scale and no bias (C.1)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.w(), None, 1e-6)


class Table(Scaled):  # an embedding table [rows, width]; the multiplier scales the rows looked up
    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = F.embedding(idx, self.weight)
        return x if self.mult == 1.0 else x * self.mult


class Embed(nn.Module):
    def __init__(self, vocab: int, context: int, width: int):
        super().__init__()
        self.tokens, self.positions = Table(vocab, width), Table(context, width)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.tokens(idx) + self.positions(torch.arange(idx.shape[1], device=idx.device))


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, attention_scale: str):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (Dense(width, width) for _ in range(4))
        # C.2: logits x 1/head_dim where queries and keys align (the muP class), else 1/sqrt(head_dim).
        self.logit_scale = (width // heads) ** (-1.0 if attention_scale == "linear" else -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape  # batch, time, width
        q, k, v = (m(x).view(B, T, self.heads, D // self.heads).transpose(1, 2) for m in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.logit_scale)  # flash on CUDA
        return self.o(y.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, width: int, ffn: int):
        super().__init__()
        self.up, self.down = Dense(width, ffn), Dense(ffn, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x), approximate="tanh"))  # Flax's default GeLU


class Block(nn.Module):
    res_mult = 1.0  # each residual branch's output x (L/L0)^-alpha under a depth parameterization (core/depth.py)

    def __init__(self, width: int, heads: int, ffn: int, attention_scale: str):
        super().__init__()
        self.attn_norm, self.attn = ScaleNorm(width), Attention(width, heads, attention_scale)
        self.mlp_norm, self.mlp = ScaleNorm(width), MLP(width, ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.res_mult
        x = x + (self.attn(self.attn_norm(x)) if r == 1.0 else r * self.attn(self.attn_norm(x)))
        return x + (self.mlp(self.mlp_norm(x)) if r == 1.0 else r * self.mlp(self.mlp_norm(x)))


class NanoDO(nn.Module):
    def __init__(self, width: int, depth: int, heads: int, context: int, vocab: int, ffn: int,
                 attention_scale: str = "sqrt"):
        super().__init__()
        self.embed = Embed(vocab, context, width)
        self.blocks = nn.ModuleList(Block(width, heads, ffn, attention_scale) for _ in range(depth))
        self.final_norm, self.readout = ScaleNorm(width), Dense(width, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # tokens [batch, time] -> logits [batch, time, vocab]
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.readout(self.final_norm(x))


def model_size(pres: dict, width=None, depth=None, context=None, vocab=None) -> dict:
    """NanoDO's arguments: the prescription's size, or the overrides it allows.

    The heads grow with the width (C.1), so the head dim must divide it; the depth may change
    where the exponents do not depend on it (they do for a hidden omega > 1/2, Table 2); the
    context and the vocabulary enter no exponent."""
    m = pres["model"]
    size = {k: v or m[k] for k, v in (("width", width), ("depth", depth), ("context", context), ("vocab", vocab))}
    for key, flag in zip(size, (width, depth, context, vocab)):
        if flag is not None and flag < 1:
            raise BadInput(f"--{key} {flag}: must be a positive integer")
    w = size["width"]
    if w % m["head_dim"] or (m["ffn"] * w) % m["width"]:
        raise BadInput(f"--width {w}: not a multiple of the head dimension {m['head_dim']} "
                       f"(heads = width / head_dim, C.1) with a whole FFN width ({m['ffn']} at {m['width']})")
    if size["depth"] != m["depth"] and not m["depth_free"]:
        raise BadInput(f"--depth {size['depth']}: this prescription's exponents depend on the depth (hidden "
                       f"alignment omega > 1/2); emit a script with emit-train --depth {size['depth']}")
    return {**size, "heads": w // m["head_dim"], "ffn": m["ffn"] * w // m["width"],
            "attention_scale": pres["attention_scale"]}


def tensor_name(param_name: str) -> str:
    """A parameter's tensor name: without `.weight` and the wrappers of DDP, FSDP, torch.compile."""
    name = param_name.replace("_orig_mod.", "").replace("module.", "")
    return name[: -len(".weight")] if name.endswith(".weight") else name


def tensor_values(pres: dict, name: str, shape, width: int, base_lr: float, depth=None) -> dict:
    """One tensor's numbers at `width` (and `depth`): the rule (core/rule.py) on the prescription's data.
    `decay`: the fraction the script shrinks it by per step at the peak LR (weight decay)."""
    layer_type, kind, init, sigma, *branch = pres["tensors"][re.sub(r"^blocks\.\d+\.", "blocks.*.", name)]
    L, n_t = pres["layers"][layer_type], scale_dim(layer_type, *fans(kind, shape))
    lr = learning_rate(base_lr, L["gamma"], L["c"], width, pres["base_width"])
    eps = epsilon(pres["base_eps"], L["e"], width, pres["base_width"])
    if "depth" in pres:  # core/depth.py: the factors of the tensor's position at the depth trained
        x = pres["depth"]["exponents"]["branch" if branch and branch[0] else "trunk"]
        L0, depth = pres["depth"]["base_depth"], depth or pres["model"]["depth"]
        lr = lr * depth_factor(x["lr"], depth, L0)
        eps = None if eps is None else eps * depth_factor(x["eps"], depth, L0)
    out = {"layer_type": layer_type, "init": init, "init_std": init_std(sigma, L["b"], n_t),
           "multiplier": multiplier(L["a"], n_t), "scale_dim": n_t, "lr": lr, "eps": eps}
    if "weight_decay" in pres:  # core/weight_decay.py
        wd = pres["weight_decay"]
        if kind in ("linear", "embedding") or wd["vectors"]:
            out["decay"] = decay_per_step(weight_decay(wd["lambda"], lr, wd["convention"]), lr, wd["convention"])
    return out


def build_model(pres: dict, size: dict, base_lr: float, seed: int, device) -> tuple[NanoDO, dict]:
    """The model at `size`, initialized, its multipliers set; and each tensor's values."""
    with torch.device(device):
        model = NanoDO(**size)
    values, slots = {}, []
    for module_name, module in model.named_modules():
        for attr, p in module.named_parameters(recurse=False):
            name = tensor_name(f"{module_name}.{attr}")
            values[name] = tensor_values(pres, name, tuple(p.shape), size["width"], base_lr, size["depth"])
            slots.append((module, attr, values[name]))
    apply_values(slots, generator=torch.Generator(device).manual_seed(seed))
    if "depth" in pres:  # every residual branch's output x (L/L0)^-alpha
        d = pres["depth"]
        for block in model.blocks:
            block.res_mult = depth_factor(d["exponents"]["branch"]["multiplier"], size["depth"], d["base_depth"])
    return model, values


def flops_per_token(size: dict) -> float:
    """Training FLOPs per token: 6 x the parameters in matmuls (forward + backward; lookups
    are gathers) + 12 L d T for attention scores and values (causal mask not discounted)."""
    d, f = size["width"], size["ffn"]
    L, T = size["depth"], size["context"]
    return 6.0 * (L * (4 * d * d + 2 * d * f) + size["vocab"] * d) + 12.0 * L * d * T
