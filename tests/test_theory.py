"""The theory engine against the paper: Table 1 typed in by hand, §3.3.3, and hand-derived cases."""

import pytest

from scaleadvise.errors import UserError
from scaleadvise.core.parameterizations import get_parameterization
from scaleadvise.core.symmetry import abc_shift, equivalence_theta
from scaleadvise.core.alignment import FULL, NONE, YANG_HU, Alignment, parse_alignment
from scaleadvise.core.optimizers import optimizer_family
from scaleadvise.core.theory import evaluate, gradient_exponents, max_stable_lr_exponents

# Table 1 of Everett et al. 2024, transcribed as printed (powers of the width n).
# Columns: init variance, multiplier, gradient,
#          SGD full, Adam full, Adafactor full, SGD none, Adam none, Adafactor none.
TABLE_1 = """
stp embedding | 1    | 1    | 1/√n     | √n   | 1    | 1    | √n     | 1    | 1
stp hidden    | 1/n  | 1    | 1/√n     | 1/√n | 1/n  | 1/√n | 1      | 1/√n | 1
stp readout   | 1/n  | 1    | 1        | 1/n  | 1/n  | 1/√n | 1/√n   | 1/√n | 1
ntk embedding | 1    | 1    | 1/√n     | √n   | 1    | 1    | √n     | 1    | 1
ntk hidden    | 1    | 1/√n | 1/n      | √n   | 1/√n | 1/√n | n      | 1    | 1
ntk readout   | 1    | 1/√n | 1/√n     | 1    | 1/√n | 1/√n | √n     | 1    | 1
mup embedding | 1/n  | √n   | 1/√n     | 1    | 1/√n | 1    | 1      | 1/√n | 1
mup hidden    | 1/n  | 1    | 1/n      | 1    | 1/n  | 1/√n | √n     | 1/√n | 1
mup readout   | 1/n  | 1/√n | 1/√n     | 1    | 1/√n | 1    | 1      | 1    | 1
mfp embedding | 1    | 1    | 1/n      | n    | 1    | 1    | n      | 1    | 1
mfp hidden    | 1    | 1/√n | 1/n^1.5  | n    | 1/√n | 1/√n | n^1.5  | 1    | 1
mfp readout   | 1    | 1/n  | 1/n      | n    | 1    | 1    | n      | √n   | 1
"""

POWERS = {"1": 0.0, "1/√n": 0.5, "√n": -0.5, "1/n": 1.0, "n": -1.0, "1/n^1.5": 1.5, "n^1.5": -1.5}
COLUMNS = [("sgd", FULL), ("adam", FULL), ("adafactor", FULL), ("sgd", NONE), ("adam", NONE), ("adafactor", NONE)]


def _rows():
    for line in TABLE_1.strip().splitlines():
        head, *cells = [x.strip() for x in line.split("|")]
        param, layer = head.split()
        yield param, layer, [POWERS[c] for c in cells]


ROWS = list(_rows())


def test_table_1_has_every_entry():
    assert len(ROWS) == 12 and all(len(r[2]) == 9 for r in ROWS)


@pytest.mark.parametrize("param,layer,cells", ROWS, ids=[f"{p}-{l}" for p, l, _ in ROWS])
def test_init_multiplier_and_gradient_columns(param, layer, cells):
    p = get_parameterization(param)
    variance, multiplier, gradient = cells[:3]
    assert 2 * p.b[layer] == pytest.approx(variance)  # variance n^-2b
    assert p.a[layer] == pytest.approx(multiplier)
    assert gradient_exponents(p.a, p.b)[layer] == pytest.approx(gradient)


@pytest.mark.parametrize("col", range(6), ids=[f"{o}-{'full' if a is FULL else 'none'}" for o, a in COLUMNS])
@pytest.mark.parametrize("param", ["stp", "ntk", "mup", "mfp"])
def test_learning_rate_columns(param, col):
    """All 72 LR exponents of Table 1, derived by the solver."""
    optim, alignment = COLUMNS[col]
    p = get_parameterization(param)
    sol = max_stable_lr_exponents(p.a, p.b, optim, alignment)
    expected = {layer: cells[3 + col] for q, layer, cells in ROWS if q == param}
    assert sol.c == pytest.approx(expected)
    assert sol.stable
    # B.17: "this results in values of c_l that make r_l = 0 ... feature learning limit".
    assert sol.feature_learning


def test_table1_lrs_are_minimal():
    """Every Table 1 LR is the largest stable one: any larger LR on any layer breaks a constraint."""
    for param in ("stp", "ntk", "mup", "mfp"):
        p = get_parameterization(param)
        for optim, al in COLUMNS:
            sol = max_stable_lr_exponents(p.a, p.b, optim, al)
            for layer in sol.c:
                if optim == "sgd" and layer == "readout":
                    continue  # Table 1's SGD readout is capped by convention (B.13), tested below
                bigger = dict(sol.c, **{layer: sol.c[layer] - 0.01})
                assert not evaluate(p.a, p.b, bigger, optim, al).stable, (param, optim, layer)


def test_sgd_readout_convention_and_gradient_sign():
    """A larger SGD readout LR than Table 1's grows the readout weight: gradients grow (g smaller),
    and the other layers' maximal LRs shrink (B.13 with the sign resolved)."""
    p = get_parameterization("mup")
    preserve = max_stable_lr_exponents(p.a, p.b, "sgd", NONE)
    assert preserve.c["readout"] == 0.0 and preserve.g_train == preserve.g
    larger = max_stable_lr_exponents(p.a, p.b, "sgd", NONE, sgd_readout="max")
    assert larger.c["readout"] == pytest.approx(-0.5)  # sqrt(n): logits alone allow this
    assert larger.g_train["hidden"] == pytest.approx(preserve.g["hidden"] - 0.5)  # gradients grow
    assert larger.c["hidden"] == pytest.approx(preserve.c["hidden"] + 0.5)  # so the hidden LR drops
    assert larger.stable and larger.nontrivial
    # With Table 1's LRs but a readout LR one notch larger, the hidden layers become unstable.
    c = dict(preserve.c, readout=-0.5)
    assert not evaluate(p.a, p.b, c, "sgd", NONE).stable


def test_yang_hu_sp_and_ntk_cannot_feature_learn():
    """§3.3.3: with omega_{L+1} = 1, SP and NTK cannot reach feature learning at any LR."""
    for param in ("stp", "ntk"):
        p = get_parameterization(param)
        for optim in ("sgd", "adam", "adafactor"):
            sol = max_stable_lr_exponents(p.a, p.b, optim, YANG_HU)
            assert sol.stable and not sol.feature_learning
            assert sol.r[-1] == pytest.approx(0.5)
            assert any("feature learning is impossible" in n for n in sol.notes)
            # no LR at all gives r_L = 0 and stability: even infinite LRs on the hidden layers don't help
            for c_h in (-2, -1, 0, 0.5, 1, 2):
                v = evaluate(p.a, p.b, dict(sol.c, hidden=c_h), optim, YANG_HU)
                assert not v.feature_learning


def test_yang_hu_mup_recovers_tensor_programs():
    """B.17: muP/MFP full-alignment LRs coincide with Yang & Hu (SGD) and Yang & Littwin (Adam)."""
    for param in ("mup", "mfp"):
        p = get_parameterization(param)
        for optim in ("sgd", "adam", "adafactor"):
            yh = max_stable_lr_exponents(p.a, p.b, optim, YANG_HU)
            full = max_stable_lr_exponents(p.a, p.b, optim, FULL)
            assert yh.c == full.c and yh.feature_learning


def test_yang_hu_sp_sgd_is_the_kernel_regime_lr():
    # Tensor Programs IV: SP + SGD is stable only with LR O(1/n) on hidden and readout.
    p = get_parameterization("stp")
    sol = max_stable_lr_exponents(p.a, p.b, "sgd", YANG_HU)
    assert sol.c["hidden"] == 1.0 and sol.c["readout"] == 1.0


def test_intermediate_alignment_by_hand():
    """alpha = u = 0.7 (the measured middle ground of §4.1), worked out from Table 2.

    Adam, SP: hidden needs a + c - alpha >= 0 -> c = 0.7; readout the same -> 0.7;
    embedding r1 = a1 + c1 >= 0 -> c1 = 0. SGD, muP: g_hidden = 1 and
    r = g + a + c - alpha >= 0 -> c = -0.3; readout 2a + c - alpha >= 0 -> c = -0.3,
    but capped at b - a = 0 by Table 1's convention. Adafactor: c = alpha - 1/2 = 0.2 (hidden).
    """
    al = parse_alignment("0.7,0.5,0.7")
    stp, mup = get_parameterization("stp"), get_parameterization("mup")
    assert max_stable_lr_exponents(stp.a, stp.b, "adam", al).c == pytest.approx(
        {"embedding": 0.0, "hidden": 0.7, "readout": 0.7})
    assert max_stable_lr_exponents(mup.a, mup.b, "sgd", al).c == pytest.approx(
        {"embedding": 0.0, "hidden": -0.3, "readout": 0.0})
    assert max_stable_lr_exponents(stp.a, stp.b, "adafactor", al).c == pytest.approx(
        {"embedding": 0.0, "hidden": 0.2, "readout": 0.2})


def test_u_larger_than_alpha_binds_through_residual():
    """u > alpha: the ΔW·Δz term needs a + c + r_{l-1} - u >= 0; with r_{l-1} = 0 it binds."""
    stp = get_parameterization("stp")
    sol = max_stable_lr_exponents(stp.a, stp.b, "adam", Alignment(alpha=0.5, omega=0.5, u=0.9))
    assert sol.c["hidden"] == pytest.approx(0.9) and sol.c["readout"] == pytest.approx(0.9)


def test_global_lr_sp_adam_is_unstable_and_says_where():
    stp = get_parameterization("stp")
    v = evaluate(stp.a, stp.b, {"embedding": 0, "hidden": 0, "readout": 0}, "adam", FULL)
    assert not v.stable
    bad = {k.layer for k in v.violations}
    assert bad == {"hidden", "readout"}
    assert max(k.shortfall for k in v.violations) == pytest.approx(1.0)


def test_unstable_init_is_reported():
    v = evaluate({"embedding": 0, "hidden": 0, "readout": 0}, {"embedding": 0, "hidden": 0, "readout": 0.5},
                 {"embedding": 0, "hidden": 1, "readout": 1}, "adam")
    assert any(k.name == "init" and k.layer == "hidden" and k.shortfall == 0.5 for k in v.violations)


def test_adafactor_needs_nonnegative_c():
    mfp = get_parameterization("mfp")
    v = evaluate(mfp.a, mfp.b, {"embedding": 0, "hidden": 0.5, "readout": -0.5}, "adafactor")
    assert any(k.name == "parameter-scaling growth" and k.layer == "readout" for k in v.violations)


def test_abc_shift_and_equivalence_classes():
    """§3.2: SP ~ NTK and muP ~ MFP under the right LRs; SP !~ muP (readout a+b differs)."""
    for optim in ("sgd", "adam", "adafactor"):
        def abc(name, al=FULL):
            p = get_parameterization(name)
            return p.a, p.b, max_stable_lr_exponents(p.a, p.b, optim, al).c

        assert equivalence_theta(abc("stp"), abc("ntk"), optim) == {"embedding": 0.0, "hidden": 0.5, "readout": 0.5}
        assert equivalence_theta(abc("mup"), abc("mfp"), optim) == {"embedding": 0.5, "hidden": 0.5, "readout": 0.5}
        assert equivalence_theta(abc("stp"), abc("mup"), optim) is None
        a, b, c = abc("mfp", NONE)
        assert abc_shift(a, b, c, {"embedding": 0, "hidden": -0.5, "readout": -1}, optim)[0] == {
            "embedding": 0, "hidden": 0, "readout": 0}


@pytest.mark.parametrize("name,family", [("adamw", "adam"), ("adam-atan2", "adam"), ("adam-ps", "adafactor"),
                                         ("SGD", "sgd"), ("adafactor", "adafactor")])
def test_optimizer_families(name, family):
    assert optimizer_family(name).value == family


@pytest.mark.parametrize("text", ["0.8,0.5", "full-ish", "a,b,c", "1.5,0.5,1", "-0.1,0.5,0.5"])
def test_bad_alignment(text):
    with pytest.raises(UserError, match="^alignment: ") as e:
        parse_alignment(text)
    assert e.value.field == "alignment"


def test_bad_optimizer_suggests():
    with pytest.raises(UserError, match="did you mean 'adamw'"):
        optimizer_family("adamww")
