"""Property tests (hypothesis) for the invariants the theory promises."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleadvise.core.parameterizations import get_parameterization
from scaleadvise.core.prescribe import PrescribeRequest, prescribe
from scaleadvise.core.symmetry import abc_shift
from scaleadvise.core.alignment import Alignment
from scaleadvise.core.classify import LAYER_TYPES
from scaleadvise.core.theory import evaluate, max_stable_lr_exponents

halves = st.integers(-4, 4).map(lambda k: k / 2)
exps = st.fixed_dictionaries({t: halves for t in LAYER_TYPES})
unit = st.floats(0.0, 1.0, allow_nan=False).map(lambda x: round(x, 3))
alignments = st.builds(Alignment, alpha=unit, omega=unit, u=unit, omega_readout=unit)
optims = st.sampled_from(["sgd", "adam", "adafactor"])
params = st.sampled_from(["stp", "ntk", "mup", "mfp", "umup"])


@settings(max_examples=300, deadline=None)
@given(a=exps, b=exps, c=exps, theta=exps, optim=optims, al=alignments)
def test_abc_shift_never_changes_verdicts(a, b, c, theta, optim, al):
    """§3.2: a += θ, b -= θ, c -= kθ leaves every constraint value unchanged."""
    v0 = evaluate(a, b, c, optim, al)
    v1 = evaluate(*abc_shift(a, b, c, theta, optim), optim, al)
    assert (v0.stable, v0.nontrivial, v0.feature_learning) == (v1.stable, v1.nontrivial, v1.feature_learning)
    for k0, k1 in zip(v0.constraints, v1.constraints):
        if k0.name != "parameter-scaling growth":  # c >= 0 is in c itself, unchanged for Adafactor (k = 0)
            assert k0.value == pytest.approx(k1.value, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(param=params, optim=optims, theta=exps, al=alignments)
def test_max_stable_lr_moves_with_the_shift(param, optim, theta, al):
    """The solver commutes with the symmetry: solve-then-shift == shift-then-solve."""
    p = get_parameterization(param)
    s0 = max_stable_lr_exponents(p.a, p.b, optim, al)
    a1, b1, c1 = abc_shift(p.a, p.b, s0.c, theta, optim)
    s1 = max_stable_lr_exponents(a1, b1, optim, al)
    assert s1.c == pytest.approx(c1, abs=1e-8)
    assert s1.stable == s0.stable


@settings(max_examples=200, deadline=None)
@given(param=params, optim=optims, lo=unit, hi=unit, omega=st.sampled_from([0.0, 0.25, 0.5]))
def test_c_and_g_monotone_in_alpha(param, optim, lo, hi, omega):
    """More alignment never allows a larger LR (c non-decreasing) or larger gradients."""
    lo, hi = min(lo, hi), max(lo, hi)
    p = get_parameterization(param)
    s_lo = max_stable_lr_exponents(p.a, p.b, optim, Alignment(lo, omega, lo))
    s_hi = max_stable_lr_exponents(p.a, p.b, optim, Alignment(hi, omega, hi))
    for t in LAYER_TYPES:
        assert s_hi.c[t] >= s_lo.c[t] - 1e-9
        assert s_hi.g_train[t] >= s_lo.g_train[t] - 1e-9


@settings(max_examples=60, deadline=None)
@given(param=params, optim=st.sampled_from(["sgd", "adam", "adamw", "adam-atan2", "adafactor", "adam-ps"]),
       width=st.sampled_from([128, 256, 1024, 4096]), base_lr=st.floats(1e-5, 1.0),
       constants=st.sampled_from(["default", "paper"]))
def test_lr_at_base_width_is_base_lr_times_gamma(param, optim, width, base_lr, constants):
    if constants == "paper" and param == "umup":
        constants = "default"  # Table C3 has no u-muP row
    doc = prescribe(PrescribeRequest(param=param, optim=optim, width=width, base_width=width, base_lr=base_lr,
                                     constants=constants, model="mlp")).to_dict()
    for t, layer in doc["layers"].items():
        assert layer["lr"] == pytest.approx(base_lr * doc["constants"][t], rel=1e-12)
    for x in doc["tensors"]:
        assert x["lr"] == pytest.approx(base_lr * doc["constants"][x["layer_type"]], rel=1e-12)
