"""Probes: the CSVs the analysis commands read (columns: docs/CONTRACTS.md).

`scaleadvise epsilon` reads grads.csv, `scaleadvise align` reads alignment.csv.
"""

import csv
import math
import os

import torch

from scaleadvise.script.template.config import BadInput
from scaleadvise.script.template.dist import Dist, all_sum, local_tensor
from scaleadvise.script.template.nanodo import Dense, tensor_name

METRICS_COLUMNS = ("step", "train_loss", "eval_loss", "lr", "tokens_per_s", "mfu")
GRADS_COLUMNS = ("width", "layer", "step", "grad_rms", "sqrt_v_rms", "seed", "decrease", "decrease_no_eps", "eps")
ALIGNMENT_COLUMNS = ("width", "layer", "step", "log_alignment", "alpha", "omega", "u")


class CsvLog:
    """Append-only CSV with a fixed header, each row flushed as written: a killed run keeps what it measured."""

    def __init__(self, path: str, columns: tuple[str, ...], enabled: bool = True):
        self.path, self.columns, self.enabled = path, columns, enabled

    def _lines(self, rows: list[dict]) -> str:  # floats exact (repr); None empty
        cell = lambda v: "" if v is None else repr(v) if isinstance(v, float) else str(v)  # noqa: E731
        return "".join(",".join(cell(r.get(c)) for c in self.columns) + "\n" for r in rows)

    def write(self, rows: list[dict]) -> None:
        if self.enabled and rows:
            new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
            with open(self.path, "a", newline="") as f:
                f.write((",".join(self.columns) + "\n" if new else "") + self._lines(rows))

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run logs them again)."""
        if self.enabled and os.path.exists(self.path):
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "") == "" or int(float(r["step"])) <= step]
            with open(self.path + ".tmp", "w", newline="") as f:
                f.write(",".join(self.columns) + "\n" + "".join(",".join(r.get(c) or "" for c in self.columns)
                                                               + "\n" for r in rows))
            os.replace(self.path + ".tmp", self.path)


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
        group, state, grad = group_of.get(id(p), {}), opt.state.get(p, {}), local_tensor(p.grad).float()
        v, m, eps = state.get("exp_avg_sq"), state.get("exp_avg"), group.get("eps")
        nan = torch.full((), float("nan"), dtype=torch.float64, device=grad.device)
        row = [grad.square().sum(dtype=torch.float64), nan, nan, nan, torch.zeros_like(nan)]  # g2, v, kept, lost, w2
        if v is not None and v.shape == p.shape:  # factored second moments have another shape
            (beta1, beta2), t = group.get("betas", (0.0, 0.0)), float(state.get("step", 1.0))
            s = local_tensor(v).float().sqrt() / math.sqrt(1.0 - beta2**t)  # sqrt(v_hat)
            row[1] = s.square().sum(dtype=torch.float64)
            if m is not None and eps is not None:
                # g m_hat / s split into what eps keeps, s / (s + eps), and what it takes, eps / (s + eps), each
                # computed directly: no 1 - x cancellation, no overflow where s is tiny (|m_hat| / s stays O(1)).
                alive = s > 0
                m_hat = local_tensor(m).float() / (1.0 - beta1**t)
                gms = torch.where(alive, grad * m_hat / torch.where(alive, s, 1.0), 0.0)
                row[2], row[3] = ((gms * (x / (s + eps))).sum(dtype=torch.float64) for x in (s, eps))
                if "min_param_rms" in group:
                    row[4] = local_tensor(p.detach()).float().square().sum(dtype=torch.float64)
        names.append((tensor_name(name), p.numel(), group, eps))
        sums.append(torch.stack(row))
    totals = all_sum(torch.stack(sums), dist).cpu().tolist() if sums else []
    out = []
    for (n, numel, group, eps), (g2, v, kept, lost, w2) in zip(names, totals):
        scale = float(group["lr"])
        if "min_param_rms" in group:  # Adam + parameter scaling: the update carries max(min_param_rms, RMS(W))
            scale *= max(group["min_param_rms"], math.sqrt(w2 / numel))
        measured = math.isfinite(kept)
        out.append({"layer": n, "grad_rms": math.sqrt(g2 / numel), "eps": eps,
                    "sqrt_v_rms": math.sqrt(v / numel) if math.isfinite(v) else None,
                    "decrease": scale * kept if measured else None,
                    "decrease_no_eps": scale * (kept + lost) if measured else None})
    return out


PROBE_SEQUENCES = 8  # sequences of the fixed held-out probe batch (bounds z_0's memory)
_CHUNK = 1024  # tokens per matmul inside the probe (bounds its transient memory)


def log_ratio(sxy: float, sx: float, sy: float, fan_in: int) -> float | None:
    """log_fan-in ||X y||_RMS / (||X||_RMS ||y||_RMS) from sums of squares: 1/2 independent, 1 aligned; None undefined.

    X is [fan_out, fan_in], y holds T tokens [T, fan_in]; the RMS norms are
    sqrt(sxy / (T fan_out)), sqrt(sx / (fan_out fan_in)) and sqrt(sy / (T fan_in)), so the
    ratio is fan_in * sqrt(sxy / (sx sy)) (the paper's footnote 3). X independent of y
    gives 1/2 (central-limit scaling, §2.3); X = v m^T with every token along m gives 1
    (law of large numbers); by Cauchy-Schwarz it never exceeds 1. None where it is
    undefined: a factor is zero (at step 0 ΔW = 0 and Δz = 0, and the exponent of 0/0 is
    no number, least of all 1/2), the product vanishes exactly (log 0), or NaN.
    """
    if not (sx > 0 and sy > 0 and sxy > 0) or fan_in < 2:
        return None
    return 1.0 + 0.5 * math.log(sxy / (sx * sy)) / math.log(fan_in)


def _sq(x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """||x w^T||_F^2 in float64 for tokens x [T, fan_in] and weight rows w [rows, fan_in]; ||x||_F^2 without w."""
    if w is None:
        return x.float().square().sum().double()
    return sum((x[i:i + _CHUNK].float() @ w.T).square().sum().double() for i in range(0, x.shape[0], _CHUNK))


def _run_dense(model: torch.nn.Module, batch: torch.Tensor, autocast, fn) -> None:
    """Forward `batch` through the plain `model` in eval mode, calling fn(name, z) on each Dense input z.

    Hooks on the plain module leave the compiled training graph untouched; they are
    removed afterwards."""
    hooks = [m.register_forward_hook(lambda _m, i, _o, n=tensor_name(name): fn(n, i[0]))
             for name, m in model.named_modules() if isinstance(m, Dense)]
    was_training = model.training
    try:
        with torch.no_grad(), autocast():
            model.eval()(batch)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
        if hasattr(model, "reshard"):  # FSDP2 keeps the root gathered after a forward: give the shards back, so
            model.reshard()  # named_parameters() is again what the optimizer and the checkpoints hold


class AlignmentProbe:
    """alpha, omega, u (B.11) and A (Definition 3.1) of every dense layer, against W_0, z_0 of step 0.

    A dense layer computes z_l = n^-a_l W_l z_{l-1}; with W_l = W_0 + ΔW and z_{l-1} = z_0 + Δz
    it is the sum of W_0 z_0 (random init against the data: no alignment), ΔW z_0 (alpha, the
    update against the data, Definition B.6), W_0 Δz (omega) and ΔW Δz (u) (§3.3, B.11):
    Table 2's stability constraints use exactly these three exponents. The paper's A measures
    the whole W_t against the whole z_t; while ||ΔW|| << ||W_0|| it stays near 1/2 even when
    ΔW is fully aligned (alpha = 1), so it is logged beside them, never instead of them.

    Built at step 0, it keeps for each Dense (q, k, v, o, up, down, readout):
      W_0  the weight at init: an fp32 copy of the master parameter (under FSDP, of this
           rank's shard: FSDP2 shards dim 0, the rows, so every product below is summed
           over the local rows and the sums of squares are reduced over ranks, never
           gathered);
      z_0  the layer's input on a fixed probe batch (the same tokens at every step and on
           every rank), kept in the dtype the forward produced (bf16 under autocast; q, k
           and v share one copy).
    Memory: a copy of every dense weight (fp32, 1/world of it under FSDP) plus
    tokens x fan_in per dense layer. `measure` then logs, with ΔW = W_t - W_0 and
    Δz = z_t - z_0, each as log_ratio (independent = 1/2, rank-one aligned = 1):
      log_alignment  A      W_t · z_t    (the paper's Figure 2)
      alpha                 ΔW  · z_0
      omega                 W_0 · Δz
      u                     ΔW  · Δz
    The forward multiplier n^-a_l scales W, W_0 and ΔW alike and each ratio has its matrix
    once above and once below, so it cancels in all four (it is constant during training);
    the input z already holds every earlier multiplier and the ratios are scale-free in it.
    W is the fp32 master weight, not the (bf16) copy the forward multiplies with: ΔW is
    far smaller than W early on and would drown in bf16 rounding. Δz under bf16 autocast
    carries rounding of relative size ~2^-9 of z, which pulls omega and u towards 1/2
    while ||Δz|| is that small.

    W_0 and z_0 are rebuilt, not saved: the run re-initializes the model from its seed
    before loading a checkpoint, so building the probe there gives the same W_0 and z_0;
    `fingerprint` (stored in the checkpoint) and `check` prove it on --resume.
    The model must be the plain module (not torch.compile's wrapper, not DDP's); under
    FSDP every rank builds and measures (the forward gathers), under DDP rank 0 alone.
    """

    def __init__(self, model: torch.nn.Module, batch: torch.Tensor, autocast, dist: Dist | None = None):
        self.model, self.batch, self.autocast, self.dist = model, batch, autocast, dist
        # The master parameters, taken before any forward (FSDP then holds them sharded; the module attribute
        # may later point at a gathered copy); updates are in place. z_0: q, k and v share one copy.
        self.weights = {tensor_name(n): m.weight for n, m in model.named_modules() if isinstance(m, Dense)}
        self.w0 = {n: local_tensor(w).detach().float().clone() for n, w in self.weights.items()}
        self.z0: dict[str, torch.Tensor] = {}
        copies: dict[int, tuple] = {}  # id(input) -> (the input, kept alive so that ids stay unique; its copy)

        def keep(name: str, z: torch.Tensor) -> None:  # z_0 [tokens, fan_in] in the forward's dtype
            self.z0[name] = copies.setdefault(id(z), (z, z.detach().reshape(-1, z.shape[-1]).clone()))[1]
        _run_dense(model, batch, autocast, keep)

    def _reduce(self, sums: torch.Tensor) -> list:
        return (all_sum(sums, self.dist) if self.dist is not None else sums).cpu().tolist()

    @torch.no_grad()
    def measure(self, step: int) -> dict[str, dict[str, float | None]]:
        """{layer: {log_alignment, alpha, omega, u}} now; alpha, omega and u are None at step 0 (ΔW = Δz = 0)."""
        sharded, local = {}, {}  # sums over this rank's rows of W (reduced over ranks); over the tokens

        def terms(name: str, z: torch.Tensor) -> None:
            w, w0, z0 = local_tensor(self.weights[name]).detach().float(), self.w0[name], self.z0[name]
            z = z.reshape(-1, z.shape[-1])
            dw, dz = w - w0, z.float() - z0.float()
            sharded[name] = torch.stack([_sq(z, w), _sq(w), _sq(z0, dw), _sq(dw), _sq(dz, w0), _sq(w0), _sq(dz, dw)])
            local[name] = [float(_sq(x)) for x in (z, z0, dz)]

        _run_dense(self.model, self.batch, self.autocast, terms)
        sums = self._reduce(torch.stack(list(sharded.values()))) if sharded else []
        out = {}
        for name, (wz, w, dwz0, dw, w0dz, w0, dwdz) in zip(sharded, sums):
            (z, z0, dz), n, moved = local[name], self.w0[name].shape[-1], step > 0
            out[name] = {"log_alignment": log_ratio(wz, w, z, n),  # W_t z_t: the paper's A (Figure 2)
                         "alpha": log_ratio(dwz0, dw, z0, n) if moved else None,  # ΔW z_0
                         "omega": log_ratio(w0dz, w0, dz, n) if moved else None,  # W_0 Δz
                         "u": log_ratio(dwdz, dw, dz, n) if moved else None}  # ΔW Δz
        return out

    def fingerprint(self) -> dict[str, list[float]]:
        """||W_0||^2 and ||z_0||^2 per layer, to store with a checkpoint (collective under FSDP)."""
        w = self._reduce(torch.stack([_sq(self.w0[n]) for n in self.w0]))
        return {n: [w[i], float(_sq(self.z0[n]))] for i, n in enumerate(self.w0)}

    def check(self, saved: dict | None) -> None:
        """Refuse a resume whose rebuilt W_0 / z_0 differ from the run's (another device, another init).

        Its alpha, omega, u would measure against the wrong reference. A checkpoint written
        with --align-every 0 has nothing to compare."""
        for name, (w, z) in (self.fingerprint().items() if saved else ()):
            if name not in saved or any(abs(a - b) > 1e-5 * abs(b) for a, b in zip((w, z), saved[name])):
                raise BadInput(f"--resume: the alignment probe's W_0/z_0 of {name}, rebuilt from the seed, differ from "
                               "the run's (another device or init code?); resume with --align-every 0 or start anew")


def log_alignment(model: torch.nn.Module, batch: torch.Tensor, autocast) -> dict[str, float | None]:
    """A of Definition 3.1 alone, per dense layer, on the model as it is (a probe built
    and read at once; alpha, omega, u need the reference of an AlignmentProbe)."""
    return {n: v["log_alignment"] for n, v in AlignmentProbe(model, batch, autocast).measure(0).items()}
