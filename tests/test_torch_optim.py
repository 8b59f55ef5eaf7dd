"""AdamAtan2 and AdamPS (scaleadvise/torch/optim.py) against the paper's formulas (C.5, B.8),
torch.optim.Adam, the adam-atan2-pytorch package and their own invariants."""

import ast
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from scaleadvise.torch.optim import AdamAtan2, AdamPS  # noqa: E402

OPTIM_PY = Path(__file__).resolve().parents[1] / "scaleadvise" / "torch" / "optim.py"
SHAPES = [(6, 4), (5,), (3, 2, 2)]


def make_problem(seed: int = 0, steps: int = 6, shapes=SHAPES):
    """Initial params and a gradient sequence (float64, CPU)."""
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    grads = [
        [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(steps)
    ]
    return init, grads


def run(make_opt, init, grads, dtype=torch.float64, grad_scale=1.0):
    """Params after feeding `grads` (times grad_scale) to the optimizer make_opt(params)."""
    params = [torch.nn.Parameter(x.to(dtype, copy=True)) for x in init]
    opt = make_opt(params)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = (g * grad_scale).to(dtype)
        opt.step()
    return [p.detach().clone() for p in params]


def displacement(after, init):
    return torch.cat([(p.double() - x.double()).flatten() for p, x in zip(after, init)])


def rel_err(x, y):
    return ((x - y).abs().max() / y.abs().max()).item()


def reference_adam_atan2(init, grads, lr, betas, weight_decay, a, b):
    """Everett et al. C.5 spelled out elementwise in Python floats (float64)."""
    beta1, beta2 = betas
    p = torch.cat([x.flatten() for x in init]).tolist()
    m, v = [0.0] * len(p), [0.0] * len(p)
    for t, gs in enumerate(grads, start=1):
        g = torch.cat([x.flatten() for x in gs]).tolist()
        for i in range(len(p)):
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] ** 2
            m_hat, v_hat = m[i] / (1 - beta1**t), v[i] / (1 - beta2**t)
            p[i] -= lr * weight_decay * p[i]
            p[i] -= lr * a * math.atan2(m_hat, b * math.sqrt(v_hat))
    return torch.tensor(p, dtype=torch.float64)


def reference_adam_ps(init, grads, lr, betas, eps, weight_decay, min_param_rms=1e-3):
    """Adam + parameter scaling (B.8): the Adam update of each tensor times max(1e-3, RMS(W))."""
    beta1, beta2 = betas
    params = [x.clone() for x in init]
    m = [torch.zeros_like(x) for x in init]
    v = [torch.zeros_like(x) for x in init]
    for t, gs in enumerate(grads, start=1):
        for i, (w, g) in enumerate(zip(params, gs)):
            scale = max(min_param_rms, w.pow(2).mean().sqrt().item())
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g**2
            adam = (m[i] / (1 - beta1**t)) / ((v[i] / (1 - beta2**t)).sqrt() + eps)
            params[i] = w - lr * weight_decay * w - lr * scale * adam
    return torch.cat([x.flatten() for x in params])


# --------------------------------------------------------------------------- AdamAtan2


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    "a,b,weight_decay", [(1.0, 1.0, 0.0), (4 / math.pi, 1.0, 0.1), (2.0, 2.0, 0.3)]
)
def test_adam_atan2_matches_float64_reference(foreach, a, b, weight_decay):
    init, grads = make_problem(seed=1)
    got = run(
        lambda ps: AdamAtan2(ps, lr=0.05, weight_decay=weight_decay, a=a, b=b, foreach=foreach),
        init,
        grads,
    )
    want = reference_adam_atan2(
        init, grads, lr=0.05, betas=(0.9, 0.98), weight_decay=weight_decay, a=a, b=b
    )
    flat_init = torch.cat([x.flatten() for x in init])
    assert rel_err(displacement(got, init), want - flat_init) < 1e-12


@settings(max_examples=20, deadline=None)
@given(log10_scale=st.floats(-20, 20), seed=st.integers(0, 3))
def test_adam_atan2_is_scale_invariant_in_float64(log10_scale, seed):
    init, grads = make_problem(seed=seed, steps=4)
    make = lambda ps: AdamAtan2(ps, lr=0.01)  # noqa: E731
    base = displacement(run(make, init, grads), init)
    scaled = displacement(run(make, init, grads, grad_scale=10.0**log10_scale), init)
    assert rel_err(scaled, base) < 1e-12


@pytest.mark.parametrize("scale,adam_change", [(1e-20, 0.9), (1e20, 1e-8)])
def test_scale_invariance_where_adam_eps_breaks(scale, adam_change):
    """C.5: Adam-atan2(lambda g) == Adam-atan2(g); Adam with eps = 1e-8 is not (§4.3): at
    1e-20 eps swamps sqrt(v) (the update all but vanishes); at 1e20 the eps that
    perturbed the unscaled run (|g| ~ 1e-2..1) disappears, a change far above fp64 noise."""
    init, grads = make_problem(seed=2, steps=4)
    atan2 = lambda ps: AdamAtan2(ps, lr=0.01, foreach=True)  # noqa: E731
    adam = lambda ps: torch.optim.Adam(ps, lr=0.01, eps=1e-8)  # noqa: E731
    assert (
        rel_err(
            displacement(run(atan2, init, grads, grad_scale=scale), init),
            displacement(run(atan2, init, grads), init),
        )
        < 1e-12
    )
    assert (
        rel_err(
            displacement(run(adam, init, grads, grad_scale=scale), init),
            displacement(run(adam, init, grads), init),
        )
        > adam_change
    )


@pytest.mark.parametrize("scale", [1e-15, 1e15])
def test_scale_invariance_in_float32(scale):
    """Also in fp32 while g^2 stays a normal fp32 number (|g| in [0.5, 2])."""
    init, grads = make_problem(seed=3, steps=4)
    grads = [[g.sign() * (0.5 + g.abs().clamp(max=1.5)) for g in gs] for gs in grads]
    make = lambda ps: AdamAtan2(ps, lr=0.01)  # noqa: E731
    base = displacement(run(make, init, grads, dtype=torch.float32), init)
    scaled = displacement(run(make, init, grads, dtype=torch.float32, grad_scale=scale), init)
    assert rel_err(scaled, base) < 1e-5


@pytest.mark.parametrize("b", [1e2, 1e3])
def test_a_equals_b_with_tiny_ratios_is_adam_without_eps(b):
    """|atan(x) - x| <= |x|^3 / 3 and |m_hat| <= sqrt(v_hat) (beta1^2 <= beta2), so with
    a = b every element of every step is within lr / (3 b^2) of Adam with eps = 0."""
    init, grads = make_problem(seed=4, steps=5)
    lr = 1e-3
    ours = displacement(run(lambda ps: AdamAtan2(ps, lr=lr, a=b, b=b), init, grads), init)
    adam = displacement(
        run(lambda ps: torch.optim.Adam(ps, lr=lr, betas=(0.9, 0.98), eps=0.0), init, grads), init
    )
    assert (ours - adam).abs().max().item() <= len(grads) * lr / (3 * b**2) + 1e-15
    # and a = b = 1 is visibly not Adam: the first step is pi/4 * lr instead of lr
    first = run(lambda ps: AdamAtan2(ps, lr=lr), init, grads[:1])
    assert displacement(first, init).abs().max().item() == pytest.approx(
        lr * math.pi / 4, rel=1e-12
    )


@pytest.mark.parametrize("b", [1, 2, 4, 8, 16, 32])
def test_table_c4_a_gives_unit_update_when_m_equals_sqrt_v(b):
    """At step 1, m_hat = g and sqrt(v_hat) = |g|: the update is a * atan(1 / b) * sign(g),
    which a = 1 / arctan(1 / b) (Table C4) makes exactly lr, Adam's step."""
    init, grads = make_problem(seed=5, steps=1)
    a = 1 / math.atan(1 / b)
    step = displacement(run(lambda ps: AdamAtan2(ps, lr=0.1, a=a, b=b), init, grads), init)
    assert torch.allclose(step.abs(), torch.full_like(step, 0.1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_matches_adam_atan2_pytorch_package(dtype, rtol, weight_decay):
    """adam-atan2-pytorch 0.4: update a * atan2(m / bc1, b * sqrt(v / bc2)) and, with
    decoupled_wd=False, p *= 1 - lr * wd; its defaults differ (a = 1.27, betas (0.9, 0.99)),
    so every setting is passed explicitly."""
    package = pytest.importorskip("adam_atan2_pytorch")
    from adam_atan2_pytorch.foreach import AdamAtan2 as PackageForeach

    init, grads = make_problem(seed=6, steps=8)
    settings_ = dict(lr=0.02, betas=(0.9, 0.98), weight_decay=weight_decay, a=1.27, b=1.5)
    ours = displacement(run(lambda ps: AdamAtan2(ps, **settings_), init, grads, dtype=dtype), init)
    for cls in (package.AdamAtan2, PackageForeach):
        theirs = displacement(
            run(lambda ps: cls(ps, decoupled_wd=False, **settings_), init, grads, dtype=dtype), init
        )
        assert rel_err(ours, theirs) < rtol


@pytest.mark.parametrize("lr", [0.01, "tensor"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_adam_atan2_foreach_equals_plain_bitwise(lr, dtype):
    init, grads = make_problem(seed=7)

    def make(foreach):
        rate = torch.tensor(0.01) if lr == "tensor" else lr
        return lambda ps: AdamAtan2(
            ps, lr=rate, weight_decay=0.1, a=1.2, b=1.1, maximize=True, foreach=foreach
        )

    for x, y in zip(
        run(make(True), init, grads, dtype=dtype), run(make(False), init, grads, dtype=dtype)
    ):
        assert torch.equal(x, y)


@pytest.mark.parametrize("cls", [AdamAtan2, AdamPS])
def test_cpu_foreach_batches_are_bitwise_the_unbatched_update(cls, monkeypatch):
    """On CPU the foreach kernel runs on cache-sized runs of tensors; cutting the lists
    must not change a bit, wherever the cuts fall."""
    import scaleadvise.torch.optim as optim

    init, grads = make_problem(seed=17, shapes=[(6, 4), (5,), (3, 2, 2), (30,), (2, 3)])
    make = lambda ps: cls(ps, lr=0.01, weight_decay=0.1, foreach=True)  # noqa: E731
    whole = run(make, init, grads, dtype=torch.float32)
    kernel, calls = cls._foreach_kernel, []
    counting = staticmethod(lambda *args, **kwargs: calls.append(kernel(*args, **kwargs)))
    monkeypatch.setattr(cls, "_foreach_kernel", counting)
    for limit, n_batches in ((1, 5), (30, 4), (50, 2)):  # numels 24, 5, 12, 30, 6
        monkeypatch.setattr(optim, "_CPU_BATCH_NUMEL", limit)
        calls.clear()
        for x, y in zip(run(make, init, grads, dtype=torch.float32), whole):
            assert torch.equal(x, y)
        assert len(calls) == n_batches * len(grads)


def test_weight_decay_is_decoupled():
    """Zero gradients leave m = v = 0 and atan2(0, 0) = 0, so only the decay acts:
    p_T = p_0 (1 - lr wd)^T exactly as AdamW's decoupled rule, independent of a and b."""
    init, grads = make_problem(seed=8, steps=7)
    zeros = [[torch.zeros_like(g) for g in gs] for gs in grads]
    lr, wd = 0.1, 0.3
    for foreach in (False, True):
        got = run(
            lambda ps: AdamAtan2(ps, lr=lr, weight_decay=wd, a=3.0, foreach=foreach), init, zeros
        )
        for p, x in zip(got, init):
            torch.testing.assert_close(p, x * (1 - lr * wd) ** len(grads), rtol=1e-14, atol=0)


def test_maximize_ascends():
    init, grads = make_problem(seed=9)
    negated = [[-g for g in gs] for gs in grads]
    up = run(lambda ps: AdamAtan2(ps, lr=0.01, maximize=True), init, grads)
    down = run(lambda ps: AdamAtan2(ps, lr=0.01), init, negated)
    for x, y in zip(up, down):
        assert torch.equal(x, y)


def test_bf16_params_keep_fp32_state_and_round_an_fp32_update():
    """State is fp32 and each step is the fp32 computation rounded into bf16: identical to
    an fp32 optimizer whose params are rounded to bf16 after every step."""
    init, grads = make_problem(seed=10)
    init = [x.to(torch.bfloat16) for x in init]
    grads = [[g.to(torch.bfloat16) for g in gs] for gs in grads]
    for foreach in (False, True):
        params = [torch.nn.Parameter(x.clone()) for x in init]
        mirror = [torch.nn.Parameter(x.float()) for x in init]
        opt = AdamAtan2(params, lr=0.01, weight_decay=0.1, foreach=foreach)
        mirror_opt = AdamAtan2(mirror, lr=0.01, weight_decay=0.1, foreach=foreach)
        for gs in grads:
            for p, q, g in zip(params, mirror, gs):
                p.grad, q.grad = g.clone(), g.float()
            opt.step()
            mirror_opt.step()
            with torch.no_grad():
                for q in mirror:
                    q.copy_(q.to(torch.bfloat16).float())
        for p, q in zip(params, mirror):
            assert p.dtype == torch.bfloat16
            assert (
                opt.state[p]["exp_avg"].dtype == opt.state[p]["exp_avg_sq"].dtype == torch.float32
            )
            assert torch.equal(p.float(), q.detach())
            assert torch.equal(opt.state[p]["exp_avg_sq"], mirror_opt.state[q]["exp_avg_sq"])


@pytest.mark.parametrize("cls", [AdamAtan2, AdamPS])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_state_dict_round_trip_continues_bit_for_bit(cls, dtype):
    init, grads = make_problem(seed=11, steps=8)

    def fresh(values):
        params = [torch.nn.Parameter(x.to(dtype).clone()) for x in values]
        groups = [{"params": params[:1], "lr": torch.tensor(0.02)}, {"params": params[1:]}]
        return params, cls(groups, lr=0.01, weight_decay=0.05)

    def feed(params, opt, grad_seq):
        for gs in grad_seq:
            for p, g in zip(params, gs):
                p.grad = g.to(dtype)
            opt.step()

    params, opt = fresh(init)
    feed(params, opt, grads[:4])
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    snapshot = [p.detach().clone() for p in params]
    feed(params, opt, grads[4:])

    resumed, resumed_opt = fresh(snapshot)
    buffer.seek(0)
    resumed_opt.load_state_dict(torch.load(buffer))
    for p in resumed:
        assert resumed_opt.state[p]["exp_avg"].dtype == torch.float32
        assert resumed_opt.state[p]["step"].item() == 4
    feed(resumed, resumed_opt, grads[4:])
    for x, y in zip(params, resumed):
        assert torch.equal(x, y)


@pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)  # inductor's import
def test_compiled_step_matches_eager_and_lr_tensor_changes_do_not_recompile():
    """torch.compile (inductor, CPU) of the optimizer step; a schedule that changes a
    0-dim tensor lr must not recompile: one graph with state creation, one without."""
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()

    def train(compiled):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        x, y = torch.randn(32, 8), torch.randn(32, 1)
        lr = torch.tensor(0.01)
        opt = AdamAtan2(model.parameters(), lr=lr, weight_decay=0.1, foreach=False)
        step = torch.compile(opt.step) if compiled else opt.step
        for i in range(5):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            step()
            lr.fill_(0.01 * 0.8 ** (i + 1))
        return [p.detach().clone() for p in model.parameters()]

    for e, c in zip(train(False), train(True)):
        torch.testing.assert_close(c, e, rtol=1e-5, atol=1e-6)
    assert counters["stats"]["unique_graphs"] == 2


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("cls,foreach", [(AdamAtan2, True), (AdamPS, False), (AdamPS, True)])
def test_compiled_step_matches_eager_other_paths(cls, foreach):
    torch._dynamo.reset()
    init, grads = make_problem(seed=12, steps=4)
    init = [x.float() for x in init]
    grads = [[g.float() for g in gs] for gs in grads]

    def make(compiled):
        def factory(ps):
            opt = cls(ps, lr=torch.tensor(0.01), weight_decay=0.1, foreach=foreach)
            if compiled:
                opt.step = torch.compile(opt.step)
            return opt

        return factory

    for e, c in zip(
        run(make(False), init, grads, torch.float32), run(make(True), init, grads, torch.float32)
    ):
        torch.testing.assert_close(c, e, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- AdamPS


@pytest.mark.parametrize("foreach", [False, True])
def test_adam_ps_matches_reference_with_per_group_eps(foreach):
    """Adam times max(1e-3, RMS(W)) (B.8), with each group's own eps (per-layer eps, §4.3);
    the third tensor is zero-initialised so the 1e-3 floor sets its scale."""
    init, grads = make_problem(seed=13)
    init[2] = torch.zeros_like(init[2])
    init[1] = init[1] * 50.0
    lr, wd, eps = 0.01, 0.1, [1e-9, 0.3]
    got = run(
        lambda ps: AdamPS(
            [{"params": ps[:2], "eps": eps[0]}, {"params": ps[2:], "eps": eps[1]}],
            lr=lr,
            weight_decay=wd,
            foreach=foreach,
        ),
        init,
        grads,
    )
    want_a = reference_adam_ps(init[:2], [gs[:2] for gs in grads], lr, (0.9, 0.98), eps[0], wd)
    want_b = reference_adam_ps(init[2:], [gs[2:] for gs in grads], lr, (0.9, 0.98), eps[1], wd)
    want = torch.cat([want_a, want_b]) - torch.cat([x.flatten() for x in init])
    assert rel_err(displacement(got, init), want) < 1e-12


def test_adam_ps_first_step_is_adam_times_parameter_rms():
    init, grads = make_problem(seed=14, steps=1)
    ps = run(lambda p: AdamPS(p, lr=0.01, eps=1e-9), init, grads)
    adam = run(lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.98), eps=1e-9), init, grads)
    for w, x, y in zip(init, ps, adam):
        rms = w.pow(2).mean().sqrt()
        torch.testing.assert_close(x - w, rms * (y - w), rtol=1e-12, atol=0)


@settings(max_examples=15, deadline=None)
@given(k=st.floats(0.01, 1e4), log10_grad=st.floats(-6, 6))
def test_adam_ps_update_is_proportional_to_parameter_rms(k, log10_grad):
    """Adafactor family (B.9): rescaling W rescales the update by the same factor, and the
    gradient scale does not matter (while RMS(W) stays above the floor and eps << |g|)."""
    init, grads = make_problem(seed=15, steps=3)
    make = lambda ps: AdamPS(ps, lr=0.01, eps=0.0)  # noqa: E731
    base = displacement(run(make, init, grads), init)
    scaled_init = [k * x for x in init]
    scaled = displacement(run(make, scaled_init, grads, grad_scale=10.0**log10_grad), scaled_init)
    assert rel_err(scaled, k * base) < 1e-10


@pytest.mark.parametrize("n", [64, 256, 1024])
def test_adam_ps_update_rms_tracks_parameter_rms_across_widths(n):
    """Width scaling (B.9): a hidden matrix initialised with std n^-1/2 gets a first update
    of RMS exactly lr * RMS(W) (m_hat / sqrt(v_hat) = sign(g) at step 1, eps = 0), so the
    update shrinks like n^-1/2 with the same lr; Adam's would stay at lr."""
    gen = torch.Generator().manual_seed(n)
    w = torch.randn(n, n, generator=gen, dtype=torch.float64) * n**-0.5
    g = torch.randn(n, n, generator=gen, dtype=torch.float64) * 1e-3
    after = run(lambda ps: AdamPS(ps, lr=0.1, eps=0.0), [w], [[g]])[0]
    update_rms = (after - w).pow(2).mean().sqrt().item()
    assert update_rms == pytest.approx(0.1 * w.pow(2).mean().sqrt().item(), rel=1e-12)
    assert update_rms == pytest.approx(0.1 * n**-0.5, rel=0.02)


def test_adam_ps_foreach_matches_plain():
    init, grads = make_problem(seed=16)
    for dtype, rtol in ((torch.float64, 1e-13), (torch.float32, 1e-5)):
        make = lambda foreach: lambda ps: AdamPS(
            ps, lr=0.01, weight_decay=0.1, foreach=foreach
        )  # noqa: E731
        x = displacement(run(make(True), init, grads, dtype=dtype), init)
        y = displacement(run(make(False), init, grads, dtype=dtype), init)
        assert rel_err(x, y) < rtol


def test_torch_adamw_reads_eps_per_group_as_documented():
    """The module docstring's recipe: per-layer eps through torch AdamW param groups. At
    step 1 the update is lr * |g| / (|g| + eps_group), so a large eps shrinks only its group."""
    g = torch.full((4,), 1e-4, dtype=torch.float64)
    a, b = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64)), torch.nn.Parameter(
        torch.zeros(4, dtype=torch.float64)
    )
    a.grad, b.grad = g.clone(), g.clone()
    torch.optim.AdamW(
        [{"params": [a], "eps": 1e-12}, {"params": [b], "eps": 1e-4}], lr=1.0, weight_decay=0.0
    ).step()
    assert a.detach().neg().tolist() == pytest.approx([1e-4 / (1e-4 + 1e-12)] * 4, rel=1e-12)
    assert b.detach().neg().tolist() == pytest.approx([0.5] * 4, rel=1e-12)


# --------------------------------------------------------------------------- contracts


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(lr=-1.0), "lr"),
        (dict(betas=(1.0, 0.9)), "betas[0]"),
        (dict(betas=(0.9, -0.1)), "betas[1]"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(a=0.0), "a"),
        (dict(b=-1.0), "b"),
        (dict(lr=torch.ones(2)), "lr"),
    ],
)
def test_adam_atan2_rejects_bad_hyperparameters(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{re.escape(field)}:"):
        AdamAtan2([torch.nn.Parameter(torch.zeros(2))], **kwargs)


@pytest.mark.parametrize(
    "kwargs,field", [(dict(eps=-1e-9), "eps"), (dict(min_param_rms=0.0), "min_param_rms")]
)
def test_adam_ps_rejects_bad_hyperparameters(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        AdamPS([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_sparse_gradients_are_refused():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        AdamAtan2(emb.parameters()).step()


def test_optim_py_is_standalone():
    """Bundled verbatim into the emitted train.py: stdlib + torch imports only, no
    __future__ import, nothing executed at import but definitions."""
    tree = ast.parse(OPTIM_PY.read_text())
    allowed = {"math", "typing", "torch", "torch.optim"}
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert {alias.name for alias in node.names} <= allowed
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module in allowed
        else:
            assert isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            ), ast.dump(node)[:80]
    code = (
        "import sys, torch\nns = {}\nexec(open(sys.argv[1]).read(), ns)\n"
        "assert 'scaleadvise' not in sys.modules\n"
        "p = torch.nn.Parameter(torch.ones(3)); p.grad = torch.ones(3)\n"
        "ns['AdamAtan2']([p], lr=0.1, a=4 / 3.141592653589793).step()\n"
        "print(p.tolist())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(OPTIM_PY)],
        capture_output=True,
        text=True,
        cwd=OPTIM_PY.parent.parent.parent.parent,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert [float(x) for x in out.stdout.strip()[1:-1].split(",")] == pytest.approx(
        [0.9] * 3, rel=1e-6
    )
