"""Cross-check against the public CompleteP reference (EleutherAI nanoGPT-mup, branch ``completep``).

Its rules are re-derived here from reading its ``model.py`` (cited by line), not imported:

    residual_scaling = 1 / depth_multiplier ** depth_alpha_exp                  line 113
    x = x + residual_scaling * attn(ln_1(x)); x = x + residual_scaling * mlp(ln_2(x))   117-118
    hidden (c_attn, c_fc, c_proj) init std = init_std / sqrt(mup_width_multiplier)     167-175
    input x *= mup_input_alpha (a constant); output x *= mup_output_alpha / m_w         215, 226
    lm_head tied to wte                                                                 162
    configure_optimizers (mup + depth_alpha_enabled), groups by name                   318-362:
        wte, wpe                    lr_scale 1                       weight_decay wd
        .ln_ (not ln_f)             lr_scale m_d^(alpha-1)           0
        c_attn|c_fc|c_proj .weight  lr_scale m_w^-1 m_d^(alpha-1)    wd · m_w
        c_attn|c_fc|c_proj .bias    lr_scale m_d^(alpha-1)           0
        ln_f                        lr_scale 1                       0
    adam_eps *= m_w^-1 · m_d^-alpha  (one epsilon for every group)                      335
    torch.optim.AdamW(groups, lr=learning_rate, eps=adam_eps)                          409

Its muP is, in the paper's abc terms, a = (0, 0, 1), b = (0, 1/2, 0) (embedding, hidden,
readout): ``--param custom --a 0,0,1 --b 0,0.5,0`` with AdamW and per-layer epsilon, whose
width exponents the theory derives as c = (0, 1, 0) and g = (1, 1, 1), the reference's m_w
factors. Its decay per step on the embedding is lr · wd, so λ = base_lr · wd in our torch
convention. Where we differ, by design and asserted exactly:
* epsilon on the trunk (embeddings, final norm, readout): the reference's single epsilon
  shrinks by m_d^-alpha; ours follows each tensor's gradient scale, which on the trunk carries
  no branch multiplier (Mlodozeniec et al. 2025): ours = reference x m_d^alpha there.
* decay on branch matrices at alpha = 1/2: the reference keeps torch's coefficient free of
  depth, so its decay per step follows the branch LR's m_d^(alpha-1); ours keeps λ per step
  (core/weight_decay.py): ours = reference x m_d^(1-alpha) (equal at alpha = 1, CompleteP).
"""

import pytest

from scaleadvise.core.prescribe import PrescribeRequest, prescribe

BASE_WIDTH, BASE_DEPTH, BASE_LR, BASE_EPS, WD = 256, 4, 6e-3, 1e-8, 0.1


def reference_group(name: str, m_w: float, m_d: float, alpha: float) -> tuple[float, float]:
    """(lr_scale, weight_decay) of a reference parameter name (model.py 318-362, re-derived)."""
    depth_lr = m_d ** (alpha - 1)  # line 331
    width_lr = 1 / m_w  # line 332
    if name in ("transformer.wte.weight", "transformer.wpe.weight"):
        return 1.0, WD
    if ".ln_" in name and ".ln_f." not in name:
        return depth_lr, 0.0
    if name.endswith(("c_attn.weight", "c_fc.weight", "c_proj.weight")):
        return width_lr * depth_lr, WD / width_lr
    if name.endswith(("c_attn.bias", "c_fc.bias", "c_proj.bias")):
        return depth_lr, 0.0
    if ".ln_f." in name:
        return 1.0, 0.0
    raise AssertionError(f"the reference has no rule for {name}")


def reference_name(ours: str) -> str:
    """Our gpt2 preset's tensor name -> the reference's parameter name (lm_head is tied to wte)."""
    if ours == "lm_head":
        return "transformer.wte.weight"
    return "transformer." + (ours if ours.endswith(".bias") else ours + ".weight")


def ours(m_w: float, m_d: float, name: str):
    return prescribe(PrescribeRequest(
        param="custom", custom=_custom(), optim="adamw", width=int(BASE_WIDTH * m_w), base_width=BASE_WIDTH,
        base_lr=BASE_LR, eps="per-layer", base_eps=BASE_EPS, model="gpt2", depth=int(BASE_DEPTH * m_d),
        base_depth=BASE_DEPTH, depth_param=name, weight_decay=BASE_LR * WD, wd_convention="torch"))


def _custom():
    from scaleadvise.core.parameterizations import custom_parameterization

    return custom_parameterization({"embedding": 0, "hidden": 0, "readout": 1},
                                   {"embedding": 0, "hidden": 0.5, "readout": 0}, "linear", name="nanogpt-mup")


MULTIPLIERS = [(1, 1), (4, 4), (2, 8), (8, 0.5), (1.5, 1.5), (0.5, 3)]


@pytest.mark.parametrize("name,alpha", [("completep", 1.0), ("depth-mup", 0.5)])
@pytest.mark.parametrize("m_w,m_d", MULTIPLIERS)
def test_group_settings_match_the_reference(name, alpha, m_w, m_d):
    pres = ours(m_w, m_d, name)
    assert pres.residual_multiplier == pytest.approx(1 / m_d ** alpha, rel=1e-12)  # line 113
    ref_eps = m_w ** -1 * m_d ** -alpha  # line 335
    for t in pres.tensors:
        lr_scale, ref_wd = reference_group(reference_name(t.name), m_w, m_d, alpha)
        assert t.lr / BASE_LR == pytest.approx(lr_scale, rel=1e-12), t.name
        if t.residual:
            assert t.eps / BASE_EPS == pytest.approx(ref_eps, rel=1e-12), t.name
            decayed = t.kind in ("linear", "embedding")
            assert t.weight_decay == pytest.approx(ref_wd * (m_d ** (1 - alpha) if decayed else 1), rel=1e-12), t.name
        else:  # the trunk: Mlodozeniec et al.'s epsilon; the same decay
            assert t.eps / BASE_EPS == pytest.approx(ref_eps * m_d ** alpha, rel=1e-12), t.name
            assert t.weight_decay == pytest.approx(ref_wd, rel=1e-12), t.name
    assert len(pres.tensors) == 5 + 12 * int(BASE_DEPTH * m_d)  # every tensor was checked (wte wpe ln_f(+bias) lm_head)


@pytest.mark.parametrize("m_w,m_d", MULTIPLIERS)
def test_init_has_width_but_no_depth_factor(m_w, m_d):
    """model.py 167-175: hidden std init_std / sqrt(m_w), nothing from depth; embeddings constant."""
    import re

    base = {t.name: t for t in ours(1, 1, "completep").tensors}
    for t in ours(m_w, m_d, "completep").tensors:
        b = base[re.sub(r"^h\.\d+\.", "h.0.", t.name)]  # the same tensor of the base model's first block
        if t.layer_type == "hidden":
            assert t.init_std / b.init_std == pytest.approx(m_w ** -0.5, rel=1e-12), t.name
        elif t.kind == "embedding":
            assert t.init_std == b.init_std


def test_the_two_differences_vanish_where_they_should():
    """At the base depth the trunk epsilon agrees with the reference; at alpha = 1 the decay does."""
    pres = ours(4, 1, "depth-mup")
    assert all(t.eps / BASE_EPS == pytest.approx(0.25) for t in pres.tensors)
    pres = ours(4, 8, "completep")
    for t in pres.tensors:
        assert t.weight_decay == pytest.approx(reference_group(reference_name(t.name), 4, 8, 1.0)[1])
