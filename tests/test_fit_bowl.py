"""The shared-bowl optimum (fit_bowl): derivatives, exact recovery, covariance, model averaging."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scaleadvise.analysis.fit_bowl import SHAPES, Averaged, Estimate, bowl, estimate_optima, resample_optima
from scaleadvise.analysis.fit_optima import _quantile, build_grid, locate_optima
from scaleadvise.analysis.fit_synth import bowl as true_bowl
from scaleadvise.analysis.fit_synth import optimal_lr, synthetic_sweep
from scaleadvise.analysis.powerlaw import scatter_variance

WIDTHS = [128, 256, 512, 1024]
LRS = 2.0 ** np.arange(-16.0, -1.0, 0.5)


@settings(max_examples=80, deadline=None)
@example(shape="exponential", r=0.0, lam=1e-4, d=2.0)  # where the closed form meets its series
@given(shape=st.sampled_from(SHAPES), r=st.floats(-2.5, 2.5), lam=st.floats(-2.5, 2.5), d=st.floats(-2.0, 2.0))
def test_bowl_derivatives_match_finite_differences(shape, r, lam, d):
    p = {"symmetric": [], "kinked": [r], "exponential": [lam]}[shape]
    g, gd, gp = bowl(np.array([d]), shape, p)
    h = 1e-6
    num_d = (bowl(np.array([d + h]), shape, p)[0] - bowl(np.array([d - h]), shape, p)[0]) / (2 * h)
    assert gd[0] == pytest.approx(num_d[0], rel=1e-5, abs=1e-5)  # O(h) at the kink of "kinked"
    assert gp.shape == (1, len(p))
    for j in range(len(p)):
        e = np.eye(len(p))[j] * h
        num_p = (bowl(np.array([d]), shape, np.add(p, e))[0] - bowl(np.array([d]), shape, np.subtract(p, e))[0]) / (2 * h)
        assert gp[0, j] == pytest.approx(num_p[0], rel=1e-4, abs=1e-6)
    assert g[0] >= 0.0  # a bowl: its minimum is at d = 0


def test_bowl_families_are_the_generators_shapes():
    # The kinked family with e^p = 1 + skew is fit_synth's skewed parabola; the
    # exponential family is its exp shape, including the series branch near p = 0.
    d = np.linspace(-2, 2, 41)
    assert bowl(d, "kinked", [np.log(3.0)])[0] == pytest.approx(true_bowl(d, "parabola", 2.0))
    assert bowl(d, "exponential", [1.5])[0] == pytest.approx(true_bowl(d, "exp", 1.5))
    assert bowl(d, "exponential", [1e-5])[0] == pytest.approx(d * d, abs=1e-4)


def _estimate(df):
    g = build_grid(df["width"].to_numpy(), df["lr"].to_numpy(), df["loss"].to_numpy())
    o = locate_optima(g.log2_lr, g.loss, g.present)
    return g, estimate_optima(g.log2_lr, g.loss, g.std, g.runs, o.usable, g.present, o.found, o.best,
                              o.log2_lr_refined)


@pytest.mark.parametrize("shape,skew", [("parabola", 0.0), ("parabola", 2.0), ("exp", 1.5), ("exp", 2.5)])
@pytest.mark.parametrize("phase", [0.0, 0.17, 0.33])
def test_noise_free_optima_are_exact_for_every_shape(shape, skew, phase):
    # The old symmetric parabola put these optima 0.2 octaves low on the skewed bowls.
    lr0 = 2.0 ** (-7.0 + phase)
    df = synthetic_sweep(WIDTHS, LRS, k=-0.6, lr0=lr0, shape=shape, skew=skew, diverge_octaves=3.0, rng=0)
    g, avg = _estimate(df)
    truth = np.log2(optimal_lr(g.widths, k=-0.6, lr0=lr0, n0=128))
    assert avg.fitted.all()
    np.testing.assert_allclose(avg.v, truth, atol=2e-3)
    if skew:  # the data pick their own family (a symmetric bowl is in all three)
        assert avg.shapes[int(np.argmax(avg.weights))] == ("kinked" if shape == "parabola" else "exponential")


def test_covariance_matches_the_dense_inverse():
    # The Schur-complement covariance of the optima equals the v-block of the full
    # (J^T W J)^-1, computed here by finite differences of the residuals.
    df = synthetic_sweep(WIDTHS, LRS, k=-0.6, lr0=2.0**-7.2, skew=2.0, noise=0.01, seeds=2, rng=4)
    g, avg = _estimate(df)
    for fit in avg.fits:
        W = fit.v.size
        rows = avg.rows[avg.fitted]
        win = avg.window[rows]
        wi, j = np.nonzero(win)
        x, y, m = g.log2_lr[j], g.loss[rows][win], g.runs[rows][win].astype(float)

        def resid(theta):
            a, c, v, p = theta[:W], theta[W:2 * W], theta[2 * W:3 * W], theta[3 * W:]
            return y - a[wi] - c[wi] * bowl(x - v[wi], fit.shape, p)[0]

        theta = np.concatenate([fit.a, fit.c, fit.v, fit.p])
        J = np.empty((y.size, theta.size))
        for k in range(theta.size):
            e = np.zeros_like(theta)
            e[k] = 1e-6
            J[:, k] = -(resid(theta + e) - resid(theta - e)) / 2e-6
        dense = np.linalg.inv((J.T * m) @ J)[2 * W:3 * W, 2 * W:3 * W]
        np.testing.assert_allclose(fit.cov_unit, dense, rtol=1e-4, atol=1e-10)


def test_a_width_that_cannot_be_placed_is_left_to_the_grid():
    df = synthetic_sweep(WIDTHS, LRS, k=-0.6, lr0=2.0**-7, noise=0.002, seeds=2, rng=1)
    # Width 1024 keeps only LRs at or below its optimum: its minimum is at the sweep's edge.
    cut = (df["width"] == 1024) & (np.log2(df["lr"]) > np.log2(2.0**-7 * 8**-0.6) - 0.1)
    g, avg = _estimate(df[~cut])
    assert avg.fitted.tolist() == [True, True, True, False]
    j = 3
    assert avg.values[:, j] == pytest.approx(g.log2_lr[np.nanargmin(g.loss[3])])
    # Its error is the grid's resolution (a uniform half step either side) and nothing else.
    assert avg.covs[0, j, j] == pytest.approx(0.5**2 / 12)
    assert avg.covs[0, j, :3] == pytest.approx(np.zeros(3))


def test_model_averaged_se_follows_buckland():
    # Two fits of one value: theta = (1, 2), variances (0.04, 0.09), weights (0.75, 0.25).
    avg = Averaged(rows=np.arange(1), fitted=np.ones(1, bool), shapes=["a", "b"], p=np.zeros(2),
                   values=np.array([[1.0], [2.0]]), covs=np.array([[[0.04]], [[0.09]]]), loss=np.zeros(1),
                   weights=np.array([0.75, 0.25]), dof=np.array([10.0, 12.0]), window=np.zeros((1, 1), bool),
                   noise_from="seeds and residuals", fits=[])
    est = avg.width(0)
    mean = 0.75 * 1 + 0.25 * 2
    assert est == Estimate(value=mean, se=pytest.approx(0.75 * np.sqrt(0.04 + (1 - mean) ** 2)
                                                        + 0.25 * np.sqrt(0.09 + (2 - mean) ** 2)), dof=10.0)
    # Satterthwaite: equal halves from noise (10 dof) and scatter (3 dof) give 2 / (1/10 + 1/3) dof.
    est2 = avg.linear(np.ones(1), extra_var=np.array([0.04, 0.09]), extra_dof=3.0)
    assert est2.dof == pytest.approx((2 * 0.04) ** 2 / (0.04**2 / 10 + 0.04**2 / 3))


def test_scatter_variance_is_zero_on_a_line_and_recovers_known_scatter():
    lx = np.arange(6.0)
    covs = np.tile(0.01 * np.eye(6), (1, 1, 1))
    assert scatter_variance(lx, (0.3 * lx)[None], covs) == pytest.approx([0.0])
    # Pure scatter with no own error: tau2 is the residual variance of the line.
    e = np.array([0.1, -0.2, 0.05, 0.15, -0.1, 0.0])
    resid = e - np.polyval(np.polyfit(lx, e, 1), lx)
    assert scatter_variance(lx, (1.0 + 0.3 * lx + e)[None], np.zeros((1, 6, 6))) == \
        pytest.approx([resid @ resid / 4])
    assert scatter_variance(lx[:2], np.zeros((1, 2)), np.zeros((1, 2, 2))) == pytest.approx([0.0])


def test_per_width_intervals_cover_under_seed_noise():
    """95% intervals of each width's optimum, over 40 noisy skewed sweeps (4 widths each)."""
    rng = np.random.default_rng(11)
    covered = total = 0
    for _ in range(40):
        lr0 = 2.0 ** (-7.0 + rng.uniform(0, 0.5))
        df = synthetic_sweep(WIDTHS, LRS, k=-0.4, lr0=lr0, skew=2.0, noise=0.01, seeds=3, rng=rng)
        g, avg = _estimate(df)
        truth = np.log2(optimal_lr(g.widths[avg.rows], k=-0.4, lr0=lr0, n0=128))
        for i in np.flatnonzero(avg.fitted):
            est = avg.width(i)
            covered += abs(est.value - truth[i]) <= _quantile(0.95, est.dof) * est.se
            total += 1
    assert total >= 150 and 0.88 <= covered / total <= 0.995


def test_resampled_optima_match_the_fit_on_the_observed_grid():
    df = synthetic_sweep(WIDTHS, LRS, k=-0.6, lr0=2.0**-7.3, skew=1.0, noise=0.005, seeds=3, rng=2)
    g, avg = _estimate(df)
    same = resample_optima(avg, g.log2_lr, g.loss[None], g.runs)
    np.testing.assert_allclose(same[0], avg.v, atol=1e-6)  # already at the fitted optimum
