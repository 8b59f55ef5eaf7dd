"""Epsilon underflow predictions (paper §4.3, App. F) on tables with known exponents."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleadvise.analysis import epsilon as E
from scaleadvise.errors import UserError

BASE = 1024.0


def exact_samples(name: str, g: float, at_base: float, widths=(128, 256, 512, 1024), steps=(1,)) -> E.LayerSamples:
    s = E.LayerSamples(name, E.layer_type_of(name, "test"))
    for n in widths:
        for step in steps:
            s.add(float(n), at_base * (n / BASE) ** -g, None, run=(), step=float(step))  # one run per width
    return s


def ctx(**kw) -> E.Context:
    base = dict(eps=1e-8, safe_ratio=0.01, target_width=16384.0, base_width=BASE)
    base.update(kw)
    return E.Context(**base)


# ------------------------------------------------------------------ analytic crossing widths


@settings(max_examples=60, deadline=None)
@given(
    g=st.floats(0.25, 2.0),
    log10_s=st.floats(-9, -3),
    log10_eps=st.floats(-15, -6),
    ratio=st.sampled_from([0.001, 0.01, 0.1, 1.0, 3.0]),
)
def test_crossing_width_matches_closed_form(g, log10_s, log10_eps, ratio):
    """s(n) = S·(n/b)^-g reaches eps/ratio at n* = b·(S·ratio/eps)^(1/g)."""
    s_base, eps = 10.0**log10_s, 10.0**log10_eps
    samples = exact_samples("hidden", g, s_base)
    law = E.fit_gradient_law(samples.widths, samples.grad_rms)
    assert law.g == pytest.approx(g, rel=1e-9, abs=1e-9)
    expected = BASE * (s_base * ratio / eps) ** (1.0 / g)
    got = E.crossing_width(law, eps, ratio)
    if expected < E.MAX_WIDTH * 0.999:
        assert got == pytest.approx(expected, rel=1e-8)
        assert E.eps_ratio(law, eps, got) == pytest.approx(ratio, rel=1e-8)
    elif expected > E.MAX_WIDTH * 1.001:  # past any trainable width: reported as "any width"
        assert got == math.inf


def test_lr_factor_and_half_at_full_crossing():
    law = E.fit_gradient_law([256, 1024], [4e-7, 1e-7])  # g = 1
    assert law.g == pytest.approx(1.0)
    n_full = E.crossing_width(law, 1e-8, 1.0)
    assert n_full == pytest.approx(1024 * 10)
    assert E.lr_factor(E.eps_ratio(law, 1e-8, n_full)) == pytest.approx(0.5)  # s/(s+eps) with eps = s
    assert E.lr_factor(0.01) == pytest.approx(1 / 1.01)


def test_non_shrinking_gradients_never_cross():
    flat = E.GradientLaw(g=0.0, log_c=math.log(1e-6))
    assert E.crossing_width(flat, 1e-8, 0.1) == math.inf  # eps stays at 1% of s at every width
    assert E.crossing_width(flat, 1e-8, 0.001) == 0.0  # eps is above 0.1% of s at every width
    growing = E.GradientLaw(g=-0.5, log_c=math.log(1e-6))
    assert E.crossing_width(growing, 1e-8, 1.0) == math.inf


# ------------------------------------------------------------------ dtypes: v = g^2 underflow


def test_smallest_normal_numbers_are_the_dtype_facts():
    import numpy as np

    assert E.SMALLEST_NORMAL["fp32"] == float(np.finfo(np.float32).tiny)
    assert E.SMALLEST_NORMAL["fp16"] == float(np.finfo(np.float16).tiny) == pytest.approx(6.1e-5, rel=1e-3)
    torch = pytest.importorskip("torch")
    assert E.SMALLEST_NORMAL["bf16"] == torch.finfo(torch.bfloat16).tiny == torch.finfo(torch.float32).tiny


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_v_underflow_width_closed_form(dtype):
    law = E.fit_gradient_law([512, 1024, 2048], [3e-6 * 2**1.5, 3e-6, 3e-6 * 2**-1.5])  # g = 1.5
    tiny = E.SMALLEST_NORMAL[dtype]
    n = E.v_underflow_width(law, dtype)
    assert n == pytest.approx(BASE * (3e-6 / math.sqrt(tiny)) ** (1 / 1.5), rel=1e-9)
    assert law.at(n) ** 2 == pytest.approx(tiny, rel=1e-9)
    # fp16 state: v = (3e-6)^2 is already far below 6.1e-5 at every measured width;
    # fp32 and bf16 (same exponent range) only at an astronomically large width.
    assert n < 512 if dtype == "fp16" else n > 1e11


# ------------------------------------------------------------------ the paper's ranking (§4.3)


def test_ranking_mean_field_first_then_ntk_mup_then_sp():
    """Equal gradient scale at the base width; theory exponents alone order the crossings.

    §4.3: MFP hidden gradients scale like n^-1.5 (the steepest), so MFP meets eps at the
    smallest width; NTK and muP (hidden n^-1) tie; SP (n^-1/2) is last.
    """
    widths = {}
    for param in ("stp", "ntk", "mup", "mfp"):
        g = E.theory_gradient_exponents(param)
        laws = {t: E.anchored_gradient_law(BASE, [1e-6], g[t]) for t in g}
        widths[param] = min(E.crossing_width(law, 1e-8, 0.1) for law in laws.values())
    assert E.theory_gradient_exponents("mfp")["hidden"] == 1.5
    assert widths["ntk"] == pytest.approx(widths["mup"])
    assert widths["mfp"] < widths["ntk"] and widths["mup"] < widths["stp"]
    assert widths["mfp"] == pytest.approx(BASE * 10 ** (1 / 1.5))
    assert widths["stp"] == pytest.approx(BASE * 10 ** 2)


# ------------------------------------------------------------------ fits and intervals


def old_step_replicate_interval(widths, values, replicates, confidence=0.95):
    """The interval of main before issue 10: every (step, seed) a replicate, t over their slopes."""
    from scipy.stats import t as student_t

    slopes = []
    for rep in sorted(set(replicates)):
        pts = [(math.log(w), math.log(v)) for w, v, r in zip(widths, values, replicates) if r == rep]
        x = [p[0] for p in pts]
        y = [p[1] for p in pts]
        xm, ym = sum(x) / len(x), sum(y) / len(y)
        slopes.append(-sum((a - xm) * (b - ym) for a, b in zip(x, y)) / sum((a - xm) ** 2 for a in x))
    k = len(slopes)
    g = sum(slopes) / k
    sd = math.sqrt(sum((s - g) ** 2 for s in slopes) / (k - 1))
    half = float(student_t.ppf(0.5 + confidence / 2, k - 1)) * sd / math.sqrt(k)
    return g - half, g + half


def correlated_runs(rng, g=1.3, widths=(16, 32, 64), seeds=(0, 1), steps=range(9), run_sd=0.1, step_sd=0.03):
    """Rows of runs whose checkpoints share a run effect (init and data order): correlated within a run."""
    w, v, run, step = [], [], [], []
    for n in widths:
        for seed in seeds:
            u = rng.normal(0, run_sd)
            for t in steps:
                w.append(float(n))
                v.append(1e-3 * (n / 64) ** -g * math.exp(u + rng.normal(0, step_sd)))
                run.append((seed,))
                step.append(t)
    return w, v, run, step


def test_run_clustered_interval_covers_where_the_checkpoint_interval_does_not(tmp_path):
    """Coverage simulation (issue 10, item 8), through grads.csv as the tool reads it:
    checkpoints of a run move together, so counting (step, seed) pairs as replicates
    under-covers; one point per run (width × seed) covers at the nominal 95%."""
    import csv

    import numpy as np

    rng = np.random.default_rng(10)
    trials, g = 300, 1.3
    new = old = 0
    path = tmp_path / "grads.csv"
    for _ in range(trials):
        w, v, run, step = correlated_runs(rng, g)
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["width", "layer", "step", "seed", "grad_rms"])
            out.writerows([n, "blocks.0.mlp.up", t, r[0], x] for n, x, r, t in zip(w, v, run, step))
        rep = E.analyze(E.load_gradients(str(path)), ctx(param="mfp", target_width=256.0))
        lo, hi = rep["layers"]["blocks.0.mlp.up"]["g_measured_ci"]
        new += lo <= g <= hi
        lo, hi = old_step_replicate_interval(w, v, [(t, r) for t, r in zip(step, run)])
        old += lo <= g <= hi
    assert 0.92 <= new / trials <= 0.98, new / trials
    assert old / trials < 0.6, old / trials


def test_issue_interval_reproduced_on_the_example_data():
    """blocks.0.mlp.up of examples/epsilon (widths 16-64, two seeds, nine checkpoints):
    [1.22, 1.38] with checkpoints as replicates, [1.12, 1.48] with one point per run."""
    from pathlib import Path

    samples = E.load_gradients(str(Path(__file__).parent / "data" / "issue10_mlp_up_grads.csv"))
    s = samples["blocks.0.mlp.up"]
    assert s.n_runs() == 6
    law = E.fit_gradient_law(s.widths, s.scale, s.run)
    assert law.g == pytest.approx(1.2996, abs=1e-3)
    assert law.g_ci == pytest.approx((1.1157, 1.4834), abs=1e-3)
    old = old_step_replicate_interval(s.widths, s.scale, list(zip(s.step, s.run)))
    assert old == pytest.approx((1.220, 1.379), abs=2e-3)


def test_noise_free_runs_give_a_zero_width_interval():
    s = exact_samples("blocks.0.mlp.up", 1.5, 3e-7, steps=(10, 20, 30))
    law = E.fit_gradient_law(s.widths, s.grad_rms, s.run)
    assert law.g == pytest.approx(1.5) and law.g_ci[1] - law.g_ci[0] == pytest.approx(0, abs=1e-9)


def test_checkpoints_never_add_degrees_of_freedom():
    """Two widths, one run each: no interval however many checkpoints (df = runs - 2 = 0)."""
    s = exact_samples("blocks.0.mlp.up", 1.5, 3e-7, widths=(256, 1024), steps=range(50))
    assert E.fit_gradient_law(s.widths, s.grad_rms, s.run).g_ci is None
    assert E.fit_gradient_law(s.widths, s.grad_rms, None).g_ci is not None  # rows as runs: the old reading


def test_two_points_have_no_interval():
    assert E.fit_gradient_law([256, 1024], [2e-6, 1e-6]).g_ci is None


# ------------------------------------------------------------------ analysis and recommendations


def test_analyze_reports_measured_and_theory_exponents():
    samples = {"blocks.0.mlp.up": exact_samples("blocks.0.mlp.up", 1.5, 3e-7, steps=(1, 2, 3)),
               "readout": exact_samples("readout", 1.0, 1e-5, steps=(1, 2, 3))}
    rep = E.analyze(samples, ctx(param="mfp", eps=1e-9))
    up = rep["layers"]["blocks.0.mlp.up"]
    assert up["layer_type"] == "hidden" and up["g_theory"] == 1.5
    assert up["g_measured"] == pytest.approx(1.5) and up["g_agrees_with_theory"] is True
    assert up["underflow_width"]["0.01"] == pytest.approx(BASE * (3e-7 * 0.01 / 1e-9) ** (1 / 1.5))
    assert set(up["v_underflow_width"]) == {"fp32", "bf16", "fp16"}
    assert rep["earliest_underflow_width"]["1"] == pytest.approx(BASE * 300 ** (1 / 1.5))


def init_then_training(g_init: float, g_train: float, widths=(16, 32, 64, 128), seeds=(0, 1, 2)) -> E.LayerSamples:
    """grad_rms with exponent g_init at step 1 (the gradient at W_0) and g_train at steps 25..200."""
    import numpy as np

    rng = np.random.default_rng(3)
    s = E.LayerSamples("blocks.0.mlp.up", "hidden")
    for n in widths:
        for seed in seeds:
            u = rng.normal(0, 0.03)
            s.add(float(n), 1e-3 * (n / 64) ** -g_init * math.exp(u), None, run=(seed,), step=1.0)
            for t in range(25, 201, 25):
                s.add(float(n), 1e-4 * (n / 64) ** -g_train * math.exp(u + rng.normal(0, 0.02)), None,
                      run=(seed,), step=float(t))
    return s


def test_theory_is_compared_at_the_first_step_not_averaged_over_training():
    """Table 1's g is the gradient at initialisation (B.7); during training the readout can
    move it (B.13). MFP hidden: 1.5 at step 1, 1.28 later (as examples/epsilon measured)."""
    s = init_then_training(1.5, 1.28)
    rep = E.analyze({"blocks.0.mlp.up": s}, ctx(param="mfp"))
    up = rep["layers"]["blocks.0.mlp.up"]
    assert up["early_steps"] == [1.0] and up["g_compared_at"] == "early"
    assert up["g_early"] == pytest.approx(1.5, abs=0.05)
    assert up["g_early_ci"][0] <= 1.5 <= up["g_early_ci"][1]
    assert up["g_agrees_with_theory"] is True
    assert up["g_measured"] < 1.45 and up["g_measured_ci"][1] < 1.5  # the training average would disagree
    assert any("during training" in n for n in rep["notes"])
    off = E.analyze({"blocks.0.mlp.up": init_then_training(1.0, 1.5)}, ctx(param="mfp"))
    assert off["layers"]["blocks.0.mlp.up"]["g_agrees_with_theory"] is False  # wrong at init, right later
    assert any("at step(s) 1" in n and "disagrees" in n for n in off["notes"])


def test_early_step_window_and_missing_steps():
    s = init_then_training(1.5, 1.28)
    rows = s.early_rows(50.0)
    assert {s.step[i] for i in rows} == {1.0, 25.0, 50.0}
    law, steps = E.early_law(s, 50.0, 0.95)
    assert steps == [1.0, 25.0, 50.0] and law is not None
    bare = E.LayerSamples("hidden", "hidden")
    for n in (256.0, 512.0, 1024.0):
        bare.add(n, 1e-6 * (n / 1024) ** -1.5)
    assert bare.early_rows() is None
    rep = E.analyze({"hidden": bare}, ctx(param="mfp"))
    assert rep["layers"]["hidden"]["g_compared_at"] == "all rows"
    assert any("no step column" in n for n in rep["notes"])


def test_disagreement_with_theory_is_flagged():
    samples = {"blocks.0.mlp.up": exact_samples("blocks.0.mlp.up", 1.0, 3e-7, steps=(1, 2))}
    for s in samples.values():  # a little noise so the interval has width
        s.grad_rms = [v * (1.01 if i % 2 else 0.99) for i, v in enumerate(s.grad_rms)]
    rep = E.analyze(samples, ctx(param="mfp"))
    assert rep["layers"]["blocks.0.mlp.up"]["g_agrees_with_theory"] is False
    assert any("disagrees" in n for n in rep["notes"])


def test_one_width_uses_theory_exponent_with_param():
    s = E.LayerSamples("hidden", "hidden")
    s.add(1024.0, 3e-7)
    rep = E.analyze({"hidden": s}, ctx(param="mfp"))
    L = rep["layers"]["hidden"]
    assert L["exponent_source"] == "theory" and L["g_used"] == 1.5 and L["g_measured"] is None
    assert L["underflow_width"]["1"] == pytest.approx(1024 * 30 ** (2 / 3))
    assert any("one width" in n for n in rep["notes"])


def test_one_width_without_param_says_what_to_pass():
    s = E.LayerSamples("hidden", "hidden")
    s.add(1024.0, 3e-7)
    with pytest.raises(UserError, match="--param"):
        E.analyze({"hidden": s}, ctx())


def test_keep_when_safe_at_target():
    law = E.anchored_gradient_law(BASE, [1e-3], 0.5)
    rec = E.recommend({"x": law}, None, ctx())
    assert rec.action == "keep" and rec.eps == 1e-8
    assert rec.safe_up_to_width == pytest.approx(BASE * (1e-3 * 0.01 / 1e-8) ** 2)


def test_smaller_constant_is_the_largest_power_of_ten_that_is_safe():
    laws = {"a": E.anchored_gradient_law(BASE, [3e-7], 1.5), "b": E.anchored_gradient_law(BASE, [1e-5], 1.0)}
    rec = E.recommend(laws, None, ctx(target_width=16384.0))
    s_min = 3e-7 * 16 ** -1.5
    assert rec.action == "smaller-constant"
    assert rec.eps == pytest.approx(10 ** math.floor(math.log10(0.01 * s_min)))
    assert all(E.eps_ratio(law, rec.eps, 16384) <= 0.01 for law in laws.values())


def test_per_layer_eps_keeps_the_measured_ratio_when_no_constant_is_large_enough():
    g_th = E.theory_gradient_exponents("mfp")
    laws = {"blocks.0.mlp.up": E.anchored_gradient_law(BASE, [1e-11], g_th["hidden"]),
            "readout": E.anchored_gradient_law(BASE, [1e-8], g_th["readout"])}
    c = ctx(eps=1e-13, target_width=65536.0, param="mfp")
    rec = E.recommend(laws, {"blocks.0.mlp.up": 1.5, "readout": 1.0}, c)
    assert rec.action == "per-layer"
    # A constant would need 0.01 · 1e-11 · 64^-1.5 ≈ 2e-16 < 1e-15. Measured g == theory:
    # the ratio is constant, X = min(eps, safe · min s(b)) = min(1e-13, 1e-13).
    assert rec.base_eps == pytest.approx(1e-13)
    assert "--eps per-layer --base-eps 1e-13" in rec.command and "--param mfp" in rec.command
    for name, law in laws.items():
        g = 1.5 if "mlp" in name else 1.0
        for n in (BASE, 65536.0):
            assert rec.base_eps * (n / BASE) ** -g / law.at(n) <= 0.01 + 1e-12


def test_per_layer_base_eps_covers_drift_when_measurement_disagrees():
    law = E.anchored_gradient_law(BASE, [1e-7], 2.0)  # steeper than the theory's 1.5
    x = E.per_layer_base_eps({"h": law}, {"h": 1.5}, 1e-6, 0.01, BASE, 16384.0)
    ratios = [x * (n / BASE) ** -1.5 / law.at(n) for n in (BASE, 4096.0, 16384.0)]
    assert max(ratios) == pytest.approx(0.01)  # binds at the target, where the drift is largest


def test_adam_atan2_without_param_or_when_v_underflows_fp32():
    laws = {"h": E.anchored_gradient_law(BASE, [1e-12], 1.5)}
    assert E.recommend(laws, None, ctx()).action == "adam-atan2"
    # sqrt(v) = 1e-18 at 1024 falls below sqrt(2^-126) ≈ 1.08e-19 before 16384 (g = 1).
    tiny = E.recommend({"h": E.anchored_gradient_law(BASE, [1e-18], 1.0)}, {"h": 1.0}, ctx(param="stp"))
    assert tiny.action == "adam-atan2" and "fp32" in tiny.reason


def test_fp16_state_underflow_asks_for_fp32_state_first():
    rec = E.recommend({"h": E.anchored_gradient_law(BASE, [1e-4], 0.5)}, None, ctx(state_dtype="fp16"))
    assert rec.action == "keep" and rec.reason.startswith("keep the optimizer state in fp32")


def test_per_layer_eps_is_safe_at_every_width_when_theory_holds():
    laws = {"h": E.anchored_gradient_law(BASE, [1e-11], 1.5)}
    rec = E.recommend(laws, {"h": 1.5}, ctx(eps=1e-13, target_width=65536.0, param="mfp"))
    assert rec.action == "per-layer" and rec.safe_up_to_width == math.inf
    steeper = {"h": E.anchored_gradient_law(BASE, [1e-11], 2.0)}  # drifts as (n/b)^0.5 past the theory
    rec = E.recommend(steeper, {"h": 1.5}, ctx(eps=1e-13, target_width=65536.0, param="mfp"))
    x = rec.base_eps
    assert rec.safe_up_to_width == pytest.approx(BASE * (0.01 * 1e-11 / x) ** 2, rel=1e-9)
    assert rec.safe_up_to_width >= 65536.0


def test_floor_one_digit():
    assert E.floor_one_digit(3.7e-12) == 3e-12
    assert E.floor_one_digit(1e-13) == 1e-13
    assert E.floor_one_digit(9.99e-9) == 9e-9


@pytest.mark.parametrize("optim", ["sgd", "adam-atan2", "lion", "sign-sgd"])
def test_optimizers_without_eps_are_refused(optim):
    with pytest.raises(UserError, match="--optim"):
        E.check_optimizer(optim)


# ------------------------------------------------------------------ Adafactor: eps is added to g²


def test_adafactor_compares_eps_with_v_and_scales_per_layer_eps_with_2g():
    """Adafactor's eps sits inside v = β2 v + (1-β2)(g² + eps) (Shazeer & Stern 2018): it meets
    s² ~ n^-2g, so the crossing solves eps = r·s(n)², the LR factor is 1/sqrt(1 + eps/s²) and a
    per-layer eps must scale as (n/b)^-2g (issue 10, item 6)."""
    assert E.check_optimizer("adafactor") == "adafactor"
    law = E.anchored_gradient_law(BASE, [1e-12], 1.5)
    c = ctx(eps=1e-30, optim="adafactor", param="mfp", target_width=65536.0, min_eps=1e-30)
    assert c.power == 2
    # s(n)² = 1e-24 (n/1024)^-3 reaches eps/r = 1e-28 (r = 0.01) at n = 1024 · 1e4^(1/3)
    assert E.crossing_width(law, 1e-30, 0.01, power=2) == pytest.approx(BASE * 1e4 ** (1 / 3))
    assert E.eps_ratio(law, 1e-30, BASE, power=2) == pytest.approx(1e-6)
    assert E.lr_factor(3.0, power=2) == pytest.approx(0.5)  # 1/sqrt(1 + 3)
    rec = E.recommend({"h": law}, {"h": 1.5}, c)
    # A constant would have to be 0.01 · s(65536)² = 0.01 · 1e-24 · 64^-3 ≈ 3.8e-32 < 1e-30: per-layer.
    assert rec.action == "per-layer"
    assert rec.base_eps == pytest.approx(1e-30)  # ratio at the base width 1e-6 < 1%: keep eps there
    for n in (BASE, 8192.0, 65536.0):  # eps_l = base·(n/b)^(-2g) keeps eps/s² constant
        eps_l = rec.base_eps * (n / BASE) ** (-2 * 1.5)
        assert eps_l / law.at(n) ** 2 == pytest.approx(1e-6, rel=1e-9)
        wrong = rec.base_eps * (n / BASE) ** -1.5  # the Adam rule (n/b)^-g drifts as (n/b)^1.5
        assert wrong / law.at(n) ** 2 == pytest.approx(1e-6 * (n / BASE) ** 1.5, rel=1e-9)
    assert "-2·g_l" in rec.reason and "--optim adafactor" in rec.command


def test_adafactor_per_layer_base_eps_uses_squared_scale():
    law = E.anchored_gradient_law(BASE, [1e-10], 1.0)
    # keep = min(eps/s(b)², safe) = min(1e-25/1e-20, 0.01) = 1e-5; X = 1e-5 · s(b)² = 1e-25
    assert E.per_layer_base_eps({"h": law}, {"h": 1.0}, 1e-25, 0.01, BASE, 4096.0, power=2) == pytest.approx(1e-25)
    steeper = E.anchored_gradient_law(BASE, [1e-10], 1.25)
    x = E.per_layer_base_eps({"h": steeper}, {"h": 1.0}, 1e-20, 0.01, BASE, 4096.0, power=2)
    ratios = [x * (n / BASE) ** -2.0 / steeper.at(n) ** 2 for n in (BASE, 2048.0, 4096.0)]
    assert max(ratios) == pytest.approx(0.01)  # the drift (n/b)^(2·0.25) binds at the target


def test_analyze_reports_the_adafactor_form():
    samples = {"blocks.0.mlp.up": exact_samples("blocks.0.mlp.up", 1.5, 3e-7)}
    rep = E.analyze(samples, ctx(param="mfp", optim="adafactor", eps=1e-30, min_eps=1e-30))
    assert rep["eps_added_to"] == "v = g²" and rep["ratio"] == "eps/v"
    assert rep["per_layer_eps_exponent"] == {"embedding": -2.0, "hidden": -3.0, "readout": -2.0}
    up = rep["layers"]["blocks.0.mlp.up"]
    s_t = 3e-7 * 16**-1.5
    assert up["target"]["eps_ratio"] == pytest.approx(1e-30 / s_t**2)


# ------------------------------------------------------------------ the model level in the overall advice


def test_model_level_keep_overrides_a_per_tensor_change():
    """eps is far above 1% of sqrt(v) on a hidden tensor (per tensor: change eps), but that tensor
    carries 1% of the first-order decrease: the model-level prediction keeps eps, and says so."""
    from scaleadvise.analysis.epsilon_model import Request

    samples = {}
    for name, kind, s_base, d0 in (("blocks.0.mlp.up", "hidden", 1e-7, 1e-5), ("readout", "readout", 1e-3, 1e-3)):
        s = samples[name] = E.LayerSamples(name, kind)
        for n in (256.0, 512.0, 1024.0):
            for seed in (0, 1):
                sv = s_base * (n / BASE) ** -1.0
                s.add(n, sv, sv, run=(seed,), step=1.0)
                s.decrease[-1], s.decrease_no_eps[-1], s.eps_used[-1] = d0 / (1 + 1e-8 / sv), d0, 1e-8
    c = ctx(eps=1e-8, param="mfp", target_width=2048.0)
    plain = E.analyze(samples, c)
    assert plain["recommendation"]["action"] != "keep" and plain["model_prediction"] is None
    rep = E.analyze(samples, c, model=Request(eps=1e-8, base_width=BASE, target_width=2048.0, lost_budget=0.1))
    m = rep["model_prediction"]
    assert m["predictor"] == "decrease" and m["verdict"]["action"] == "keep"
    assert rep["recommendation"]["action"] == "keep" and "model level" in rep["recommendation"]["reason"]
