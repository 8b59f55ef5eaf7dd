"""Adam-atan2 and Adam + parameter scaling for PyTorch (Everett et al. 2024, §4.3, C.5, B.8).

This file is bundled (docstrings cut to their first paragraph) into the training script that `scaleadvise emit-train`
writes, and that script has to run on a cluster with torch alone. So it imports only
the standard library and torch (no numpy, no scaleadvise, no relative imports), has no
``from __future__`` line (it would have to be the first statement of the bundled
script) and does nothing at import time. Annotations use ``typing`` so it also runs
on the older Pythons that torch still supports.

AdamAtan2 -- C.5 swaps Adam's ``m / (sqrt(v) + eps)`` for ``a * atan2(m, b * sqrt(v))``.
There is no epsilon, so the update does not change when every gradient is multiplied by
a constant (up to precision), and the epsilon-underflow problem of §4.3 / App. F cannot
occur. ``a = b = 1`` is the paper's choice; ``a = 4 / pi`` keeps Adam's step size when
|m| ~ sqrt(v), and in general ``a = b`` matches Adam for m << sqrt(v) while
``a = 1 / arctan(1 / b)`` matches it for |m| ~ sqrt(v) (Table C4).

AdamPS -- Adam + parameter scaling, the paper's member of the Adafactor family (§2.1,
§4.2.2, B.8, Table C2): the Adam direction times the parameter scale
``max(min_param_rms, RMS(W))``.

Per-layer epsilon (§4.3): ``eps_l = base_eps * (n / b) ** -g_l`` with g_l the gradient
exponent of layer l (Table 1). Apply it with one param group per layer type, each with
its own ``eps``; ``torch.optim.Adam``, ``torch.optim.AdamW`` and ``AdamPS`` all read
``eps`` per group (AdamAtan2 has no epsilon and needs none)::

    torch.optim.AdamW([{"params": hidden, "lr": lr_h, "eps": base_eps * (n / b) ** -g_h},
                       {"params": readout, "lr": lr_r, "eps": base_eps * (n / b) ** -g_r}])

Both optimizers keep their moments in fp32 for bf16/fp16 parameters, compute the update
in fp32 and round the result back into the parameter (there is no fp32 master copy of the
weights). ``lr`` may be a float or a 0-dim tensor: with a tensor, a schedule can change
it without torch.compile recompiling the step (in eager mode it is read once per group
and step with ``.item()``). Weight decay is decoupled as in
torch.optim.AdamW: ``p -= lr * weight_decay * p`` before the update.
"""

import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.optim import Optimizer

_Scalar = Union[float, Tensor]

# Device types with real multi-tensor (_foreach_) kernels. Elsewhere (CPU) the foreach
# ops are a C++ loop over the same per-tensor kernels, so a plain loop is as good.
_FOREACH_DEVICES = ("cuda", "xpu", "mtia")


def _state_dtype(p: Tensor) -> torch.dtype:
    """fp32 moments for 16-bit params: bf16's 8-bit mantissa loses the (1 - beta2) * g^2
    increments of v, and fp16's range underflows g^2 already for |g| < ~2e-4 (App. F)."""
    return torch.float32 if p.dtype in (torch.float16, torch.bfloat16) else p.dtype


def _value(x: Any) -> Any:
    """A Python number in eager mode (host arithmetic is cheapest there); the tensor
    itself under torch.compile, so a changing lr or step is data, not a recompile."""
    if isinstance(x, Tensor) and not torch.compiler.is_compiling():
        return x.item()
    return x


def _is_one(c: _Scalar) -> bool:
    return not isinstance(c, Tensor) and c == 1.0


def _bias_corrections(step: Tensor, beta1: float, beta2: float) -> Tuple[_Scalar, _Scalar]:
    t = _value(step)
    return 1.0 - beta1**t, 1.0 - beta2**t


def _default_foreach(params: List[Tensor]) -> bool:
    return not torch.jit.is_scripting() and all(p.device.type in _FOREACH_DEVICES for p in params)


# On CPU a foreach op is a loop over per-tensor kernels: running the whole update on a few
# MB of tensors at a time keeps its temporaries in cache instead of streaming every list
# through DRAM once per op. 2^20 elements: five 4 MB lists fit a 32 MB L3. On GPT-2 small
# (2-core EPYC) it took AdamAtan2(foreach) from 1.17x to 0.84-0.99x of AdamW(foreach=True).
_CPU_BATCH_NUMEL = 1 << 20


def _cpu_batches(lists: Tuple[List[Tensor], ...]) -> List[Tuple[List[Tensor], ...]]:
    """The parallel lists cut into runs of tensors of at most _CPU_BATCH_NUMEL elements
    (a larger tensor is a run of its own)."""
    cuts, size = [0], 0
    for i, p in enumerate(lists[0]):
        if size and size + p.numel() > _CPU_BATCH_NUMEL:
            cuts.append(i)
            size = 0
        size += p.numel()
    cuts.append(len(lists[0]))
    return [tuple(seq[lo:hi] for seq in lists) for lo, hi in zip(cuts, cuts[1:])]


# ---------------------------------------------------------------------------------------
# Pieces shared by both optimizers: moments, fp32 working copies, decoupled decay.


def _working(params: List[Tensor], like: List[Tensor]) -> List[Tensor]:
    """The params themselves, or state-dtype (fp32) copies of low-precision ones."""
    return [p if p.dtype == s.dtype else p.to(s.dtype) for p, s in zip(params, like)]


def _write_back(params: List[Tensor], work: List[Tensor]) -> None:
    for p, w in zip(params, work):
        if w is not p:
            p.copy_(w)


def _moments_foreach(
    grads: List[Tensor], exp_avgs: List[Tensor], exp_avg_sqs: List[Tensor], steps: List[Tensor],
    beta1: float, beta2: float, maximize: bool,
) -> None:
    grads = [g if g.dtype == m.dtype else g.to(m.dtype) for g, m in zip(grads, exp_avgs)]
    if maximize:
        grads = torch._foreach_neg(grads)
    torch._foreach_add_(steps, 1.0)
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1.0 - beta2)


def _moments(
    grad: Tensor, m: Tensor, v: Tensor, step: Tensor, beta1: float, beta2: float, maximize: bool
) -> None:
    g = grad.to(m.dtype)
    if maximize:
        g = g.neg()
    step += 1.0
    m.lerp_(g, 1.0 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)


def _decay_foreach(work: List[Tensor], lr: _Scalar, weight_decay: float) -> None:
    if weight_decay != 0.0:
        torch._foreach_mul_(work, 1.0 - lr * weight_decay)


def _add_foreach(work: List[Tensor], updates: List[Tensor], step_size: _Scalar) -> None:
    """work += step_size * updates; updates may be overwritten."""
    if isinstance(step_size, Tensor):
        torch._foreach_mul_(updates, step_size)
        torch._foreach_add_(work, updates)
    else:
        torch._foreach_add_(work, updates, alpha=step_size)


def _add(w: Tensor, update: Tensor, step_size: _Scalar) -> None:
    if isinstance(step_size, Tensor):
        w.add_(update.mul_(step_size))
    else:
        w.add_(update, alpha=step_size)


# ---------------------------------------------------------------------------------------
# Adam-atan2 (C.5)


def _atan2_den_scale(step: Tensor, beta1: float, beta2: float, b: float) -> _Scalar:
    """c_t with atan2(m_hat, b * sqrt(v_hat)) == atan2(m, c_t * sqrt(v)).

    m_hat = m / bc1 and v_hat = v / bc2, both corrected before the atan2 as in optax's
    scale_by_adam, whose update line C.5 replaces. atan2(x, y) depends only on x / y, so
    scaling x and y by the *same* k > 0 changes nothing and both corrections fold into
    y exactly; scaling them *separately* does change it, so unlike Adam's
    m / sqrt(v) * sqrt(bc2) / bc1 the corrections cannot be moved into the step size,
    and dropping either one changes the early updates (atan2 is not homogeneous)."""
    bc1, bc2 = _bias_corrections(step, beta1, beta2)
    return b * bc1 / bc2**0.5


def _adam_atan2_foreach(
    params: List[Tensor], grads: List[Tensor], exp_avgs: List[Tensor], exp_avg_sqs: List[Tensor],
    steps: List[Tensor], *, lr: _Scalar, beta1: float, beta2: float, weight_decay: float,
    maximize: bool, a: float, b: float,
) -> None:
    _moments_foreach(grads, exp_avgs, exp_avg_sqs, steps, beta1, beta2, maximize)
    updates = torch._foreach_sqrt(exp_avg_sqs)
    scales = [_atan2_den_scale(s, beta1, beta2, b) for s in steps]
    if not all(_is_one(c) for c in scales):  # c_t -> b: exactly 1.0 late in training when b = 1
        torch._foreach_mul_(updates, scales)
    # No torch._foreach_atan2 in torch (2.13); atan2 writes into the denominator buffer.
    for m, u in zip(exp_avgs, updates):
        torch.atan2(m, u, out=u)
    work = _working(params, exp_avgs)
    _decay_foreach(work, lr, weight_decay)
    _add_foreach(work, updates, -lr * a)
    _write_back(params, work)


def _adam_atan2_single(
    params: List[Tensor], grads: List[Tensor], exp_avgs: List[Tensor], exp_avg_sqs: List[Tensor],
    steps: List[Tensor], *, lr: _Scalar, beta1: float, beta2: float, weight_decay: float,
    maximize: bool, a: float, b: float,
) -> None:
    for p, grad, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        _moments(grad, m, v, step, beta1, beta2, maximize)
        u = v.sqrt()
        c = _atan2_den_scale(step, beta1, beta2, b)
        if not _is_one(c):
            u.mul_(c)
        torch.atan2(m, u, out=u)
        w = p if p.dtype == m.dtype else p.to(m.dtype)
        if weight_decay != 0.0:
            w.mul_(1.0 - lr * weight_decay)
        _add(w, u, -lr * a)
        if w is not p:
            p.copy_(w)


# ---------------------------------------------------------------------------------------
# Adam + parameter scaling (B.8 "Adafactor" rule without the factoring)


def _param_scales_foreach(work: List[Tensor], min_param_rms: float) -> List[Tensor]:
    """max(min_param_rms, RMS(W)) per tensor, as 0-dim tensors (no host sync on GPU)."""
    scales = list(torch._foreach_norm(work))
    torch._foreach_mul_(scales, [1.0 / math.sqrt(max(w.numel(), 1)) for w in work])
    torch._foreach_clamp_min_(scales, min_param_rms)
    return scales


def _param_scale(w: Tensor, min_param_rms: float) -> Tensor:
    return (w.norm() / math.sqrt(max(w.numel(), 1))).clamp_min(min_param_rms)


def _adam_ps_foreach(
    params: List[Tensor], grads: List[Tensor], exp_avgs: List[Tensor], exp_avg_sqs: List[Tensor],
    steps: List[Tensor], *, lr: _Scalar, beta1: float, beta2: float, weight_decay: float,
    maximize: bool, eps: float, min_param_rms: float,
) -> None:
    work = _working(params, exp_avgs)
    # The scale is the RMS of the parameters the step starts from (Adafactor's RMS(X_{t-1})),
    # taken before weight decay touches them.
    scales = _param_scales_foreach(work, min_param_rms)
    _moments_foreach(grads, exp_avgs, exp_avg_sqs, steps, beta1, beta2, maximize)
    bcs = [_bias_corrections(s, beta1, beta2) for s in steps]
    # s * m_hat / (sqrt(v_hat) + eps) == m / den with
    # den = (sqrt(v) + eps * sqrt(bc2)) * bc1 / (sqrt(bc2) * s): the same four passes as Adam.
    den = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(den, [eps * bc2**0.5 for _, bc2 in bcs])
    torch._foreach_reciprocal_(scales)
    torch._foreach_mul_(scales, [bc1 / bc2**0.5 for bc1, bc2 in bcs])
    torch._foreach_mul_(den, scales)
    _decay_foreach(work, lr, weight_decay)
    if isinstance(lr, Tensor):
        updates = torch._foreach_div(exp_avgs, den)
        _add_foreach(work, updates, -lr)
    else:
        torch._foreach_addcdiv_(work, exp_avgs, den, value=-lr)
    _write_back(params, work)


def _adam_ps_single(
    params: List[Tensor], grads: List[Tensor], exp_avgs: List[Tensor], exp_avg_sqs: List[Tensor],
    steps: List[Tensor], *, lr: _Scalar, beta1: float, beta2: float, weight_decay: float,
    maximize: bool, eps: float, min_param_rms: float,
) -> None:
    for p, grad, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        w = p if p.dtype == m.dtype else p.to(m.dtype)
        s = _param_scale(w, min_param_rms)
        _moments(grad, m, v, step, beta1, beta2, maximize)
        bc1, bc2 = _bias_corrections(step, beta1, beta2)
        den = v.sqrt().add_(eps * bc2**0.5).mul_(bc1 / bc2**0.5 / s)
        if weight_decay != 0.0:
            w.mul_(1.0 - lr * weight_decay)
        if isinstance(lr, Tensor):
            _add(w, m / den, -lr)
        else:
            w.addcdiv_(m, den, value=-lr)
        if w is not p:
            p.copy_(w)


# ---------------------------------------------------------------------------------------
# Optimizer classes


_Kernel = Callable[..., None]


class _TwoMomentOptimizer(Optimizer):
    """Bookkeeping shared by AdamAtan2 and AdamPS: lazily created fp32-or-wider moments
    and a float32 step count per parameter (the layout of torch.optim.Adam's state),
    grouping by device, foreach/plain dispatch and dtype-preserving state_dict loading."""

    _foreach_kernel: _Kernel
    _single_kernel: _Kernel
    _group_keys: Tuple[str, ...] = ()  # per-group hyperparameters passed to the kernels

    def __init__(self, params: Iterable[Any], defaults: Dict[str, Any]) -> None:
        lr, (beta1, beta2), wd = defaults["lr"], defaults["betas"], defaults["weight_decay"]
        if isinstance(lr, Tensor) and lr.numel() != 1:
            shape = tuple(lr.shape)
            raise ValueError(f"lr: a tensor learning rate needs one element, got shape {shape}")
        if not float(lr) >= 0.0:
            raise ValueError(f"lr: must be >= 0, got {float(lr)}")
        for name, beta in (("betas[0]", beta1), ("betas[1]", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {beta}")
        if not wd >= 0.0:
            raise ValueError(f"weight_decay: must be >= 0, got {wd}")
        super().__init__(params, defaults)

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)

    def _gather(self, group: Dict[str, Any]) -> Dict[torch.device, Tuple[List[Tensor], ...]]:
        """Per device: params with a gradient, their grads, exp_avgs, exp_avg_sqs, steps."""
        lists: Dict[torch.device, Tuple[List[Tensor], ...]] = {}
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            if torch.is_complex(p):
                raise RuntimeError(f"{type(self).__name__} does not support complex parameters")
            state = self.state[p]
            if len(state) == 0:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                fmt, dtype = torch.preserve_format, _state_dtype(p)
                state["exp_avg"] = torch.zeros_like(p, dtype=dtype, memory_format=fmt)
                state["exp_avg_sq"] = torch.zeros_like(p, dtype=dtype, memory_format=fmt)
            entry = lists.setdefault(p.device, ([], [], [], [], []))
            tensors = (p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])
            for seq, t in zip(entry, tensors):
                seq.append(t)
        return lists

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        """One update of every parameter that has a gradient; returns closure() if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            hyper = {key: group[key] for key in self._group_keys}
            for device, lists in self._gather(group).items():
                foreach = group["foreach"]
                if foreach is None:
                    foreach = _default_foreach(lists[0])
                batches = [lists]
                if foreach and device.type == "cpu" and not torch.compiler.is_compiling():
                    batches = _cpu_batches(lists)
                kernel = self._foreach_kernel if foreach else self._single_kernel
                for params, grads, exp_avgs, exp_avg_sqs, steps in batches:
                    kernel(
                        params, grads, exp_avgs, exp_avg_sqs, steps, lr=_value(group["lr"]),
                        beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                        maximize=group["maximize"], **hyper,
                    )
        return loss

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """As Optimizer.load_state_dict, but moments keep their wide dtype: the base class
        casts every floating state tensor to its parameter's dtype, which would round the
        fp32 moments of bf16 parameters to bf16."""
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        super().load_state_dict(state_dict)
        params = [p for g in self.param_groups for p in g["params"]]
        for saved_id, p in zip(saved_ids, params):
            saved = state_dict["state"].get(saved_id, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if isinstance(saved.get(key), Tensor):
                    moment = saved[key].to(device=p.device, dtype=_state_dtype(p), copy=True)
                    self.state[p][key] = moment


class AdamAtan2(_TwoMomentOptimizer):
    r"""Adam-atan2 (Everett et al. 2024, C.5): Adam with ``m / (sqrt(v) + eps)`` replaced by
    ``a * atan2(m_hat, b * sqrt(v_hat))``. No epsilon: scale-invariant in the gradients.

    Per step t, for each parameter p with gradient g::

        m = beta1 * m + (1 - beta1) * g;          m_hat = m / (1 - beta1**t)
        v = beta2 * v + (1 - beta2) * g**2;       v_hat = v / (1 - beta2**t)
        p = p - lr * weight_decay * p                       (decoupled, as AdamW)
        p = p - lr * a * atan2(m_hat, b * sqrt(v_hat))

    Bias correction is applied to m and v *before* the atan2 (as in optax's scale_by_adam,
    the function C.5 modifies). atan2 is invariant only to a common scaling of both
    arguments, so the two corrections cannot be folded into the learning rate the way
    Adam implementations do; this implementation folds them both into the second
    argument, which is exact.

    Args:
        params: parameters or param groups (every key below can be set per group).
        lr: learning rate, a float or a 0-dim tensor (no recompiles under torch.compile).
        betas: (beta1, beta2); defaults are the paper's (Table C2).
        weight_decay: decoupled decay coefficient, multiplied by lr as in torch AdamW.
        a, b: a = b = 1 in the paper. b > 1 widens the small-angle region; a = b matches
            Adam when |m| << sqrt(v), a = 1 / arctan(1 / b) (4 / pi for b = 1) when
            |m| ~ sqrt(v) (Table C4). a only rescales the effective learning rate.
        foreach: multi-tensor torch._foreach_* path (True), per-tensor loop (False), or
            None: foreach when all params of a group are on CUDA/XPU-like devices.
        maximize: ascend instead of descend.
    """

    _foreach_kernel = staticmethod(_adam_atan2_foreach)
    _single_kernel = staticmethod(_adam_atan2_single)
    _group_keys = ("a", "b")

    def __init__(
        self, params: Iterable[Any], lr: _Scalar = 1e-3, betas: Tuple[float, float] = (0.9, 0.98),
        weight_decay: float = 0.0, a: float = 1.0, b: float = 1.0, foreach: Optional[bool] = None,
        maximize: bool = False,
    ) -> None:
        if not a > 0.0:
            raise ValueError(f"a: must be > 0, got {a}")
        if not b > 0.0:
            raise ValueError(f"b: must be > 0, got {b}")
        defaults = dict(
            lr=lr, betas=betas, weight_decay=weight_decay, a=a, b=b, foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)


class AdamPS(_TwoMomentOptimizer):
    r"""Adam + parameter scaling (Everett et al. 2024, §4.2.2, B.8, Table C2): the Adam
    update multiplied by the scale of the parameter tensor, which puts it in the
    Adafactor width-scaling family (update ~ lr * ||W||, B.9).

    Per step t, for each parameter tensor W with gradient g::

        s = max(min_param_rms, RMS(W))        RMS(W) = sqrt(mean(W**2)), before this step
        m, v, m_hat, v_hat as in Adam (bias-corrected)
        W = W - lr * weight_decay * W                        (decoupled, as AdamW)
        W = W - lr * s * m_hat / (sqrt(v_hat) + eps)

    The scale is Adafactor's (Shazeer & Stern 2018, Alg. 4: max(eps2, RMS(X_{t-1})),
    eps2 = 1e-3; optax.scale_by_param_block_rms(min_scale=1e-3)): the RMS of the whole
    tensor, clamped below so that zero-initialised tensors (biases) can move at all. It
    multiplies Adam's direction and nothing else, so "Adam + PS differs from Adam only by
    the parameter scaling" (C.3).

    Args:
        params, lr, betas, weight_decay, foreach, maximize: as for AdamAtan2.
        eps: Adam's epsilon, per group: pass one group per layer with
            eps_l = base_eps * (n / b) ** -g_l for per-layer epsilon (§4.3).
        min_param_rms: Adafactor's eps2, the floor of the parameter scale.
    """

    _foreach_kernel = staticmethod(_adam_ps_foreach)
    _single_kernel = staticmethod(_adam_ps_single)
    _group_keys = ("eps", "min_param_rms")

    def __init__(
        self, params: Iterable[Any], lr: _Scalar = 1e-3, betas: Tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-9, weight_decay: float = 0.0, min_param_rms: float = 1e-3,
        foreach: Optional[bool] = None, maximize: bool = False,
    ) -> None:
        if not eps >= 0.0:
            raise ValueError(f"eps: must be >= 0, got {eps}")
        if not min_param_rms > 0.0:  # a zero floor would freeze zero-initialised tensors
            raise ValueError(f"min_param_rms: must be > 0, got {min_param_rms}")
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, min_param_rms=min_param_rms,
            foreach=foreach, maximize=maximize,
        )
        super().__init__(params, defaults)
