"""The per-tensor rule: multiplier, init std, learning rate and epsilon at a width.

    multiplier = n_t^-a                                   (§2.1: the forward multiplier)
    init std   = sigma · n_t^-b                           (§2.1, C.2)
    lr         = base_lr · gamma · (n / base_width)^-c    (§4.2.1, C.4)
    eps        = base_eps · (n / base_width)^-e           (§4.3: e = g per layer, e = 0 constant)

and, with a depth parameterization (``core.depth``), every residual branch's output times
(L / L0)^-alpha and a tensor's LR and epsilon times (L / L0)^x for its position's exponent x;
with weight decay (``core.weight_decay``), each group's ``weight_decay`` in the optimizer's
convention: λ / lr_l for torch (which multiplies it by the group LR), λ as is otherwise.

n is the model width; n_t is the tensor's own width-scaling dimension: its fan-in for
hidden and readout matrices (NanoDO's mlp.down has n_t = 4n), its fan-out for
embedding-type tensors (tables, norm gains, biases), whose fan-in does not grow. sigma is
the width-independent factor of the init std (0.01 for embedding tables with b = 0, C.2;
1 otherwise; chosen by ``core.prescribe``). "fixed" tensors (no dimension grows) keep
n_t = 1, base_lr and the base epsilon.

This is the one home of the rule: ``prescribe`` computes every number with it, and the
training script that ``emit-train`` writes bundles this file and evaluates it at
the width it trains. So it imports nothing but the standard library, has no ``from
__future__`` line, and does nothing at import time.
"""

from typing import Optional, Sequence, Tuple


def fans(kind: str, shape: Sequence[int]) -> Tuple[int, int]:
    """(fan_in, fan_out) of a tensor by its layout.

    linear     [fan_out, fan_in, *kernel]   (torch.nn.Linear / ConvNd): fan_in counts the kernel
    embedding  [rows, dim]                  a lookup is a one-hot matmul: fan_in = rows
    norm, bias [dim]                        a weight on a constant input: fan_in = 1
    """
    if kind == "embedding":
        return int(shape[0]), int(shape[1])
    if kind == "linear" and len(shape) >= 2:
        fan_in = 1
        for s in shape[1:]:
            fan_in *= int(s)
        return fan_in, int(shape[0])
    return 1, int(shape[0]) if len(shape) else 1


def scale_dim(layer_type: str, fan_in: int, fan_out: int) -> int:
    """n_t: the dimension a tensor's exponents a and b apply to."""
    if layer_type in ("hidden", "readout"):
        return fan_in
    return 1 if layer_type == "fixed" else fan_out


def multiplier(a: float, n_t: int) -> float:
    return float(n_t) ** -a


def init_std(sigma: float, b: float, n_t: int) -> float:
    return sigma * float(n_t) ** -b


def learning_rate(base_lr: float, gamma: float, c: float, width: int, base_width: int) -> float:
    return base_lr * gamma * (width / base_width) ** -c


def epsilon(base_eps: Optional[float], e: Optional[float], width: int, base_width: int) -> Optional[float]:
    """None for an optimizer without epsilon; e = 0 for a constant epsilon."""
    if base_eps is None or e is None:
        return None
    return base_eps * (width / base_width) ** -e


def depth_factor(exponent: float, depth: int, base_depth: int) -> float:
    """(L / L0)^exponent: a depth factor of ``core.depth`` at depth L from base depth L0."""
    return (depth / base_depth) ** exponent


def weight_decay(lam: float, lr: float, convention: str) -> float:
    """A group's ``weight_decay`` value. "torch": torch's AdamW/SGD multiply it by the group
    LR, so λ / lr gives a decay of λ per step; "independent" (applied as is) and "coupled"
    (λ is torch's coefficient, the same in every group): λ."""
    return lam / lr if convention == "torch" else lam


def decay_per_step(value: float, lr: float, convention: str) -> float:
    """The fraction a weight shrinks by per step, given its group's ``weight_decay`` value."""
    return value if convention == "independent" else lr * value
