"""Constants that make two abc-equivalent parameterizations the same network at one width.

The abc-symmetry (§3.2, B.2; ``core.symmetry``) says which exponents are equivalent; this
module turns two prescriptions into the constants (γ per layer type, init std and epsilon
per tensor) that make the target train exactly like the source (``scaleadvise equiv
--width``), and says where one LR per layer type cannot do it.
"""

from scaleadvise.core.classify import LAYER_TYPES
from scaleadvise.core.parameterizations import NAMES, Parameterization
from scaleadvise.core.prescribe import PrescribeRequest, prescribe


def equivalent_constants(src_param: str, src_constants: str, dst_param: Parameterization, k: float,
                         common: dict) -> tuple[dict, dict]:
    """The target's γ and init stds at one width that make it the source's network.

    abc-symmetry (§3.2) per tensor: W = m·w, so multiplier × init std is the init of W
    and the raw gradient is m × dL/dW. Adam's update is invariant to the gradient's
    scale, so ΔW = m·lr·(direction) needs m·lr fixed; SGD's ΔW = m²·lr·dL/dW needs
    m²·lr; Adafactor/Adam+PS scale by RMS(w) ∝ 1/m, so lr itself (k = 2, 1, 0).
    Both prescriptions come from ``prescribe`` (never re-derived here); the target's
    γ per layer type is set on the layer's representative tensor (prescribe's
    ``layers[t]``), and tensors whose own multiplier ratio differs from it (fan-in
    n_t ≠ n, e.g. NanoDO's mlp.down with fan-in 4n) are reported with the LR factor
    one LR per layer type cannot give them. Adam's epsilon is additive to √v ∝ m,
    so the equivalent epsilon is the source's times m_dst / m_src per tensor (§4.3).
    """
    src = prescribe(PrescribeRequest(param=src_param, constants=src_constants, **common))
    dst = prescribe(PrescribeRequest(param=dst_param.name, custom=None if dst_param.name in NAMES else dst_param,
                                     constants="default", **common))
    ratio = common["width"] / common["base_width"]
    gamma, layers = {}, {}
    for t in LAYER_TYPES:
        ls, ld = src.layers[t], dst.layers[t]
        lr_needed = ls.lr * (ls.multiplier / ld.multiplier) ** k
        gamma[t] = lr_needed / (dst.base_lr * ratio ** -ld.c)
        theta = ld.a - ls.a
        layers[t] = {"theta": theta, "gamma_from": ls.gamma, "gamma_to": gamma[t],
                     "gamma_ratio": gamma[t] / ls.gamma, "lr_from": ls.lr, "lr_to": lr_needed,
                     # γ is width-independent when c moved by exactly kθ (then γ_to = γ_from·b^(kθ))
                     "width_independent": abs(ld.c - (ls.c - k * theta)) < 1e-9}
    doc = dst.to_dict()  # the target document, ready for train.py --prescription
    tensors, lr_off, init_off = [], [], []
    for ts, td, out in zip(src.tensors, dst.tensors, doc.get("tensors", [])):
        t = ts.layer_type
        if t == "fixed":  # width-independent on both sides: nothing moves
            continue
        m = ts.multiplier / td.multiplier
        lr_to = td.lr * gamma[t] / dst.layers[t].gamma
        lr_factor = ts.lr * m ** k / lr_to
        std_to = ts.init_std * m
        init_factor = std_to / td.init_std if td.init_std else 1.0
        eps_to = None if ts.eps is None else ts.eps / m
        row = {"name": ts.name, "layer_type": t, "multiplier_ratio": 1.0 / m, "lr_to": lr_to,
               "lr_factor": lr_factor, "init_std_to": std_to, "init_factor": init_factor,
               "eps_from": ts.eps, "eps_to": eps_to}
        tensors.append(row)
        if abs(lr_factor - 1.0) > 1e-9:
            lr_off.append(row["name"])
        if abs(init_factor - 1.0) > 1e-9:
            init_off.append(row["name"])
        out["lr"], out["init_std"] = lr_to, std_to
        out["sigma"] = std_to * td.scale_dim ** dst.layers[t].b  # the script rebuilds std from sigma
    for t in LAYER_TYPES:
        ld = doc["layers"][t]
        ld["lr"] *= gamma[t] / ld["gamma"]
        ld["gamma"] = gamma[t]
        ld["init_std"] = src.layers[t].init_std * src.layers[t].multiplier / ld["multiplier"]
    doc["constants"] = gamma
    doc["constants_source"] = f"scaleadvise equiv: the same network as {src.parameterization} ({src.constants_source})"
    eps_note = None
    if src.eps_mode != "none":
        eps_note = ("Adam's epsilon is added to √v, which scales with the multiplier: the same network needs "
                    "epsilon × m_to/m_from per tensor (eps_to); one epsilon for both breaks the equivalence "
                    "once it is comparable to √v (§4.3)")
    summary = {"width": common["width"], "base_width": common["base_width"], "base_lr": common["base_lr"],
               "model": src.model.name, "constants_from": src.constants, "constants_to": gamma,
               "layers": layers, "exact": not lr_off and not init_off,
               "lr_not_expressible": lr_off, "init_changed": init_off, "eps_note": eps_note, "tensors": tensors}
    return summary, doc
