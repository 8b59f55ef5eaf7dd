"""The numerical pieces of `fit`: power laws, optima per width, bootstrap (known answers)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleadvise.analysis.fit_optima import bootstrap_grids, build_grid, locate_optima
from scaleadvise.analysis.powerlaw import batched_slopes, fit_loss_law, fit_power_law, grid_offsets


# --------------------------------------------------------------------------- power laws


@given(k=st.floats(-2, 2), log2_c=st.floats(-20, 5), n=st.integers(2, 12))
def test_power_law_exact_recovery(k, log2_c, n):
    w = 2.0 ** np.arange(7, 7 + n)
    fit = fit_power_law(w, 2.0 ** (log2_c + k * np.log2(w)))
    assert fit.k == pytest.approx(k, abs=1e-9)
    assert fit.log2_c == pytest.approx(log2_c, abs=1e-7)
    assert fit.predict(1e5) == pytest.approx(2.0 ** (log2_c + k * np.log2(1e5)), rel=1e-6)


def test_power_law_standard_error_matches_textbook():
    # y = x + e with residuals (+1, -1, -1, +1) about the line: s^2 = 4/2, Sxx = 5 -> se = sqrt(2/5).
    x = 2.0 ** np.array([1.0, 2.0, 3.0, 4.0])
    y = 2.0 ** (np.log2(x) + np.array([1.0, -1.0, -1.0, 1.0]))
    fit = fit_power_law(x, y)
    assert fit.k == pytest.approx(1.0)
    assert fit.k_se == pytest.approx(np.sqrt(2 / 5))
    lo, hi = fit.k_interval(0.95)
    assert hi - 1.0 == pytest.approx(4.302652729911275 * np.sqrt(2 / 5))  # t(0.975, 2)
    assert fit_power_law(x[:2], y[:2]).k_interval() is None  # no residual dof
    assert fit_power_law(x[:1], y[:1]) is None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=6, max_size=6), st.integers(0, 2**31 - 1))
def test_batched_slopes_agree_with_single_fits(noise, seed):
    rng = np.random.default_rng(seed)
    lx = np.log2(2.0 ** np.arange(7, 13))
    y = rng.normal(size=(5, 6)) + np.asarray(noise)
    y[rng.random((5, 6)) < 0.25] = np.nan
    k, pred = batched_slopes(lx, y, target_log2_x=14.0)
    for row, kb, pb in zip(y, k, pred):
        ok = np.isfinite(row)
        fit = fit_power_law(2.0 ** lx[ok], 2.0 ** row[ok]) if ok.sum() >= 2 else None
        if fit is None:
            assert np.isnan(kb)
        else:
            assert kb == pytest.approx(fit.k, abs=1e-9)
            assert pb == pytest.approx(fit.log2_c + fit.k * 14.0, abs=1e-8)


def test_grid_offsets_bound_every_offset_pattern():
    rng = np.random.default_rng(1)
    lx = np.arange(7.0, 12.0)
    lo, hi = np.zeros(5), np.array([0.5, 0.25, 0.5, 0.5, 1.0])
    (k_lo, k_hi), (p_lo, p_hi) = grid_offsets(lx, lo, hi, target_log2_x=14.0)
    delta = rng.uniform(lo, hi, size=(100_000, 5))
    k, pred = batched_slopes(lx, delta, 14.0)
    assert k_lo <= k.min() and k.max() <= k_hi and p_lo <= pred.min() and pred.max() <= p_hi
    # The bound is attained: offsets at the box corner that tilts the line most.
    dx = lx - lx.mean()
    corner = np.where(dx > 0, hi, lo)
    assert batched_slopes(lx, corner[None])[0][0] == pytest.approx(k_hi)
    assert k_lo == pytest.approx(batched_slopes(lx, np.where(dx > 0, lo, hi)[None])[0][0])


def test_loss_law_recovers_chinchilla_form_and_ignores_an_outlier():
    n = 2.0 ** np.arange(7, 14)
    loss = 1.8 + 35.0 * n**-0.55
    law = fit_loss_law(n, loss)
    assert (law.e, law.a, law.alpha) == pytest.approx((1.8, 35.0, 0.55), rel=1e-3)
    spoiled = loss.copy()
    spoiled[3] *= 1.3  # one bad run: the Huber loss keeps it from dragging the fit
    robust = fit_loss_law(n, spoiled)
    assert robust.predict(16384) == pytest.approx(1.8 + 35.0 * 16384**-0.55, rel=0.01)
    assert fit_loss_law(n[:2], loss[:2]) is None


def test_loss_law_reaches_scipys_huber_minimum():
    # Cross-check the batched Levenberg-Marquardt/IRLS minimiser against scipy's
    # trust-region least squares with the same Huber loss, on noisy minima.
    from scipy.optimize import least_squares
    from scipy.special import logsumexp

    rng = np.random.default_rng(4)
    n = 2.0 ** np.arange(7, 13)
    y = (2.1 + 18.0 * n**-0.45) * np.exp(rng.normal(0, 0.004, n.size))
    law = fit_loss_law(n, y)

    def resid(t):
        return logsumexp(np.stack([t[0] - t[2] * np.log(n), np.full(n.size, t[1])]), axis=0) - np.log(y)

    def huber_cost(t):
        r = np.abs(resid(t))
        return np.where(r <= 1e-3, 0.5 * r * r, 1e-3 * (r - 0.5e-3)).sum()

    ours = huber_cost(np.log([law.a, law.e, np.exp(law.alpha)]))
    ref = min(least_squares(resid, x0, loss="huber", f_scale=1e-3).cost * 1.0
              for x0 in ([np.log(18.0), np.log(2.0), 0.5], [np.log(5.0), np.log(1.0), 0.2]))
    assert ours <= ref * (1 + 1e-6) + 1e-12


# --------------------------------------------------------------------------- optima


def _parabola_grid(vertex: np.ndarray, curvature: float, lrs_log2: np.ndarray) -> np.ndarray:
    return 3.0 + curvature * (lrs_log2[None, :] - vertex[:, None]) ** 2


@settings(max_examples=50, deadline=None)
@given(shift=st.floats(-0.49, 0.49), curvature=st.floats(0.01, 1.0), step=st.sampled_from([0.25, 0.5, 1.0]))
def test_refined_optimum_is_the_exact_vertex_off_the_grid(shift, curvature, step):
    x = np.arange(-16, -2 + 1e-9, step)
    vertex = np.array([-10.0, -9.0, -8.0]) + shift * step
    loss = _parabola_grid(vertex, curvature, x)
    opt = locate_optima(x, loss, np.ones_like(loss, bool))
    assert opt.refined.all()
    np.testing.assert_allclose(opt.log2_lr_refined, vertex, atol=1e-7)
    np.testing.assert_allclose(opt.loss_refined, 3.0, atol=1e-9)
    assert np.all(np.abs(x[opt.best] - vertex) <= step / 2 + 1e-12)  # the paper's best-of-sweep


def test_instability_heuristic_c1():
    # Optimum at 2^-8 (loss 3.0). Above it: 3.3 (10%, stable), 3.5 (16.7%, stable),
    # 3.7 (23% > 20%: unstable), then a lucky 3.1 that must not count, then NaN.
    x = np.arange(-11.0, -2.0)
    loss = np.array([[3.9, 3.4, 3.1, 3.0, 3.3, 3.5, 3.7, 3.1, np.nan]])
    opt = locate_optima(x, loss, np.ones_like(loss, bool))
    assert x[opt.best[0]] == -8 and x[opt.max_stable[0]] == -6 and not opt.censored[0]
    # Below the optimum nothing is unstable, however bad; a sweep that never
    # crosses the threshold gives a lower bound (censored).
    opt2 = locate_optima(x[:6], loss[:, :6], np.ones((1, 6), bool))
    assert x[opt2.max_stable[0]] == -6 and opt2.censored[0]
    # NaN right above the optimum: max stable is the optimum, no parabola possible.
    loss3 = np.array([[3.9, 3.4, 3.1, 3.0, np.nan, 3.2, 3.3, 3.4, 3.5]])
    opt3 = locate_optima(x, loss3, np.ones_like(loss3, bool))
    assert x[opt3.max_stable[0]] == -8 and not opt3.refined[0] and opt3.log2_lr_refined[0] == -8


def test_all_diverged_width_is_not_found():
    x = np.arange(-10.0, -5.0)
    loss = np.array([[3.2, 3.1, 3.0, 3.1, 3.2], [np.nan] * 5])
    opt = locate_optima(x, loss, np.ones_like(loss, bool))
    assert opt.found.tolist() == [True, False]
    assert np.isnan(opt.log2_lr_refined[1])


def test_batched_optima_equal_one_at_a_time():
    rng = np.random.default_rng(3)
    x = np.arange(-14, -2, 0.5)
    loss = _parabola_grid(np.array([-9.3, -8.1, -7.7]), 0.1, x)[None] + rng.normal(0, 0.01, (7, 3, x.size))
    loss[:, :, -3:] = np.nan
    present = np.ones(loss.shape[1:], bool)
    batched = locate_optima(x, loss, present)
    for b in range(7):
        single = locate_optima(x, loss[b], present)
        np.testing.assert_array_equal(batched.best[b], single.best)
        np.testing.assert_allclose(batched.log2_lr_refined[b], single.log2_lr_refined)
        np.testing.assert_array_equal(batched.max_stable[b], single.max_stable)


# --------------------------------------------------------------------------- grid and bootstrap


def test_build_grid_averages_seeds_and_counts_divergence():
    width = np.array([128, 128, 128, 256, 256, 256])
    lr = np.array([0.1, 0.1, 0.2, 0.1, 0.2, 0.2])
    loss = np.array([3.0, 3.2, 2.9, 2.5, np.inf, 2.7])
    g = build_grid(width, lr, loss)
    assert g.widths.tolist() == [128, 256] and g.lrs.tolist() == [0.1, 0.2]
    assert g.loss[0].tolist() == pytest.approx([3.1, 2.9])
    assert g.std[0, 0] == pytest.approx(np.std([3.0, 3.2], ddof=1)) and np.isnan(g.std[0, 1])
    assert g.loss[1, 0] == 2.5 and np.isnan(g.loss[1, 1])  # one diverged seed: the LR is unstable
    assert g.diverged.tolist() == [[0, 0], [0, 1]] and g.runs.tolist() == [[2, 1], [1, 2]]


def test_bootstrap_resamples_within_cells():
    rng = np.random.default_rng(0)
    width = np.repeat([128, 256], 50)
    lr = np.tile(np.repeat([0.1, 0.2], 25), 2)
    loss = rng.normal(3.0, 0.1, 100)
    g = build_grid(width, lr, loss)
    reps = np.concatenate(list(bootstrap_grids(g, 400, np.random.default_rng(1), chunk_elems=1000)))
    assert reps.shape == (400, 2, 2)
    # Each replicate cell is a mean of 25 draws from that cell: centred on the cell mean
    # with the standard error sd/sqrt(25).
    np.testing.assert_allclose(reps.mean(0), g.loss, atol=0.01)
    np.testing.assert_allclose(reps.std(0), g.std * np.sqrt(24 / 25) / 5, rtol=0.15)
    single = build_grid(np.array([128, 256]), np.array([0.1, 0.1]), np.array([3.0, 2.0]))
    same = next(bootstrap_grids(single, 3, np.random.default_rng(0)))
    assert (same == single.loss).all()  # nothing to resample with one run per cell


def test_bootstrap_of_large_cells_uses_the_resampled_mean_limit():
    rng = np.random.default_rng(0)
    m = 200
    width = np.repeat([128, 256], m)
    lr = np.full(2 * m, 0.1)
    loss = rng.normal(3.0, 0.2, 2 * m)
    loss[m:m + 2] = np.nan  # 1% of the second cell's runs diverged
    g = build_grid(width, lr, loss)
    reps = np.concatenate(list(bootstrap_grids(g, 4000, np.random.default_rng(1))))[:, :, 0]
    first = reps[:, 0]
    assert first.mean() == pytest.approx(loss[:m].mean(), abs=0.003)
    assert first.std() == pytest.approx(loss[:m].std() / np.sqrt(m), rel=0.06)
    # A replicate is diverged when it draws a diverged run: P = 1 - (1 - 2/m)^m ~ 0.866.
    assert np.isnan(reps[:, 1]).mean() == pytest.approx(1 - (1 - 2 / m) ** m, abs=0.02)
