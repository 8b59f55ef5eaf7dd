"""core.weight_decay: conventions, timescales, the decay torch really applies, u-muP's independent decay, bad input."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleadvise.core import rule
from scaleadvise.core.prescribe import PrescribeRequest, prescribe
from scaleadvise.core.weight_decay import parse_timescale, resolve_decay
from scaleadvise.errors import UserError


def decay(**kw):
    args = dict(weight_decay=None, timescale=None, convention=None, tokens_per_step=None, base_lr=1e-3,
                vectors=False, optim="adamw")
    return resolve_decay(**{**args, **kw})


lrs = st.floats(min_value=1e-8, max_value=10.0)
lams = st.floats(min_value=0.0, max_value=0.999)


@given(lams, lrs)
def test_decay_per_step_is_lambda_in_the_independent_conventions(lam, lr):
    for conv in ("torch", "independent"):
        value = rule.weight_decay(lam, lr, conv)
        assert rule.decay_per_step(value, lr, conv) == pytest.approx(lam, rel=1e-12, abs=1e-300)
    assert rule.decay_per_step(rule.weight_decay(lam, lr, "coupled"), lr, "coupled") == pytest.approx(lr * lam)


@given(lams, st.sampled_from(["stp", "mup", "mfp"]), st.sampled_from([256, 1024, 8192]),
       st.sampled_from([("none", 8), ("completep", 32), ("depth-mup", 2)]))
def test_every_decayed_group_shrinks_by_lambda_per_step(lam, param, width, depth):
    """Whatever the group's LR (width and depth factors included), lr_l x weight_decay_l = λ."""
    name, L = depth
    pres = prescribe(PrescribeRequest(param=param, optim="adamw", width=width, base_width=256, weight_decay=lam,
                                      depth_param=name, depth=L, base_depth=8 if name != "none" else None))
    for t in pres.tensors:
        expected = lam if t.kind in ("linear", "embedding") else 0.0
        assert t.lr * t.weight_decay == pytest.approx(expected, rel=1e-12, abs=1e-300), t.name
    for v in pres.layers.values():
        assert v.lr * v.weight_decay == pytest.approx(lam, rel=1e-12, abs=1e-300)


def test_conventions_write_different_numbers_for_the_same_model():
    req = dict(param="mup", optim="adamw", width=4096, base_width=1024, base_lr=1e-2)
    by = {c: {t.name: t for t in prescribe(PrescribeRequest(**req, weight_decay=1e-4, wd_convention=c)).tensors}
          for c in ("torch", "independent", "coupled")}
    q = "blocks.0.attn.q"  # hidden: LR 1e-2 / 4
    assert by["torch"][q].weight_decay == pytest.approx(1e-4 / 2.5e-3)
    assert by["independent"][q].weight_decay == 1e-4 and by["coupled"][q].weight_decay == 1e-4
    assert by["torch"]["blocks.0.attn_norm"].weight_decay == 0.0  # norm gains: none by default
    vec = prescribe(PrescribeRequest(**req, weight_decay=1e-4, wd_vectors=True)).tensor("blocks.0.attn_norm")
    assert vec.lr * vec.weight_decay == pytest.approx(1e-4)


def test_timescales():
    """τ = 1/(η λ_torch) (Wang & Aitchison 2024): per step 1/τ; in tokens divided by tokens per step."""
    d = decay(timescale="20000")
    assert (d.value, d.timescale_steps) == (1 / 20000, 20000)
    d = decay(timescale="2e9 tokens", tokens_per_step=100_000)
    assert d.value == pytest.approx(1 / 20000) and d.to_dict()["timescale_tokens"] == pytest.approx(2e9)
    d = decay(timescale="1000steps", convention="coupled", base_lr=1e-2)
    assert d.value == pytest.approx(0.1)  # the torch coefficient whose decay at the base LR is 1/1000 per step
    assert decay(weight_decay=1e-4).timescale_steps == pytest.approx(1e4)
    assert decay(weight_decay=0.0).timescale_steps is None
    assert parse_timescale(" 5E3 Tokens ") == (5000.0, "tokens") and parse_timescale(300) == (300.0, "steps")


@pytest.mark.parametrize("kw,match", [
    (dict(timescale="0"), "wd_timescale: the timescale must be a positive number of steps"),
    (dict(timescale="-5steps"), "must be a positive number"),
    (dict(timescale="nan"), "must be a positive number"),
    (dict(timescale="inf"), "must be a positive number"),
    (dict(timescale="10 epochs"), "optional unit 'steps' or 'tokens'"),
    (dict(timescale="0.5"), "shorter than one step"),
    (dict(timescale="1e6tokens"), "needs tokens_per_step"),
    (dict(timescale="1e6tokens", tokens_per_step=0), "tokens_per_step: must be a positive integer"),
    (dict(weight_decay=float("nan")), "weight_decay: must be a number >= 0"),
    (dict(weight_decay=-1e-4), "weight_decay: must be a number >= 0"),
    (dict(weight_decay=1.5), "is a decay per step: it must be below 1"),
    (dict(weight_decay=1e-4, timescale="100"), "give one"),
    (dict(weight_decay=1e-4, convention="decoupled"), "unknown convention 'decoupled'"),
    (dict(weight_decay=1e-4, optim="adam"), "use optim adamw"),
    (dict(convention="torch"), "wd_convention: needs weight_decay or wd_timescale"),
    (dict(vectors=True), "wd_vectors: needs"),
])
def test_bad_decay_input(kw, match):
    with pytest.raises(UserError, match=match):
        decay(**kw)


def test_coupled_allows_a_torch_coefficient_above_one():
    assert decay(weight_decay=10.0, convention="coupled").value == 10.0  # e.g. mup-style wd = 10 x lr 1e-3


def test_torch_adamw_applies_exactly_the_prescribed_decay(one_torch_thread):
    """Build torch.optim.AdamW from the prescription; with zero gradients Adam's update is 0 and
    one step multiplies every weight by 1 - lr_l · weight_decay_l: by 1 - λ (or 1 for gains)."""
    torch = pytest.importorskip("torch")
    lam = 3e-3
    pres = prescribe(PrescribeRequest(param="mup", optim="adamw", width=64, base_width=16, base_lr=0.05, depth=2,
                                      base_depth=8, depth_param="completep", head_dim=16, vocab=32, context=8,
                                      weight_decay=lam, eps="per-layer"))
    params = [torch.nn.Parameter(torch.ones(2)) for _ in pres.tensors]
    opt = torch.optim.AdamW([{"params": [p], "lr": t.lr, "weight_decay": t.weight_decay, "eps": t.eps}
                             for p, t in zip(params, pres.tensors)])
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    for p, t in zip(params, pres.tensors):
        want = 1 - lam if t.kind in ("linear", "embedding") else 1.0
        assert p.detach().double().tolist() == pytest.approx([want, want], rel=1e-6), t.name


def test_matches_unit_scaling_independent_weight_decay():
    """u-muP (unit_scaling.optim.scaled_parameters, independent_weight_decay=True) writes
    weight_decay / lr per parameter, and scales a residual parameter's Adam LR by depth^-1/2
    (lr_scale_for_depth): our torch convention and our depth-mup branch LR factor from base depth 1."""
    torch = pytest.importorskip("torch")
    uu = pytest.importorskip("unit_scaling")
    from unit_scaling.optim import lr_scale_func_adam, scaled_parameters

    for depth in (1, 4, 12, 48):
        p = uu.Parameter(torch.zeros(8), mup_type="norm", mup_scaling_depth=depth)  # norm: no fan-in factor
        (group,) = scaled_parameters([p], lr_scale_func_adam, lr=2e-3, weight_decay=1e-4, independent_weight_decay=True)
        from scaleadvise.core.depth import resolve_depth
        from scaleadvise.core.optimizers import get_optimizer

        d = resolve_depth("depth-mup", depth, 1, get_optimizer("adamw"), "constant", "mup", True, "m")
        assert group["lr"] == pytest.approx(2e-3 * d.lr_factor("branch"), rel=1e-12)
        assert group["weight_decay"] == pytest.approx(rule.weight_decay(1e-4, group["lr"], "torch"), rel=1e-12)
        assert math.isclose(group["lr"] * group["weight_decay"], 1e-4, rel_tol=1e-12)
