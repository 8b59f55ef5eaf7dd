"""NanoDO decoder-only Transformer (paper C.1) and the prescription applied to it.

Bundled verbatim into the script `scaleadvise emit-train` writes, so it imports
only torch and the standard library. Every tensor's init std, forward multiplier,
learning rate and epsilon come from the prescription's data block (the
`prescribe --json` document) by the rules of docs/CONVENTIONS.md, recomputed at
the width actually trained (a sweep trains several widths from one prescription):

    multiplier = n_t ** -a          init_std = sigma_t * n_t ** -b
    lr         = base_lr * gamma * (width / base_width) ** -c
    eps        = base_eps  or  base_eps * (width / base_width) ** -g   (per-layer)

n_t is a tensor's scale dimension: the fan-in of hidden and readout matrices, the
model width of embedding-type tensors (tables and norm gains) -- for every NanoDO
tensor that is its last axis.
"""

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

# Optimizers whose update has no additive epsilon (C.5 for adam-atan2).
EPS_FREE_OPTIMIZERS = ("sgd", "adam-atan2")


class BadInput(Exception):
    """Bad flags or data: the script prints one line and exits with status 2."""


def layer_type_of(name: str) -> str:
    """Paper C.2: embeddings, positions and LayerNorm scales are "embedding" layers,
    the readout is "readout", every dense layer in a block is "hidden"."""
    if name.startswith("embed.") or name.endswith("norm"):
        return "embedding"
    return "readout" if name == "readout" else "hidden"


def tensor_name(param_name: str) -> str:
    """A parameter's name in the prescription: PyTorch's name without `.weight`,
    and without the wrappers DDP, FSDP or torch.compile put in front."""
    for prefix in ("_orig_mod.", "module."):
        param_name = param_name.replace(prefix, "")
    return param_name[: -len(".weight")] if param_name.endswith(".weight") else param_name


def _block_key(name: str) -> str:
    return re.sub(r"^blocks\.\d+\.", "blocks.*.", name)


def tensor_constants(prescription: dict) -> dict[str, float]:
    """sigma_t per tensor (blocks folded together): the width-independent factor of
    the init std, read back from the prescription's own tensor list so that every
    convention the prescription used (0.01 embedding std where b = 0, C.2; unit
    init for u-muP) carries over to other widths and depths."""
    sigmas: dict[str, float] = {}
    for t in prescription["tensors"]:
        b = prescription["layers"][t["layer_type"]]["b"]
        sigmas[_block_key(t["name"])] = float(t["init_std"]) * float(t["scale_dim"]) ** b
    return sigmas


def resolve_tensor(name: str, shape: tuple[int, ...], prescription: dict, width: int,
                   base_lr: float, sigmas: dict[str, float]) -> dict:
    """Absolute init, multiplier, LR and epsilon of one tensor at `width`."""
    ltype = layer_type_of(name)
    layer = prescription["layers"][ltype]
    n_t = int(shape[-1])  # fan-in of [fan_out, fan_in] matrices; D for tables and gains
    is_gain = len(shape) == 1
    sigma = sigmas.get(_block_key(name))
    if sigma is None:  # a tensor the prescription does not list: the documented default
        sigma = 0.01 if ltype == "embedding" and layer["b"] == 0 and not is_gain else 1.0
    ratio = width / prescription["base_width"]
    mode = prescription.get("eps_mode", "constant")
    eps = None
    if prescription["optimizer"] not in EPS_FREE_OPTIMIZERS and mode != "none":
        eps = prescription["base_eps"] * (ratio ** -layer["g"] if mode == "per-layer" else 1.0)
    return {
        "name": name, "layer_type": ltype, "shape": list(shape),
        "init": "ones" if is_gain else "normal",
        "init_std": sigma * n_t ** -layer["b"],
        "multiplier": n_t ** -layer["a"],
        "lr": base_lr * prescription["constants"][ltype] * ratio ** -layer["c"],
        "eps": eps, "scale_dim": n_t,
    }


def plain_prescription(prescription: dict) -> dict:
    """'Parameterization off': standard parameterization with one global LR and a
    constant epsilon -- the usual PyTorch recipe, the baseline the throughput
    benchmark compares against (Table 1, STP with c = 0 everywhere)."""
    layers = {t: {"a": 0.0, "b": 0.0 if t == "embedding" else 0.5, "c": 0.0, "g": 0.0}
              for t in ("embedding", "hidden", "readout")}
    eps_mode = "none" if prescription.get("eps_mode") == "none" else "constant"
    return {**prescription, "parameterization": "sp-global", "layers": layers,
            "constants": {t: 1.0 for t in layers}, "eps_mode": eps_mode,
            "attention_scale": "sqrt", "tensors": []}


class Dense(nn.Module):
    """Bias-free linear layer, weight [fan_out, fan_in], forward multiplier n^-a.

    The multiplier scales the weight rather than the activation: the weight is the
    smaller tensor (fan_in * fan_out < tokens * fan_out at any useful batch), it is
    a plain float so torch.compile folds it into the graph, and under FSDP the
    multiply acts on the gathered weight inside forward. A multiplier of exactly 1
    costs nothing."""

    def __init__(self, fan_in: int, fan_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fan_out, fan_in))
        self.mult = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight if self.mult == 1.0 else self.weight * self.mult
        return F.linear(x, w)


class ScaleNorm(nn.Module):
    """Pre-LN LayerNorm with a learnable scale and no bias (C.1)."""

    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.mult = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight if self.mult == 1.0 else self.weight * self.mult
        return F.layer_norm(x, (x.shape[-1],), w, None, 1e-6)


class Embed(nn.Module):
    """Token and learned positional embeddings (C.1), each with its multiplier."""

    def __init__(self, vocab: int, context: int, width: int):
        super().__init__()
        self.tokens = nn.Parameter(torch.empty(vocab, width))
        self.positions = nn.Parameter(torch.empty(context, width))
        self.mult_tokens = self.mult_positions = 1.0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        tok = F.embedding(idx, self.tokens)
        pos = self.positions[: idx.shape[1]]
        if self.mult_tokens != 1.0:
            tok = tok * self.mult_tokens
        if self.mult_positions != 1.0:
            pos = pos * self.mult_positions
        return tok + pos


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (Dense(width, width) for _ in range(4))
        # C.2: logits scaled by 1/sqrt(h) (stp, ntk) or 1/h (muP class); set by apply_prescription.
        self.logit_scale = (width // heads) ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = (m(x).view(B, T, self.heads, D // self.heads).transpose(1, 2)
                   for m in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.logit_scale)
        return self.o(y.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, width: int, ffn: int):
        super().__init__()
        self.up, self.down = Dense(width, ffn), Dense(ffn, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x), approximate="tanh"))  # Flax's default GeLU


class Block(nn.Module):
    def __init__(self, width: int, heads: int, ffn: int):
        super().__init__()
        self.attn_norm, self.attn = ScaleNorm(width), Attention(width, heads)
        self.mlp_norm, self.mlp = ScaleNorm(width), MLP(width, ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class NanoDO(nn.Module):
    """Untied embedding and readout, no biases, no dropout (C.1)."""

    def __init__(self, width: int, depth: int, heads: int, context: int, vocab: int, ffn: int):
        super().__init__()
        self.context = context
        self.embed = Embed(vocab, context, width)
        self.blocks = nn.ModuleList(Block(width, heads, ffn) for _ in range(depth))
        self.final_norm = ScaleNorm(width)
        self.readout = Dense(width, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.readout(self.final_norm(x))


def model_dims(prescription: dict, width: int | None = None) -> dict:
    """Width, depth, heads, context, vocab, ffn; `width` overrides the prescription's
    and keeps the head dimension fixed, as the paper co-scales D and H (C.1)."""
    m = prescription["model"]
    head_dim = int(m.get("head_dim") or m["width"] // m["heads"])
    width = int(width or m["width"])
    if width % head_dim:
        raise BadInput(f"--width {width} is not divisible by the head dimension {head_dim}")
    ffn = int(m.get("ffn") or 4 * m["width"]) * width // int(m["width"])
    return {"width": width, "depth": int(m["depth"]), "heads": width // head_dim,
            "context": int(m["context"]), "vocab": int(m["vocab"]), "ffn": ffn}


def resolve_model(model: nn.Module, prescription: dict, width: int, base_lr: float) -> dict[str, dict]:
    """Every parameter's prescribed values, keyed by tensor name, in model order."""
    sigmas = tensor_constants(prescription)
    return {tensor_name(n): resolve_tensor(tensor_name(n), tuple(p.shape), prescription, width, base_lr, sigmas)
            for n, p in model.named_parameters()}


@torch.no_grad()
def apply_prescription(model: NanoDO, specs: dict[str, dict], attention_scale: str,
                       generator: torch.Generator | None = None) -> None:
    """Initialize every tensor and set every forward multiplier and the logit scale."""
    for name, p in model.named_parameters():
        spec = specs[tensor_name(name)]
        if spec["init"] == "ones":
            p.fill_(spec["init_std"])
        else:
            p.normal_(0.0, spec["init_std"], generator=generator)
    for name, module in model.named_modules():
        if isinstance(module, (Dense, ScaleNorm)):
            module.mult = specs[tensor_name(name)]["multiplier"]
        elif isinstance(module, Embed):
            module.mult_tokens = specs["embed.tokens"]["multiplier"]
            module.mult_positions = specs["embed.positions"]["multiplier"]
        elif isinstance(module, Attention):
            head_dim = module.q.weight.shape[0] // module.heads
            # C.2: 1/h assumes query-key alignment (muP class), 1/sqrt(h) does not.
            module.logit_scale = 1.0 / head_dim if attention_scale == "linear" else head_dim ** -0.5


def matmul_params(dims: dict) -> int:
    """N_matmul: parameters that take part in matrix multiplies (every block matrix
    and the readout; embedding lookups are gathers)."""
    d, f = dims["width"], dims["ffn"]
    return dims["depth"] * (4 * d * d + 2 * d * f) + dims["vocab"] * d


def flops_per_token(dims: dict) -> float:
    """Training FLOPs per token: 6 N_matmul (forward + backward) plus the attention
    scores and values, 12 L d T (forward + backward, causal mask not discounted)."""
    return 6.0 * matmul_params(dims) + 12.0 * dims["depth"] * dims["width"] * dims["context"]


def param_groups(model: nn.Module, specs: dict[str, dict], tensor_lr: bool = False,
                 device: torch.device | str = "cpu") -> list[dict]:
    """One optimizer group per layer type (embedding, hidden, readout): the
    prescription gives one LR and one epsilon per layer type, and fewer groups mean
    fewer fused-kernel launches. `tensor_names` lists each group's tensors; under
    FSDP the parameters are the sharded DTensors, the grouping is by name so it
    survives sharding. With `tensor_lr` the LR is a 0-dim tensor, so a compiled or
    fused step sees a changing schedule without recompiling."""
    groups: dict[str, dict] = {}
    for name, p in model.named_parameters():
        spec = specs[tensor_name(name)]
        g = groups.setdefault(spec["layer_type"], {"params": [], "tensor_names": [], "layer_type": spec["layer_type"],
                                                    "peak_lr": spec["lr"], "lr": spec["lr"]})
        if not math.isclose(g["peak_lr"], spec["lr"], rel_tol=1e-12):
            raise ValueError(f"{spec['name']}: LR differs within layer type {spec['layer_type']}")
        if spec["eps"] is not None:
            g["eps"] = spec["eps"]
        g["params"].append(p)
        g["tensor_names"].append(spec["name"])
    out = [groups[t] for t in ("embedding", "hidden", "readout") if t in groups]
    if tensor_lr:
        for g in out:
            g["lr"] = torch.tensor(g["peak_lr"], dtype=torch.float32, device=device)
    return out
