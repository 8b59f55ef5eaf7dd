"""scaleadvise/sweep/grid.py: the sweep's axes and the log2 LR lattice."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleadvise.errors import UserError
from scaleadvise.sweep.grid import MAX_LRS, Grid, lr_lattice, parse_grid, parse_ints, parse_lrs


def test_the_issue_s_grid():
    lrs = parse_lrs("2^-10:2^-6:0.5")
    assert lrs == tuple(2.0 ** (-10 + k / 2) for k in range(9))
    assert lrs[0] == 2.0 ** -10 and lrs[-1] == 2.0 ** -6
    g = parse_grid("64,128,256", "2^-10:2^-6:0.5", "0,1")
    assert len(g) == 3 * 9 * 2 == len(g.points())
    assert g.points()[0] == (64, None, 2.0 ** -10, 0) and g.points()[-1] == (256, None, 2.0 ** -6, 1)


def test_depths_are_an_axis():
    g = parse_grid("64,128", "1e-3,2e-3", "0", depths="2,4,8")
    assert len(g) == 2 * 3 * 2 * 1
    assert {(w, d) for w, d, _, _ in g.points()} == {(w, d) for w in (64, 128) for d in (2, 4, 8)}


def test_decimal_bounds_and_factor_steps():
    # log2(1e-3) is irrational: STOP = START * 2^3 is still recognised as on the lattice
    assert parse_lrs("1e-3:8e-3:1") == (1e-3, 2e-3, 4e-3, 8e-3)
    assert parse_lrs("1e-3:1e-2:1") == (1e-3, 2e-3, 4e-3, 8e-3)  # STOP off the lattice: the grid stays below it
    assert parse_lrs("2^-8:2^-6:2^0.5") == parse_lrs("2^-8:2^-6:0.5")  # a STEP of 2^x is x octaves
    assert parse_lrs("0.01:0.01:0.5") == (0.01,)
    assert parse_lrs("3e-4, 1e-3") == (3e-4, 1e-3)
    assert parse_ints("2^6,128", "--widths", 1) == (64, 128)


@settings(max_examples=300, deadline=None)
@given(lo=st.floats(-30, 5), span=st.floats(0, 12), step=st.floats(0.05, 3))
def test_lattice_covers_start_to_stop(lo, span, step):
    """START is the first point, no point passes STOP, neighbours are a factor 2^STEP apart,
    and the next lattice point would pass STOP: every LR in [START, STOP] is within one
    STEP of the grid."""
    start, stop = 2.0 ** lo, 2.0 ** (lo + span)
    lrs = lr_lattice(start, stop, step)
    assert lrs[0] == start
    assert all(x <= stop * (1 + 1e-12) for x in lrs)
    assert all(math.isclose(math.log2(b / a), step, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(lrs, lrs[1:]))
    assert math.log2(lrs[-1]) + step > math.log2(stop) - 1e-9
    assert len(set(lrs)) == len(lrs)


@settings(max_examples=200, deadline=None)
@given(lo=st.integers(-24, 0), n=st.integers(0, 40), half=st.booleans())
def test_stop_on_the_lattice_is_included_exactly(lo, n, half):
    step = 0.5 if half else 1.0
    start, stop = 2.0 ** lo, 2.0 ** (lo + n * step)
    lrs = parse_lrs(f"2^{lo}:2^{lo + n * step}:{step}")
    assert len(lrs) == n + 1 and lrs[-1] == stop and lrs[0] == start


@pytest.mark.parametrize("text, match", [
    ("", "empty entry"),
    ("1e-3,,2e-3", "empty entry"),
    ("abc", "not a number"),
    ("2^x:2^-6:0.5", "not a number"),
    ("2^-6:2^-10:0.5", "STOP is below START"),
    ("2^-10:2^-6", "expected START:STOP:STEP"),
    ("2^-10:2^-6:0.5:1", "expected START:STOP:STEP"),
    ("2^-10:2^-6:0", "STEP must be a positive"),
    ("2^-10:2^-6:-0.5", "STEP must be a positive"),
    ("2^-10:2^-6:nan", "STEP must be a positive"),
    ("2^-10:2^-6:x", "STEP 'x' is not a number"),
    ("2^-20:1:0.001", f"at most {MAX_LRS}"),
    ("0,1e-3", "positive finite"),
    ("-1e-3", "positive finite"),
    ("nan", "positive finite"),
    ("inf", "positive finite"),
    ("1e-3:inf:1", "positive finite"),
    ("2^99999", "positive finite"),
    ("1e-3,0.001", "listed twice"),
    ("0.0010000001,0.001", "same run to 6 digits"),
])
def test_bad_lrs(text, match):
    with pytest.raises(UserError, match=match) as e:
        parse_lrs(text)
    assert str(e.value).startswith("--lrs ")


@pytest.mark.parametrize("flag, text, minimum, match", [
    ("--widths", "0,64", 1, "0 is below 1"),
    ("--widths", "-64", 1, "-64 is below 1"),
    ("--widths", "64.5", 1, "not an integer"),
    ("--widths", "64,64", 1, "listed twice"),
    ("--widths", "", 1, "empty entry"),
    ("--widths", "64,", 1, "empty entry"),
    ("--widths", "2^-1", 1, "not an integer"),
    ("--widths", "2^99", 1, "not an integer"),
    ("--seeds", "-1", 0, "-1 is below 0"),
    ("--depths", "0", 1, "0 is below 1"),
])
def test_bad_integer_axes(flag, text, minimum, match):
    with pytest.raises(UserError, match=match) as e:
        parse_ints(text, flag, minimum)
    assert str(e.value).startswith(flag)


def test_a_grid_too_large_is_refused():
    with pytest.raises(UserError, match="runs"):
        parse_grid(",".join(str(w) for w in range(1, 200)), "2^-20:2^-1:0.05", "0,1,2")


def test_grid_len_matches_points():
    g = Grid((1, 2), None, (0.1,), (0, 1, 2))
    assert len(g) == len(g.points()) == 6
