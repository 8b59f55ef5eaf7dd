"""Coordinate check (Tensor Programs V, Yang et al. 2021, as packaged in microsoft/mup; unit scaling):
activation sizes across widths, at initialization and after a few optimizer steps.

A parameterization with its prescribed learning rates is *width-stable* when every
activation coordinate (and its change Δh = h_t - h_0) has an RMS that does not grow
with the width n; it *learns features* when the hidden Δh stays Θ(1) rather than
vanishing. The theory says at which power of n each quantity moves (§3.3, B.12),
so the check here is quantitative: fit the slope of log RMS against log width and
compare it with the slope derived from the prescription's exponents (a, b, c) and
alignment (``expected_slopes``), never with a table typed in.

    pres = prescribe(PrescribeRequest(param="mup", width=64, base_width=64, model="nanodo", ...))
    data = coord_check(pres, widths=[64, 128, 256], batches=..., probe=..., steps=4)
    slope(data["widths"], [r[-1] for r in data["delta"]["blocks.1.mlp"]])

The model is the emitted script's NanoDO (scaleadvise.script.template.nanodo), built, initialized
and grouped exactly as the script does it; ``plain=True`` trains ``plain_prescription`` (SP
init, one global LR: the deliberately wrong prescription). The LR is held constant (no
warmup), as in microsoft/mup's check, so step t is t full-size updates.
"""

import math
from typing import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scaleadvise.errors import UserError
from scaleadvise.script.emit import script_prescription
from scaleadvise.script.template.nanodo import NanoDO, build_model, model_size, tensor_name
from scaleadvise.script.template.train import make_optimizer
from scaleadvise.torch.apply import param_groups
from scaleadvise.core.alignment import Alignment
from scaleadvise.core.optimizers import Family, optimizer_family
from scaleadvise.core.theory import evaluate

Batch = tuple[torch.Tensor, torch.Tensor]


# --------------------------------------------------------------------------- measuring


def nanodo_coordinates(depth: int) -> list[str]:
    """The activations recorded, by the module whose output they are: the embedding
    output, each block's attention and MLP outputs (before the residual add) and the
    residual stream after it, and the logits (the readout's output)."""
    blocks = [f"blocks.{i}{part}" for i in range(depth) for part in (".attn", ".mlp", "")]
    return ["embed", *blocks, "readout"]


@torch.no_grad()
def capture(model: nn.Module, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Outputs of the named submodules in one forward pass on ``x`` (float32 copies)."""
    modules = dict(model.named_modules())
    out: dict[str, torch.Tensor] = {}
    hooks = [modules[n].register_forward_hook(lambda _m, _i, y, n=n: out.__setitem__(n, y.detach().float().clone()))
             for n in names]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return out


def rms(t: torch.Tensor) -> float:
    """Root mean square over every coordinate: the size of a typical entry."""
    return t.float().square().mean().sqrt().item()


def trace(model: nn.Module, opt: torch.optim.Optimizer, loss_fn: Callable[[nn.Module, Batch], torch.Tensor],
          batches: Sequence[Batch], probe: torch.Tensor, names: Sequence[str]) -> dict[str, list]:
    """Train one step per batch; before the first and after every step, record on the
    fixed ``probe`` input the RMS of each named activation h_t and of its change
    h_t - h_0. Returns {"h": {name: [t0..T]}, "delta": {...}, "loss": [per step]}."""
    h0 = capture(model, probe, names)
    out: dict[str, list] = {"h": {n: [rms(h0[n])] for n in names}, "delta": {n: [0.0] for n in names}, "loss": []}
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        loss.backward()
        opt.step()
        out["loss"].append(loss.item())
        ht = capture(model, probe, names)
        for n in names:
            out["h"][n].append(rms(ht[n]))
            out["delta"][n].append(rms(ht[n] - h0[n]))
    return out


def lm_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x).float().flatten(0, 1), y.flatten())


def plain_prescription(prescription: Mapping) -> dict:
    """'Parameterization off': standard parameterization with one global LR and a constant
    epsilon, the usual PyTorch recipe (Table 1's STP with c = 0 everywhere; C.2's 0.01 std
    for embedding tables, 1/sqrt(fan_in) for matrices, unit norm gains)."""
    layers = {t: {**prescription["layers"][t], "a": 0.0, "b": 0.0 if t == "embedding" else 0.5, "c": 0.0, "g": 0.0,
                  "gamma": 1.0, "eps_exponent": None if prescription.get("eps_mode") == "none" else 0.0}
              for t in ("embedding", "hidden", "readout")}
    tensors = [{**t, "sigma": 0.01 if t["kind"] == "embedding" else 1.0} for t in prescription.get("tensors", [])]
    return {**prescription, "parameterization": "sp-global", "layers": layers, "constants": {t: 1.0 for t in layers},
            "eps_mode": "none" if prescription.get("eps_mode") == "none" else "constant", "attention_scale": "sqrt",
            "tensors": tensors}


def build_nanodo(prescription: dict, width: int, base_lr: float | None = None, seed: int = 0,
                 plain: bool = False) -> tuple[NanoDO, torch.optim.Optimizer]:
    """The NanoDO model and optimizer the emitted script trains at ``width`` (head dim
    fixed), with Table C2's betas; ``plain``: ``plain_prescription`` instead."""
    pres = script_prescription(plain_prescription(prescription) if plain else prescription, depth_free=False)
    torch.manual_seed(seed)
    model, values = build_model(pres, model_size(pres, width), base_lr or pres["base_lr"], seed, "cpu")
    groups = param_groups((p, values[tensor_name(n)]) for n, p in model.named_parameters())
    return model, make_optimizer(pres["optimizer"], groups, (0.9, 0.98), fused=False)


def coord_check(prescription: dict, widths: Iterable[int], batches: Callable[[int], Sequence[Batch]],
                probe: Callable[[int], torch.Tensor], seeds: Sequence[int] = (0,), base_lr: float | None = None,
                plain: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    """The coordinate check over ``widths``: for each width and seed, build, train
    ``len(batches(seed))`` steps and trace (``trace``); RMS values are averaged over
    seeds (as microsoft/mup does). Returns {"widths", "coordinates", "h": {name:
    [[t0..T] per width]}, "delta": ..., "loss": [[per step] per width]}."""
    if prescription.get("parameterization") == "umup":
        from scaleadvise.core.prescribe import UMUP_OPS_NOTE

        raise UserError(f"coord_check: {UMUP_OPS_NOTE}")
    widths = list(widths)
    names = nanodo_coordinates(int(prescription["model"]["depth"]))
    out: dict = {"widths": widths, "coordinates": names, "h": {n: [] for n in names},
                 "delta": {n: [] for n in names}, "loss": []}
    for w in widths:
        runs = []
        for s in seeds:
            model, opt = build_nanodo(prescription, w, base_lr, s, plain)
            runs.append(trace(model, opt, lm_loss, batches(s), probe(s), names))
            if progress:
                progress(f"width {w} seed {s}: loss {runs[-1]['loss'][0]:.3f} -> {runs[-1]['loss'][-1]:.3f}")
        for key in ("h", "delta"):
            for n in names:
                out[key][n].append([sum(r[key][n][t] for r in runs) / len(runs) for t in range(len(runs[0][key][n]))])
        out["loss"].append([sum(r["loss"][t] for r in runs) / len(runs) for t in range(len(runs[0]["loss"]))])
    return out


# --------------------------------------------------------------------------- summarizing


def slope(widths: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log2(value) against log2(width): value ~ n^slope."""
    xs = [math.log2(w) for w in widths]
    ys = [math.log2(v) if v > 0 else float("-inf") for v in values]
    if len(xs) < 2 or not all(math.isfinite(y) for y in ys):
        return float("nan")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def spread(values: Sequence[float]) -> float:
    """max / min: the factor by which a coordinate varies across widths."""
    return max(values) / min(values)


# --------------------------------------------------------------------------- theory


def _alignment(prescription: Mapping) -> Alignment:
    al = prescription.get("alignment") or {}
    return Alignment(**{k: al[k] for k in ("alpha", "omega", "u", "alpha_readout", "omega_readout", "u_readout")
                        if k in al})


def _matmul_r(a: float, b: float, c: float, optim: str, alignment: tuple[float, float, float], r_in: float) -> float:
    """Negative exponent of the change of one matmul's output W z, with (a, b, c), when
    its input z is Θ(1) and moves as n^-r_in: B.12's three terms (ΔW z, ΔW Δz, W Δz).
    It is ``theory.evaluate``'s r_2 on the chain input -> layer, the input played by
    an embedding whose update exponent a_1 + delta_1 is r_in (delta = c for Adam, c + b
    for Adafactor with b_1 = 0, B.9), so the formula lives in one place."""
    v = evaluate({"embedding": 0.0, "hidden": a, "readout": 0.5}, {"embedding": 0.0, "hidden": b, "readout": 0.0},
                 {"embedding": r_in, "hidden": c, "readout": 0.0}, optim, Alignment(*alignment), n_hidden=1)
    return v.r[1]


def expected_slopes(prescription: Mapping, plain: bool = False) -> dict[str, dict[str, float]]:
    """Per coordinate of ``nanodo_coordinates``, the width exponents the theory predicts
    from the prescription's (a, b, c) and alignment: "h0" (RMS at init), "delta" (RMS
    of h_t - h_0 after training steps) and "h" (h_t = h_0 + Δh: the larger of the two).

    The NanoDO blocks are pre-LN (C.1): a block sees LN(x), which is Θ(1) at init and
    whose change is that of x capped at Θ(1), r = max(r_x, 0). Each block output
    (attention: v then o; MLP: up then down) is two hidden matmuls in series from
    there; the residual stream moves as its fastest-moving summand; the logits are the
    readout of LN(x_L). Init sizes use the independent-init sum (omega = 1/2, §3.3.1):
    a matmul's output scales as n^-(a + b - 1/2), the embedding as n^-(a_1 + b_1).
    Under SGD the update exponent needs the network's gradients, which this chain
    does not model, so only the Adam and Adafactor families are supported."""
    pres = plain_prescription(dict(prescription)) if plain else prescription
    optim = pres["optimizer"]
    if optimizer_family(optim) is Family.SGD:
        raise UserError("expected_slopes: SGD's update exponent c + g depends on the whole network; "
                         "use an Adam- or Adafactor-family optimizer")
    L = pres["layers"]
    a, b, c = ({t: float(L[t][k]) for t in L} for k in ("a", "b", "c"))
    al = _alignment(pres)
    chain = evaluate(a, b, c, optim, al, n_hidden=2)
    init = {k.layer: k.value for k in chain.constraints if k.name == "init"}  # a+b (emb), a+b-1/2 (others)
    hidden = (a["hidden"], b["hidden"], c["hidden"], optim, al.at("hidden"))
    readout = (a["readout"], b["readout"], c["readout"], optim, al.at("readout"))

    def block(r_x: float) -> float:
        r_in = max(r_x, 0.0)  # LN caps the input's change at Θ(1)
        return _matmul_r(*hidden, _matmul_r(*hidden, r_in))

    out: dict[str, dict[str, float]] = {}
    r_x, e_x = chain.r[0], init["embedding"]  # chain.r[0] = a_1 + delta_1 (B.10)
    out["embed"] = {"h0": -e_x, "delta": -r_x}
    for i in range(int(pres["model"]["depth"])):
        r_attn = block(r_x)
        r_mlp = block(min(r_x, r_attn))
        e_block = 2 * init["hidden"]
        out[f"blocks.{i}.attn"] = {"h0": -e_block, "delta": -r_attn}
        out[f"blocks.{i}.mlp"] = {"h0": -e_block, "delta": -r_mlp}
        r_x, e_x = min(r_x, r_attn, r_mlp), min(e_x, e_block)
        out[f"blocks.{i}"] = {"h0": -e_x, "delta": -r_x}
    out["readout"] = {"h0": -init["readout"], "delta": -_matmul_r(*readout, max(r_x, 0.0))}
    for v in out.values():
        v["h"] = max(v["h0"], v["delta"])
        v.update({k: x + 0.0 for k, x in v.items()})  # -0.0 -> 0.0
    return out
