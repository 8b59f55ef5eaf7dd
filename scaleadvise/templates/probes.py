"""What the analysis commands read: CSV logs, gradient scales, alignment ratios.

Bundled verbatim into the emitted script (torch and the standard library only).
Column names are the contracts of DESIGN.md: `fit` reads sweeps.csv, `epsilon`
reads grads.csv, `align` reads alignment.csv.
"""

import csv
import math
import os

import torch

# ---- bundle: drop begin
from scaleadvise.templates.dist import Dist, all_sum, local_tensor
from scaleadvise.templates.nanodo import Dense, tensor_name
# ---- bundle: drop end

METRICS_COLUMNS = ("step", "train_loss", "eval_loss", "lr", "tokens_per_s", "mfu")
# The first five are the DESIGN.md contract; seed identifies the run (the unit of replication
# `scaleadvise epsilon` clusters by), the rest feed its model-level prediction (gradient_scales).
GRADS_COLUMNS = ("width", "layer", "step", "grad_rms", "sqrt_v_rms", "seed", "decrease", "decrease_no_eps", "eps")
ALIGNMENT_COLUMNS = ("width", "layer", "step", "log_alignment")
SWEEP_COLUMNS = ("width", "lr", "loss", "step", "seed", "param", "optim", "diverged")


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


def read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@torch.no_grad()
def gradient_scales(model: torch.nn.Module, opt: torch.optim.Optimizer, dist: Dist) -> list[dict]:
    """One grads.csv row per tensor (without width/step/seed, which the caller adds).

    Call at step t after ``opt.step()`` and before ``zero_grad()``: then ``p.grad`` is
    g_t, the minibatch gradient at W_{t-1} that this step used, and the optimizer state
    holds m_t, v_t after the step. With Adam's bias corrections m_hat = m_t/(1-beta1^t),
    v_hat = v_t/(1-beta2^t) (the ones torch.optim.Adam applies at step t):

    * ``grad_rms``: RMS of g_t. ``sqrt_v_rms``: RMS of sqrt(v_hat), what Adam's eps is
      added to (§4.3); None without an unfactored second moment (SGD).
    * ``decrease``: lr_t * <g_t, m_hat / (sqrt(v_hat) + eps)>, the first-order decrease
      of the minibatch loss by this step's update of the tensor, L(W_{t-1}) - L(W_t)
      to first order (the update is W_t = W_{t-1} - lr_t m_hat/(sqrt(v_hat)+eps)).
    * ``decrease_no_eps``: the same with eps = 0, lr_t * <g_t, m_hat / sqrt(v_hat)>.
      Elements with v_hat = 0 (never a gradient, or v underflowed) count 0 in both.
      decrease / decrease_no_eps is the share of the step's first-order progress that
      eps leaves (1/(1 + eps/sqrt(v)) for a tensor with one sqrt(v) everywhere):
      `scaleadvise epsilon` extrapolates it in width and weights tensors by their
      decrease_no_eps (issue 10, item 9). The part eps takes,
      lr*<g, m_hat*eps/(sqrt(v_hat)(sqrt(v_hat)+eps))>, is summed on its own in
      float64 and added, so a tiny eps effect is not lost to cancellation.
    * ``eps``: the eps of the tensor's parameter group (per-layer eps differs by tensor).

    lr_t is the group's LR for this step (schedule included). For Adam + parameter
    scaling (groups with ``min_param_rms``) the update carries the parameter scale
    max(min_param_rms, RMS(W)); W before the step is gone, so RMS(W_t) stands in (it
    moves by O(lr) per step); the ratio of the two decreases does not depend on it.
    Optimizers without eps on sqrt(v) (SGD, Adam-atan2) leave the decrease columns
    empty. Under FSDP each rank holds a shard of every tensor and its state: the
    sums (of squares, of products) are reduced over ranks; DDP ranks hold copies.

    Cost: nothing unless called (--grads-every 0); when called, a few elementwise
    passes over every parameter and its two moments, like one optimizer step.
    """
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    names, sums = [], []
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        group = group_of.get(id(p), {})
        grad = local_tensor(p.grad).float()
        state = opt.state.get(p, {})
        v, m = state.get("exp_avg_sq"), state.get("exp_avg")
        nan = torch.full((), float("nan"), dtype=torch.float64, device=grad.device)
        row = [grad.square().sum(dtype=torch.float64), nan, nan, nan, torch.zeros_like(nan)]
        eps = group.get("eps")
        if v is not None and v.shape == p.shape:  # factored second moments have another shape
            beta1, beta2 = group.get("betas", (0.0, 0.0))
            step = float(state["step"]) if "step" in state else 1.0
            sqrt_v_hat = local_tensor(v).float().sqrt() / math.sqrt(1.0 - beta2**step)
            row[1] = sqrt_v_hat.square().sum(dtype=torch.float64)
            if m is not None and eps is not None:
                # g·m_hat/sqrt(v_hat) split into what eps keeps, sqrt(v_hat)/(sqrt(v_hat)+eps), and what it
                # takes, eps/(sqrt(v_hat)+eps), each computed directly (no 1 - x cancellation, no
                # overflow where sqrt(v_hat) is tiny: |m_hat|/sqrt(v_hat) stays O(1)).
                m_hat = local_tensor(m).float() / (1.0 - beta1**step)
                alive = sqrt_v_hat > 0
                g_m_over_s = torch.where(alive, grad * m_hat / torch.where(alive, sqrt_v_hat, 1.0), 0.0)
                row[2] = (g_m_over_s * (sqrt_v_hat / (sqrt_v_hat + eps))).sum(dtype=torch.float64)
                row[3] = (g_m_over_s * (eps / (sqrt_v_hat + eps))).sum(dtype=torch.float64)
                if "min_param_rms" in group:
                    row[4] = local_tensor(p.detach()).float().square().sum(dtype=torch.float64)
        names.append((tensor_name(name), p.numel(), group, eps))
        sums.append(torch.stack(row))
    totals = all_sum(torch.stack(sums), dist).cpu().tolist() if sums else []
    out = []
    for (n, numel, group, eps), (g2, v, with_eps, lost, w2) in zip(names, totals):
        r = {"layer": n, "grad_rms": math.sqrt(g2 / numel), "decrease": None, "decrease_no_eps": None, "eps": eps,
             "sqrt_v_rms": math.sqrt(v / numel) if math.isfinite(v) else None}
        if math.isfinite(with_eps):
            scale = float(group["lr"])
            if "min_param_rms" in group:
                scale *= max(group["min_param_rms"], math.sqrt(w2 / numel))
            r["decrease"], r["decrease_no_eps"] = scale * with_eps, scale * (with_eps + lost)
        out.append(r)
    return out


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
