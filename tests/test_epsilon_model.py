"""The model-level epsilon prediction (issue 10, item 9) on synthetic laws with known answers."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from scaleadvise.analysis import epsilon_model as M
from scaleadvise.analysis.epsilon_data import LayerSamples
from scaleadvise.errors import UserError

# tensor -> (layer type, rho at width 64, exponent of rho, D0 at width 64, exponent of D0)
SPEC = {"blocks.0.mlp.up": ("hidden", 0.1, 1.5, 1e-3, 0.0), "blocks.0.attn.q": ("hidden", 0.3, 1.3, 3e-4, 0.2),
        "embed.tokens": ("embedding", 0.01, 1.0, 2e-3, -0.5), "readout": ("readout", 0.02, 1.0, 1e-3, -0.3)}
EPS = 1e-5


def samples(spec=SPEC, widths=(16, 32, 64), seeds=(0, 1, 2), noise=0.0, steps=3, rng=None, eps_run=EPS):
    """Rows as the probe writes them: per step decrease_no_eps = D0·e and decrease = D0·e/(1 + rho),
    with a run effect shared by every tensor of a run (a seed moves them together)."""
    rng = rng or np.random.default_rng(0)
    out = {name: LayerSamples(name, v[0]) for name, v in spec.items()}
    for n in widths:
        for seed in seeds:
            u, ud = rng.normal(0, noise), rng.normal(0, noise)
            # steps differ (by a factor common to the run's tensors); rho within a run does not
            per_step = np.exp(rng.normal(0, 0.3, size=steps))
            for name, (_, r0, k, d0, dk) in spec.items():
                rho = r0 * (n / 64) ** k * math.exp(u + rng.normal(0, noise)) * eps_run / EPS
                D0 = d0 * (n / 64) ** dk * math.exp(ud + rng.normal(0, noise))
                s = out[name]
                for step, e in enumerate(per_step):
                    s.add(float(n), 1e-3, None, run=(seed,), step=float(step))
                    s.decrease[-1], s.decrease_no_eps[-1], s.eps_used[-1] = D0 * e / (1 + rho), D0 * e, eps_run
    return out


def truth(n, spec=SPEC):
    """Retained share per type and for the model, from the true laws (rule, step 3)."""
    num, den = {}, {}
    for kind, r0, k, d0, dk in spec.values():
        w, phi = d0 * (n / 64) ** dk, 1 / (1 + r0 * (n / 64) ** k)
        num[kind] = num.get(kind, 0) + w * phi
        den[kind] = den.get(kind, 0) + w
    return {t: num[t] / den[t] for t in num}, sum(num.values()) / sum(den.values())


def cost_of(by_type, sticks):
    """Y_T piecewise linear in ln f through (1, 0) and the yardsticks, summed over types."""
    total = 0.0
    for kind, phi in by_type.items():
        pts = [(0.0, 0.0)] + [(math.log(y.factor), y.mean) for y in sticks[kind]]
        x = math.log(phi)
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if x >= x1 or (x1, y1) == pts[-1]:
                total += y0 + (y1 - y0) / (x1 - x0) * (x - x0)
                break
    return total


STICKS = M.group_yardsticks([("hidden", 0.5, 0.05), ("hidden", 0.25, 0.12), ("embedding", 0.5, 0.02),
                             ("readout", 0.5, 0.03)])


def request(**kw):
    base = dict(eps=EPS, base_width=64.0, target_width=256.0, draws=400)
    base.update(kw)
    return M.Request(**base)


# ------------------------------------------------------------------ known answers


def test_uncalibrated_crossing_is_where_the_true_laws_lose_the_budget():
    out = M.predict(samples(), request(lost_budget=0.1))
    want = brentq(lambda n: 1 - truth(n)[1] - 0.1, 16, 4096)
    assert out["predictor"] == "decrease"
    assert out["crossing_width"] == pytest.approx(want, rel=1e-3)
    by_type, model = truth(256.0)
    assert out["target"]["retained_decrease"] == pytest.approx(model, rel=1e-9)
    assert out["target"]["retained_by_type"] == pytest.approx(by_type, rel=1e-9)
    assert out["tensors"]["blocks.0.mlp.up"]["lost_ratio_exponent"] == pytest.approx(1.5)
    assert out["tensors"]["blocks.0.mlp.up"]["lost_ratio_at_base"] == pytest.approx(0.1)
    shares = {k: v["share_at_base"] for k, v in out["tensors"].items()}
    assert shares["embed.tokens"] == pytest.approx(2e-3 / 4.3e-3)  # D0 shares at 64: 1, 0.3, 2, 1 (·1e-3)
    assert out["crossing_width_ci"][0] == pytest.approx(want, rel=0.05)  # noise-free: a point interval
    assert out["crossing_width_ci"][1] == pytest.approx(want, rel=0.05)


def test_calibrated_crossing_is_where_the_yardstick_cost_reaches_the_budget():
    out = M.predict(samples(), request(yardsticks=STICKS, loss_budget=0.03))
    want = brentq(lambda n: cost_of(truth(n)[0], STICKS) - 0.03, 16, 4096)
    assert out["predictor"] == "decrease+yardsticks" and out["budget"] == {"loss": 0.03}
    assert out["crossing_width"] == pytest.approx(want, rel=1e-3)
    assert out["target"]["loss_cost"] == pytest.approx(cost_of(truth(256.0)[0], STICKS), rel=1e-9)
    assert out["verdict"]["action"] == "act" and "before the target" in out["verdict"]["text"]


def test_yardstick_interpolation_is_linear_in_log_factor_and_extends_the_last_segment():
    log_f = np.log([0.5, 0.25])
    cost = np.array([0.05, 0.12])
    got = M.yardstick_cost(np.log([1.0, 0.5, math.sqrt(0.5), 0.25, 0.125]), log_f, cost)
    assert got == pytest.approx([0.0, 0.05, 0.025, 0.12, 0.19])


def test_uniform_sqrt_v_reduces_to_the_per_tensor_crossing():
    """One tensor with one sqrt(v) everywhere: rho = eps/s, and losing the share b means
    eps/s = b/(1-b): the crossing is scaleadvise.analysis.epsilon's at ratio b/(1-b)."""
    from scaleadvise.analysis import epsilon as E

    spec = {"blocks.0.mlp.up": ("hidden", 0.05, 1.5, 1e-3, 0.0)}
    out = M.predict(samples(spec), request(lost_budget=0.2))
    law = E.GradientLaw(g=1.5, log_c=math.log(EPS / 0.05) + 1.5 * math.log(64))  # s(64) = eps/0.05
    assert out["crossing_width"] == pytest.approx(E.crossing_width(law, EPS, 0.2 / 0.8), rel=1e-3)


def test_other_eps_rescales_the_lost_ratio():
    """Runs with eps 1e-6, asked about 1e-5: rho is 10x, the crossing comes 10^(1/k) earlier."""
    spec = {"blocks.0.mlp.up": ("hidden", 0.05, 1.5, 1e-3, 0.0)}
    same = M.predict(samples(spec), request(lost_budget=0.2))["crossing_width"]
    other = M.predict(samples(spec, eps_run=1e-6), request(eps=1e-6, lost_budget=0.2))["crossing_width"]
    assert other == pytest.approx(same * 10 ** (1 / 1.5), rel=1e-3)


def test_tensors_count_by_their_share_of_the_decrease_not_their_size():
    """A starved hidden tensor with 5% of the decrease cannot make eps cost 10% of it."""
    spec = {"blocks.0.mlp.up": ("hidden", 1.0, 1.5, 5e-5, 0.0), "readout": ("readout", 1e-6, 1.0, 9.5e-4, 0.0)}
    out = M.predict(samples(spec), request(lost_budget=0.1))
    assert out["crossing_width"] > 1e6  # only the readout's own (tiny) eps ratio can get there
    assert out["target"]["retained_by_type"]["hidden"] < 0.2 and out["target"]["retained_decrease"] > 0.95
    assert out["verdict"]["action"] == "keep"


# ------------------------------------------------------------------ intervals: coverage simulation


def coverage(seeds, sticks_noise: float | None, trials: int, seed: int) -> tuple[float, float]:
    """(coverage of the true crossing, median interval width in doublings) over simulated studies:
    noise shared by the tensors of a run plus per-tensor scatter; yardsticks exact (None) or
    three noisy replicates each."""
    rng = np.random.default_rng(seed)
    calibrated = sticks_noise is not None
    level = 0.03 if calibrated else 0.1
    want = (brentq(lambda n: cost_of(truth(n)[0], STICKS) - level, 16, 4096) if calibrated
            else brentq(lambda n: 1 - truth(n)[1] - level, 16, 4096))
    hits, widths = 0, []
    for _ in range(trials):
        data = samples(seeds=seeds, noise=0.1, steps=1, rng=rng)
        sticks = {}
        if calibrated:
            sticks = STICKS if sticks_noise == 0 else M.group_yardsticks(
                [(k, y.factor, y.mean + rng.normal(0, sticks_noise)) for k, v in STICKS.items() for y in v for _ in range(3)])
        out = M.predict(data, request(yardsticks=sticks, loss_budget=level, lost_budget=level,
                                      seed=int(rng.integers(1 << 30))))
        lo, hi = out["crossing_width_ci"]
        hits += lo <= want <= hi
        widths.append(math.log2(hi / lo))
    return hits / trials, float(np.median(widths))


@pytest.mark.parametrize("seeds,sticks_noise", [((0, 1), None), ((0, 1, 2), 0.0)])
def test_crossing_interval_covers(seeds, sticks_noise):
    """The 95% interval of the crossing covers the true one within [0.90, 0.99]
    (600-trial runs of this simulation: 0.948 uncalibrated with 2 seeds, 0.953 calibrated)."""
    cov, _ = coverage(seeds, sticks_noise, 150, 7)
    assert 0.90 <= cov <= 0.99, cov


def test_yardstick_noise_widens_the_interval_and_still_covers():
    """Yardsticks measured three times each (t with 2 df): wider intervals, coverage >= 0.90
    (0.983 in 600 trials: conservative, the heavy t tails of two-df yardsticks)."""
    cov, width = coverage((0, 1, 2), 0.01, 100, 8)
    _, exact_width = coverage((0, 1, 2), 0.0, 40, 8)
    assert cov >= 0.90 and width > 1.2 * exact_width, (cov, width, exact_width)


# ------------------------------------------------------------------ what cannot be predicted


def test_no_decrease_columns_means_no_prediction():
    s = LayerSamples("hidden", "hidden")
    s.add(64.0, 1e-3)
    assert M.predict({"hidden": s}, request()) is None


def test_one_width_gives_no_law_but_the_measured_shares():
    """A yardstick run (one width) still reports what its eps left each type: its SHARE."""
    out = M.predict(samples(widths=(64,)), request(eps=1.0))  # the asked eps does not touch what was measured
    assert out["predictor"] is None and "one width" in out["reason"]
    by_type, _ = truth(64.0)
    assert out["measured"]["64"]["runs"] == 3
    assert out["measured"]["64"]["retained_by_type"] == pytest.approx(by_type, rel=1e-12)


def test_two_runs_give_a_point_without_interval():
    out = M.predict(samples(widths=(32, 64), seeds=(0,)), request())
    assert out["crossing_width_ci"] is None and any("no interval" in n for n in out["notes"])


def test_tensor_without_progress_is_left_out_with_a_reason():
    data = samples()
    q = data["blocks.0.attn.q"]
    q.decrease_no_eps = [-abs(x) for x in q.decrease_no_eps]
    out = M.predict(data, request())
    assert "blocks.0.attn.q" not in out["tensors"]
    assert any("blocks.0.attn.q: left out" in n for n in out["notes"])


def test_missing_yardstick_type_is_named():
    sticks = M.group_yardsticks([("hidden", 0.5, 0.05)])
    with pytest.raises(UserError, match="none for layer type.*embedding, readout"):
        M.predict(samples(), request(yardsticks=sticks))


def test_same_input_same_interval():
    a = M.predict(samples(noise=0.1), request())
    b = M.predict(samples(noise=0.1), request())
    assert a["crossing_width_ci"] == b["crossing_width_ci"]


def test_isotonic_pools_violators_and_keeps_monotone_data():
    assert M.isotonic(np.array([0.0, 0.05, 0.12]), np.array([1e12, 3, 3])) == pytest.approx([0, 0.05, 0.12])
    # 0.038 then 0.030 (noise): pooled to their mean; a negative first cost pools with the anchor 0.
    assert M.isotonic(np.array([0.0, 0.038, 0.030]), np.array([1e12, 5, 5])) == pytest.approx([0, 0.034, 0.034])
    assert M.isotonic(np.array([0.0, -0.02, 0.04]), np.array([1e12, 2, 2])) == pytest.approx([0, 0, 0.04], abs=1e-9)
    draws = np.array([[0.0, 0.1, 0.05], [0.0, 0.01, 0.2]])  # vectorised over draws
    assert M.isotonic(draws, np.array([1e12, 1, 1])) == pytest.approx(np.array([[0, 0.075, 0.075], [0, 0.01, 0.2]]))


def test_a_noisy_yardstick_that_falls_is_read_as_flat():
    """hidden costs 0.038 at share 0.65 and 0.030 at 0.44: the prediction uses 0.034 for both and
    does not extrapolate a falling cost (eps would then seem to help as it takes more)."""
    sticks = M.group_yardsticks([("hidden", 0.65, 0.038), ("hidden", 0.44, 0.030)])
    spec = {"blocks.0.mlp.up": ("hidden", 0.1, 1.5, 1e-3, 0.0)}
    out = M.predict(samples(spec), request(yardsticks=sticks, target_width=4096.0, loss_budget=0.03))
    assert out["target"]["loss_cost"] == pytest.approx(0.034)  # share ~0 at 4096: the flat extension
