"""Probes: what the analysis commands read. Column names are DESIGN.md's contracts:
`scaleadvise epsilon` reads grads.csv, `scaleadvise align` reads alignment.csv.
"""

import csv
import math
import os

import torch

from scaleadvise.script.template.dist import Dist, all_sum, local_tensor
from scaleadvise.script.template.nanodo import Dense, tensor_name

METRICS_COLUMNS = ("step", "train_loss", "eval_loss", "lr", "tokens_per_s", "mfu")
GRADS_COLUMNS = ("width", "layer", "step", "grad_rms", "sqrt_v_rms")
ALIGNMENT_COLUMNS = ("width", "layer", "step", "log_alignment")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else repr(value))
    return str(value)


class CsvLog:
    """Append-only CSV with a fixed header; each row is flushed as it is written so
    a killed run keeps what it measured."""

    def __init__(self, path: str, columns: tuple[str, ...], enabled: bool = True):
        self.path, self.columns, self.enabled = path, columns, enabled

    def write(self, rows: list[dict]) -> None:
        if not self.enabled or not rows:
            return
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        with open(self.path, "a", newline="") as f:
            if new:
                f.write(",".join(self.columns) + "\n")
            f.write("".join(",".join(_cell(r.get(c)) for c in self.columns) + "\n" for r in rows))

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run logs them again)."""
        if not self.enabled or not os.path.exists(self.path):
            return
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if r.get("step", "") == "" or int(float(r["step"])) <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            f.write(",".join(self.columns) + "\n")
            f.write("".join(",".join(r.get(c, "") for c in self.columns) + "\n" for r in keep))
        os.replace(tmp, self.path)


@torch.no_grad()
def gradient_scales(model: torch.nn.Module, opt: torch.optim.Optimizer, dist: Dist) -> list[dict]:
    """Per tensor: RMS of the gradient and RMS of sqrt(v_hat), the bias-corrected
    second moment Adam's epsilon is added to (§4.3: epsilon matters once it is
    comparable to sqrt(v)). Call after opt.step(), before zero_grad(). Under FSDP
    each rank holds a shard: sums of squares are reduced over ranks."""
    beta2 = {id(p): g.get("betas", (0.0, 0.0))[1] for g in opt.param_groups for p in g["params"]}
    names, sums = [], []
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        grad = local_tensor(p.grad).float()
        state = opt.state.get(p, {})
        v = state.get("exp_avg_sq")
        sq_v = float("nan")
        if v is not None and v.shape == p.shape:  # factored second moments have another shape
            step = float(state["step"]) if "step" in state else 1.0
            sq_v = local_tensor(v).float().sum() / (1.0 - beta2[id(p)] ** step)
        names.append((tensor_name(name), p.numel()))
        sums.append(torch.stack([grad.square().sum(), torch.as_tensor(sq_v, device=grad.device).float()]))
    totals = all_sum(torch.stack(sums), dist).cpu() if sums else torch.zeros(0, 2)
    return [{"layer": n, "grad_rms": math.sqrt(float(s[0]) / numel),
             "sqrt_v_rms": math.sqrt(float(s[1]) / numel) if math.isfinite(float(s[1])) else None}
            for (n, numel), s in zip(names, totals)]


@torch.no_grad()
def log_alignment(model: torch.nn.Module, batch: torch.Tensor, autocast) -> dict[str, float]:
    """Definition 3.1 per dense layer (every Dense: q, k, v, o, up, down, readout):

        A_l = log_{fan-in} ||W z||_RMS / (||W||_RMS ||z||_RMS)

    with z the layer's input on a fixed batch and RMS taken over every token of it.
    A random W independent of z gives A = 1/2 (no alignment); a W whose rows align
    with z gives A = 1 (full alignment). The forward multiplier cancels in the
    ratio. Runs the uncompiled module with forward hooks, so the compiled training
    graph is untouched."""
    out: dict[str, float] = {}
    hooks = []

    def hook(name: str, fan_in: int):
        def fn(module: Dense, inputs, output):
            z = inputs[0].float()
            w = module.weight.float() * module.mult
            wz = output.float()
            ratio = wz.square().mean().sqrt() / (w.square().mean().sqrt() * z.square().mean().sqrt())
            out[name] = float(torch.log(ratio) / math.log(fan_in))
        return fn

    for name, module in model.named_modules():
        if isinstance(module, Dense):
            hooks.append(module.register_forward_hook(hook(tensor_name(name), module.weight.shape[-1])))
    was_training = model.training
    model.eval()
    try:
        with autocast():
            model(batch)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return out
