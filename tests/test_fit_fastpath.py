"""The run-length shortcuts of the fit loader (fit_optima._blocks and _run_starts) give
the same answer as the general hashing path, whatever the row order of the file."""

import numpy as np
import pandas as pd
import pytest

from scaleadvise.analysis.fit import FitOptions, fit_sweep
from scaleadvise.analysis.fit_optima import _blocks, build_grid, dense_codes
from scaleadvise.analysis.fit_synth import synthetic_sweep

WIDTHS = [128, 256, 512, 1024]
LRS = 2.0 ** np.arange(-14.0, -3.0, 0.5)


@pytest.mark.parametrize("values", [
    np.repeat([3.0, 1.0, 2.0, 1.0], 50),  # grouped, a value recurring in a later block
    np.repeat(np.array([512, 128, 256], dtype=np.int64), 40),
    np.repeat(2.0 ** -np.arange(20.0), 17),
])
def test_blocks_match_pandas_factorize(values):
    codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=False)
    got = _blocks(values)
    assert got is not None  # grouped columns take the shortcut
    np.testing.assert_array_equal(got[0], uniques)
    np.testing.assert_array_equal(got[1], codes)
    assert got[1].dtype == np.int64


@pytest.mark.parametrize("values", [
    np.random.default_rng(0).choice([1.0, 2.0, 3.0], 400),  # changes nearly every row
    np.repeat([1.0, np.nan, 2.0], 50),  # NaN: left to pandas
    np.repeat(np.array(["a", "b"], dtype=object), 50),
])
def test_blocks_decline_and_dense_codes_still_match(values):
    assert _blocks(values) is None
    codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=False)
    got_u, got_c = dense_codes(values)
    np.testing.assert_array_equal(got_c, codes)
    assert list(map(str, got_u)) == list(map(str, uniques))


def _steps_table(tmp_path, order: str):
    df = synthetic_sweep(WIDTHS, LRS, k=-0.8, noise=0.02, seeds=3, steps=np.arange(1, 9) * 100, rng=0)
    # One run stops early: it must be dropped (with a warning) on every path.
    df = df[~((df.width == 256) & (df.lr == LRS[6]) & (df.seed == 1) & (df.step > 500))]
    if order == "shuffled":
        df = df.sample(frac=1.0, random_state=1)
    elif order == "split":  # every run's rows in two separate blocks
        df = pd.concat([df[df.step <= 400], df[df.step > 400]])
    path = tmp_path / f"{order}.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("step", [None, 400])
def test_final_step_selection_is_independent_of_row_order(tmp_path, step):
    docs = {order: fit_sweep(str(_steps_table(tmp_path, order)), FitOptions(bootstrap=0, step=step)).doc
            for order in ("sorted", "shuffled", "split")}
    ref = docs["sorted"]
    expected_runs = len(WIDTHS) * LRS.size * 3 - (1 if step is None else 0)
    assert ref["runs"] == expected_runs
    assert any("stop before the last step" in w for w in ref["warnings"]) == (step is None)
    for order in ("shuffled", "split"):
        doc = docs[order]
        assert doc["runs"] == ref["runs"] and doc["warnings"] == ref["warnings"]
        g, r = doc["groups"][0], ref["groups"][0]
        assert [o["lr"] for o in g["optima"]] == [o["lr"] for o in r["optima"]]
        assert g["lr_exponent"] == pytest.approx(r["lr_exponent"], abs=1e-9)  # seeds summed in another order


def test_build_grid_counts_diverged_runs_per_cell():
    wi = np.array([0, 0, 0, 1, 1, 1])
    li = np.array([0, 1, 1, 0, 0, 1])
    loss = np.array([1.0, np.nan, 2.0, 3.0, 5.0, np.inf])
    g = build_grid((np.array([64.0, 128.0]), wi), (np.array([1e-3, 2e-3]), li), loss)
    np.testing.assert_array_equal(g.runs, [[1, 2], [2, 1]])
    np.testing.assert_array_equal(g.diverged, [[0, 1], [0, 1]])
    np.testing.assert_array_equal(g.loss, [[1.0, np.nan], [4.0, np.nan]])
    assert g.std[1, 0] == pytest.approx(np.sqrt(2.0))


def _brute_force_pairs(parts, inner):
    seen, pairs = {}, []
    for i, key in enumerate(zip(*parts, inner)):
        if key in seen:
            pairs.append((seen[key], i))
        seen[key] = i
    return sorted(pairs, key=lambda p: p[1])


@pytest.mark.parametrize("layout", ["runs in order", "shuffled", "appended twice", "one repeated step"])
def test_repeated_rows_agree_with_brute_force(layout):
    from scaleadvise.analysis.fit_optima import repeated_rows

    rng = np.random.default_rng(3)
    w, lr, seed, step = (a.ravel() for a in np.meshgrid(np.arange(3), np.arange(4), np.arange(2),
                                                        np.array([10.0, 20.0, 30.0]), indexing="ij"))
    rows = np.arange(w.size)
    if layout == "shuffled":
        rows = rng.permutation(rows)
    elif layout == "appended twice":
        rows = np.concatenate([rows, rows[30:36]])
    elif layout == "one repeated step":
        rows = np.insert(rows, 8, rows[7])
    parts, inner = [w[rows], lr[rows], seed[rows]], step[rows]
    earlier, later = repeated_rows(parts, inner)
    assert sorted(zip(earlier.tolist(), later.tolist()), key=lambda p: p[1]) == _brute_force_pairs(parts, inner)
    assert (later.size == 0) == (layout in ("runs in order", "shuffled"))


def test_cell_sums_of_contiguous_cells_match_bincount():
    from scaleadvise.analysis.fit_optima import _cell_sums

    rng = np.random.default_rng(0)
    cell = np.repeat(rng.permutation(50), rng.integers(1, 9, 50))  # each cell one block, cells in any order
    x = rng.normal(size=cell.size)
    runs, s1, s2 = _cell_sums(cell, x, 60)
    np.testing.assert_array_equal(runs, np.bincount(cell, minlength=60))
    np.testing.assert_allclose(s1, np.bincount(cell, weights=x, minlength=60), atol=1e-12)
    np.testing.assert_allclose(s2, np.bincount(cell, weights=x * x, minlength=60), atol=1e-12)
