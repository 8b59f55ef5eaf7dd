"""`fit`'s 95% intervals contain the truth about 95% of the time (fit_coverage's families).

The fast test runs the two cases the old intervals failed (two widths: a seed bootstrap
over two seeds covered ~0.83; a bowl steeper above its optimum: predicted_lr covered
~0.45 or less) often enough to tell 0.90 from 0.80. The slow test runs every family.
"""

from dataclasses import replace

import numpy as np
import pytest

from scaleadvise.analysis.fit import FitOptions
from scaleadvise.analysis.fit_coverage import FAMILIES, coverage, draw_sweep
from scaleadvise.analysis.fit_synth import optimal_lr

BY_NAME = {f.name: f for f in FAMILIES}
# The interval no longer depends on the bootstrap (a check reported beside it): skip it for speed.
OPTIONS = replace(FitOptions(), bootstrap=0)


def test_the_truth_is_the_minimum_of_the_expected_loss():
    # For every family's bowl, the noise-free loss is lowest at lr*(n): what the intervals must cover.
    rng = np.random.default_rng(0)
    for fam in FAMILIES:
        dense = replace(fam, noise=0.0, seeds=1, step=1 / 64, diverge_octaves=None)
        df, truth = draw_sweep(dense, rng)
        for width, rows in df.groupby("width"):
            best = rows["lr"].to_numpy()[np.argmin(rows["loss"].to_numpy())]
            true_lr = optimal_lr(width, k=truth["k"], lr0=truth["lr0"], n0=128)
            assert abs(np.log2(best / true_lr)) <= dense.step, fam.name  # within one grid step


@pytest.mark.parametrize("name,reps", [("widths=2", 120), ("skew=2, widths=6, seeds=4, noise=0.003", 80)])
def test_coverage_where_the_old_intervals_failed(tmp_path, name, reps):
    res = coverage(BY_NAME[name], reps, seed=1, options=OPTIONS, workdir=str(tmp_path))
    assert res.k_missing == 0 and res.pred_missing == 0
    assert 0.90 <= res.k_coverage <= 0.99, res.row()
    assert 0.90 <= res.pred_coverage <= 0.99, res.row()
    assert abs(res.opt_bias) < 0.02  # octaves; the symmetric parabola's was -0.22 on the skewed bowl


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in FAMILIES if f.seeds >= 2], ids=lambda f: f.name)
def test_coverage_of_every_family(tmp_path, family):
    """The issue's acceptance: within [0.90, 0.99] for k and predicted_lr, 400 sweeps per family."""
    res = coverage(family, 400, seed=2, options=OPTIONS, workdir=str(tmp_path))
    assert res.k_missing == 0 and res.pred_missing == 0
    assert 0.90 <= res.k_coverage <= 0.99, res.row()
    assert 0.90 <= res.pred_coverage <= 0.99, res.row()


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in FAMILIES if f.seeds == 1], ids=lambda f: f.name)
def test_single_seed_intervals_are_not_falsely_narrow(tmp_path, family):
    res = coverage(family, 200, seed=2, options=OPTIONS, workdir=str(tmp_path))
    assert res.k_coverage >= 0.90 and res.pred_coverage >= 0.90, res.row()
