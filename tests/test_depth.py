"""core.depth: each depth factor from its formula, measured on a residual network, properties, bad input."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleadvise.core import rule
from scaleadvise.core.depth import DEPTH_PARAMS, depth_rule, get_depth_param, resolve_depth
from scaleadvise.core.optimizers import OPTIMIZERS, Family, get_optimizer
from scaleadvise.errors import UserError

ALPHAS = {"depth-mup": 0.5, "completep": 1.0}


def expected_exponents(alpha: float, optim: str) -> dict:
    """The branch exponents as the papers state them, written out independently of core/depth.py.

    multiplier (L/L0)^-alpha: Dey et al. 2025 eq. for h_{l+1} = h_l + L^-alpha f_l; Yang et al. 2023.
    init: no depth factor (the CompleteP reference, model.py 167-175, initializes without one).
    Adam LR (L/L0)^(alpha-1): Dey et al. 2025 Table 1 / reference model.py 331; Depth-muP Adam: 1/sqrt(L).
    SGD LR (L/L0)^(2 alpha - 1): Depth-muP with SGD keeps the LR constant at alpha = 1/2.
    eps ∝ gradient scale (L/L0)^-alpha (sqrt(v) placement) or its square (v placement, Adafactor).
    """
    opt = get_optimizer(optim)
    lr = 2 * alpha - 1 if opt.family is Family.SGD else alpha - 1
    eps = None if opt.eps is None else (-2 * alpha if opt.eps == "v" else -alpha)
    return {"multiplier": -alpha, "init": 0.0, "grad": -alpha, "lr": lr, "eps": eps}


@pytest.mark.parametrize("name", ["depth-mup", "completep"])
@pytest.mark.parametrize("optim", list(OPTIMIZERS))
def test_branch_and_trunk_exponents(name, optim):
    r = depth_rule(name, get_optimizer(optim))
    assert vars(r.branch) == pytest.approx(expected_exponents(ALPHAS[name], optim))
    trunk_eps = None if get_optimizer(optim).eps is None else 0.0
    assert vars(r.trunk) == {"multiplier": 0.0, "init": 0.0, "grad": 0.0, "lr": 0.0, "eps": trunk_eps}
    assert r.alpha == ALPHAS[name]


def test_none_has_no_factor():
    for optim in OPTIMIZERS:
        r = depth_rule("none", get_optimizer(optim))
        assert r.alpha is None and {v for v in vars(r.branch).values() if v is not None} == {0.0}


def test_status_says_what_is_validated():
    """Adam family: validated (Dey et al. 2025; Yang et al. 2023); SGD at alpha = 1/2 too (Depth-muP);
    SGD at alpha = 1 and the Adafactor family only derived."""
    status = {(n, o): depth_rule(n, get_optimizer(o)).status for n in ALPHAS for o in ("adamw", "sgd", "adafactor")}
    assert status == {("depth-mup", "adamw"): "known", ("completep", "adamw"): "known",
                      ("depth-mup", "sgd"): "known", ("completep", "sgd"): "derived",
                      ("depth-mup", "adafactor"): "derived", ("completep", "adafactor"): "derived"}


def test_known_values_at_a_depth():
    """CompleteP at 4x the base depth with AdamW: branch x 1/4, LR x 1, eps x 1/4 (per-layer), trunk x 1;
    Depth-muP: branch x 1/2, LR x 1/2."""
    opt = get_optimizer("adamw")
    d = resolve_depth("completep", 32, 8, opt, "per-layer", "mup", True, "nanodo")
    assert d.residual_multiplier == 0.25 and d.factors("branch") == {
        "multiplier": 0.25, "init": 1.0, "grad": 0.25, "lr": 1.0, "eps": 0.25}
    assert d.factors("trunk") == {"multiplier": 1.0, "init": 1.0, "grad": 1.0, "lr": 1.0, "eps": 1.0}
    d = resolve_depth("depth-mup", 32, 8, opt, "per-layer", "mup", True, "nanodo")
    assert (d.residual_multiplier, d.lr_factor("branch"), d.eps_factor("branch")) == (0.5, 0.5, 0.5)
    d = resolve_depth("completep", 32, 8, get_optimizer("sgd"), "none", "mup", True, "nanodo")
    assert d.lr_factor("branch") == 4.0 and d.factors("branch")["eps"] is None  # η ∝ L^(2·1-1) = L
    d = resolve_depth("depth-mup", 32, 8, get_optimizer("adafactor"), "per-layer", "mup", True, "nanodo")
    assert d.eps_factor("branch") == pytest.approx(0.25) and d.eps_factor("trunk") == 1.0  # eps vs v = g²


def test_constant_eps_is_not_scaled_but_noted():
    d = resolve_depth("completep", 32, 8, get_optimizer("adamw"), "constant", "stp", True, "nanodo")
    assert d.eps_factor("branch") == 1.0
    assert any("constant epsilon" in n for n in d.notes)


# ------------------------------------------------------------------ properties


names = st.sampled_from(["depth-mup", "completep"])
optims = st.sampled_from(list(OPTIMIZERS))
depths = st.integers(min_value=1, max_value=4096)


@given(names, optims, depths, st.sampled_from(["per-layer", "constant"]))
def test_every_factor_is_one_at_the_base_depth(name, optim, L, eps_mode):
    d = resolve_depth(name, L, L, get_optimizer(optim), eps_mode, "mup", True, "m")
    for position in ("branch", "trunk"):
        assert {v for v in d.factors(position).values() if v is not None} == {1.0}
    assert d.residual_multiplier == 1.0


@given(names, optims, depths, depths, depths)
def test_factors_compose_multiplicatively(name, optim, L0, L1, L2):
    """Going L0 -> L1 -> L2 is going L0 -> L2: f(L2/L0) = f(L1/L0) f(L2/L1), every factor."""
    opt = get_optimizer(optim)
    f = {pair: resolve_depth(name, pair[1], pair[0], opt, "per-layer", "mup", True, "m") for pair in
         ((L0, L1), (L1, L2), (L0, L2))}
    for pos in ("branch", "trunk"):
        for key, value in f[(L0, L2)].factors(pos).items():
            if value is not None:
                assert value == pytest.approx(f[(L0, L1)].factors(pos)[key] * f[(L1, L2)].factors(pos)[key], rel=1e-9)


@given(st.floats(-3, 3), depths, depths)
def test_rule_depth_factor_is_a_power(x, L, L0):
    assert rule.depth_factor(x, L, L0) == pytest.approx(math.exp(x * math.log(L / L0)), rel=1e-12)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("args,match", [
    (("completep", 0, 8), "depth_param: completep needs depth"),
    (("completep", 8, 0), "base_depth: must be a positive integer"),
    (("completep", 8, -2), "base_depth: must be a positive integer"),
    (("completep", 8, None), "needs base_depth"),
    (("completep", 8, 2.5), "base_depth: must be an integer"),
    (("completep", 8, float("nan")), "base_depth: must be an integer"),
    (("complete", 8, 4), "depth_param: unknown depth parameterization 'complete'"),
])
def test_bad_depth_input(args, match):
    with pytest.raises(UserError, match=match):
        resolve_depth(*args, get_optimizer("adamw"), "constant", "mup", True, "nanodo")


def test_refusals():
    opt = get_optimizer("adamw")
    with pytest.raises(UserError, match="model mlp has no residual branches"):
        resolve_depth("completep", 8, 2, opt, "constant", "mup", False, "mlp")
    with pytest.raises(UserError, match="u-muP scales depth with its own"):
        resolve_depth("completep", 8, 2, opt, "constant", "umup", True, "nanodo")
    assert resolve_depth("none", 8, None, opt, "constant", "umup", False, "mlp") is None


def test_shallower_target_is_allowed_and_explained():
    d = resolve_depth("completep", 4, 16, get_optimizer("adamw"), "per-layer", "mup", True, "nanodo")
    assert d.residual_multiplier == 4.0 and any("below the base depth" in n for n in d.notes)


def test_derived_combinations_warn():
    for optim in ("sgd", "adafactor", "adam-ps"):
        d = resolve_depth("completep", 16, 4, get_optimizer(optim), "per-layer", "mup", True, "nanodo")
        assert any("derived" in n for n in d.notes)
    assert not resolve_depth("completep", 16, 4, get_optimizer("adamw"), "per-layer", "mup", True, "n").notes


def test_aliases():
    assert get_depth_param("CompleteP") == "completep" and get_depth_param("depth_mup") == "depth-mup"
    assert set(DEPTH_PARAMS) == {"none", "depth-mup", "completep"}


# ------------------------------------------------------------------ measured on a residual network


def _measure(L: int, L0: int, alpha: float, optim: str, lr_exp: float, seed: int) -> tuple[float, float, float]:
    """A pre-LN residual network h <- h + m W2 tanh(W1 (g ⊙ LN(h))) at depth L, m = (L/L0)^-alpha:
    (branch-matrix gradient RMS, embedding gradient RMS, loss decrease after one step of the branch
    tensors with LR 1e-4 (L/L0)^lr_exp: Adam's first step is lr·sign(grad), SGD's lr·grad)."""
    import torch

    d, m = 64, (L / L0) ** -alpha
    g = torch.Generator().manual_seed(seed)
    P = {"E": torch.randn(d, 16, generator=g) / 4, "U": torch.randn(8, d, generator=g) / d}
    for i in range(L):
        P[f"g{i}"] = torch.ones(d)
        P[f"W1{i}"] = torch.randn(d, d, generator=g) / d**0.5
        P[f"W2{i}"] = torch.randn(d, d, generator=g) * 0.25 / d**0.5  # small branches: the trunk is O(1) at L0
    for p in P.values():
        p.requires_grad_(True)
    data = torch.Generator().manual_seed(100 + seed)  # the same batch at every depth
    x, y = torch.randn(32, 16, generator=data), torch.randn(32, 8, generator=data)

    def loss_of(P):
        h = x @ P["E"].T
        for i in range(L):
            z = torch.nn.functional.layer_norm(h, h.shape[-1:]) * P[f"g{i}"]
            h = h + m * (torch.tanh(z @ P[f"W1{i}"].T) @ P[f"W2{i}"].T)
        return ((h @ P["U"].T - y) ** 2).mean()

    loss = loss_of(P)
    G = dict(zip(P, torch.autograd.grad(loss, list(P.values()))))
    branch = sum(G[f"W1{i}"].pow(2).mean().sqrt().item() for i in range(L)) / L
    eta = 1e-4 * (L / L0) ** lr_exp
    with torch.no_grad():
        for k, p in P.items():
            if k not in ("E", "U"):
                p -= eta * (torch.sign(G[k]) if optim == "adam" else G[k])
        drop = (loss - loss_of(P)).item()
    return branch, G["E"].pow(2).mean().sqrt().item(), drop


@pytest.mark.parametrize("name", ["depth-mup", "completep"])
@pytest.mark.parametrize("optim", ["adam", "sgd"])
def test_factors_hold_on_a_residual_network(name, optim, one_torch_thread):
    """At 4x the base depth: branch gradients shrink by (L/L0)^-alpha (what epsilon follows), the
    embedding's do not (Mlodozeniec et al.'s correction), and with the prescribed LR exponent one
    step lowers the loss as much as at the base depth (the per-block update is Θ(1/L)) while the
    other parameterization's exponent does not."""
    pytest.importorskip("torch")
    alpha = ALPHAS[name]
    ours = depth_rule(name, get_optimizer(optim)).branch.lr
    other = depth_rule("completep" if name == "depth-mup" else "depth-mup", get_optimizer(optim)).branch.lr
    mean = lambda L, e: [sum(v) / 4 for v in zip(*(_measure(L, 4, alpha, optim, e, s) for s in range(4)))]  # noqa
    base, deep, wrong = mean(4, ours), mean(16, ours), mean(16, other)
    assert deep[0] / base[0] == pytest.approx(4.0 ** -alpha, rel=0.12)  # branch gradient
    assert deep[1] / base[1] == pytest.approx(1.0, abs=0.1)  # embedding gradient
    assert deep[2] / base[2] == pytest.approx(1.0, abs=0.15)  # loss decrease with our LR exponent
    assert not 0.67 < wrong[2] / base[2] < 1.5
