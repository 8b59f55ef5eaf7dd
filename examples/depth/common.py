"""What the depth examples share: the byte corpus, the NanoDO model of the emitted script made
by `scaleadvise.torch.parameterize` at any (width, depth), and one training run.

The model is the emitted script's NanoDO (scaleadvise.script.template.nanodo, paper C.1)
with vocabulary 256 (bytes); parameterize finds its residual branches (each block's
attention and MLP, their pre-norms included) from its structure, multiplies each branch
output by (L/L0)^-alpha, and gives every tensor its LR, epsilon and weight decay (the same
numbers as `scaleadvise prescribe --json`). One run trains AdamW with a linear warmup and a
cosine decay and returns the mean loss on fixed held-out batches (the last 5% of the corpus,
as the emitted script holds it out).
"""

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scaleadvise.corpus import build_corpus
from scaleadvise.script.template.data import batch_offsets, gather_batch
from scaleadvise.script.template.nanodo import NanoDO
from scaleadvise.torch.parameterize import parameterize

HERE = Path(__file__).resolve().parent
CACHE = HERE / "work"  # not committed (.gitignore)


def tokens() -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) byte tokens of the standard library's sources (the last 5% held out)."""
    info = build_corpus(CACHE / "corpus.txt")
    data = np.fromfile(info["path"], dtype=np.uint8)
    cut = int(len(data) * 0.95)
    return data[:cut], data[cut:]


def nanodo_yaml(depth: int, head_dim: int, context: int) -> str:
    """The nanodo preset at this depth, head dim and context with the byte vocabulary: it tells
    parameterize that the template's bare ``embed.*`` Parameters are tables (paper C.1)."""
    from scaleadvise.core.model import PRESET_DIR

    text = (PRESET_DIR / "nanodo.yaml").read_text()
    for old, new in (("depth: 8", f"depth: {depth}"), ("head_dim: 128", f"head_dim: {head_dim}"),
                     ("vocab: 32101", "vocab: 256"), ("context: 512", f"context: {context}")):
        assert old in text, old
        text = text.replace(old, new)
    path = CACHE / f"nanodo-L{depth}-h{head_dim}-c{context}.yaml"
    if not path.exists() or path.read_text() != text:
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return str(path)


def model(width: int, depth: int, *, head_dim: int, context: int, param: str, base_width: int, base_lr: float,
          depth_param: str, base_depth: int, seed: int, weight_decay: float | None = None,
          eps: str | float = "per-layer", base_eps: float = 1e-8):
    """A parameterized NanoDO and its AdamW param groups."""
    torch.manual_seed(seed)
    net = NanoDO(width=width, depth=depth, heads=width // head_dim, context=context, vocab=256, ffn=4 * width)
    groups = parameterize(net, param, "adamw", width=width, base_width=base_width, base_lr=base_lr,
                          eps=eps, base_eps=None if eps != "per-layer" else base_eps,
                          depth_param=depth_param, depth=depth, base_depth=base_depth if depth_param != "none" else None,
                          weight_decay=weight_decay, generator=torch.Generator().manual_seed(seed),
                          model_yaml=nanodo_yaml(depth, head_dim, context))
    scale = 1.0 / head_dim if param in ("mup", "mfp") else head_dim ** -0.5  # C.2: the muP class uses 1/h
    for block in net.blocks:
        block.attn.logit_scale = scale
    return net, groups


def loss_of(net, x, y) -> torch.Tensor:
    return F.cross_entropy(net(x).flatten(0, 1), y.flatten())


def train(width: int, depth: int, lr: float, *, steps: int, batch: int, context: int, head_dim: int, param: str,
          base_width: int, depth_param: str, base_depth: int, seed: int, data, weight_decay: float | None = None,
          eval_batches: int = 8, warmup: float = 0.1) -> dict:
    """One run; ``lr`` is the base LR (the swept quantity). Returns the sweep row."""
    train_tokens, held = data
    t0 = time.time()
    net, groups = model(width, depth, head_dim=head_dim, context=context, param=param, base_width=base_width,
                        base_lr=lr, depth_param=depth_param, base_depth=base_depth, seed=seed,
                        weight_decay=weight_decay)
    for g in groups:
        g["peak_lr"] = g["lr"]
        g.setdefault("weight_decay", 0.0)
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.95))
    n_warm = max(1, int(warmup * steps))
    diverged, step = False, 0
    for step in range(1, steps + 1):
        s = step / n_warm if step <= n_warm else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - n_warm) /
                                                                             max(1, steps - n_warm)))
        for g in opt.param_groups:
            g["lr"] = g["peak_lr"] * s
        x, y = gather_batch(train_tokens, batch_offsets(len(train_tokens), context, batch, seed, step), context)
        loss = loss_of(net, x, y)
        if not torch.isfinite(loss):
            diverged = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if diverged:
        eval_loss = float("nan")
    else:
        with torch.no_grad():
            losses = [loss_of(net, *gather_batch(held, batch_offsets(len(held), context, batch, 1234, i), context))
                      for i in range(eval_batches)]
        eval_loss = float(torch.stack(losses).mean())
        diverged = not math.isfinite(eval_loss)
    return {"width": width, "depth": depth, "lr": lr, "loss": eval_loss, "step": step, "seed": seed,
            "param": param, "optim": "adamw", "diverged": int(diverged), "depth_param": depth_param,
            "weight_decay": weight_decay or 0.0, "seconds": round(time.time() - t0, 2)}
