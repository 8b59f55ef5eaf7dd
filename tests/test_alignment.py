"""core/alignment.py: the alignment exponents of B.11, their spellings, the defaults per
optimizer family (§4.2), and errors that name the field. (Malformed --alignment strings
are in tests/test_theory.py; every flag's bad values in tests/test_bad_input.py.)"""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleadvise.core.alignment import FULL, NONE, YANG_HU, Alignment, parse_alignment, resolve_alignment
from scaleadvise.core.optimizers import Family
from scaleadvise.errors import UserError


def test_named_alignments_are_table_1s():
    assert parse_alignment("full").as_dict() == {"alpha": 1.0, "omega": 0.5, "u": 1.0, "alpha_readout": 1.0,
                                                 "omega_readout": 0.5, "u_readout": 1.0}
    assert set(parse_alignment("none").as_dict().values()) == {0.5}
    # Yang & Hu: full alignment with omega = 1 on the readout (§3.3.3); "tp" is the same
    assert parse_alignment("yang-hu") == parse_alignment(" TP ") == YANG_HU
    assert YANG_HU.at("readout") == (1.0, 1.0, 1.0) and YANG_HU.at("hidden") == (1.0, 0.5, 1.0)


def test_three_numbers_apply_to_every_layer_after_the_first():
    al = parse_alignment("0.8, 0.5, 0.7")
    assert al.at("hidden") == al.at("readout") == (0.8, 0.5, 0.7)


def test_six_numbers_are_hidden_then_readout():
    al = parse_alignment("0.6,0.5,0.6,0.95,0.5,0.9")
    assert al.at("hidden") == (0.6, 0.5, 0.6) and al.at("readout") == (0.95, 0.5, 0.9)


def test_omega_readout_overrides_only_the_readout():
    al = parse_alignment("full", omega_readout=1.0)
    assert al.at("readout") == (1.0, 1.0, 1.0) and al.at("hidden") == FULL.at("hidden")
    assert parse_alignment(NONE, omega_readout=0.75).at("readout") == (0.5, 0.75, 0.5)


@given(st.tuples(*[st.floats(0, 1)] * 3))
def test_any_measured_triple_round_trips(values):
    al = parse_alignment(",".join(repr(v) for v in values))
    assert (al.alpha, al.omega, al.u) == values


@pytest.mark.parametrize("text,name", [("1,0.5,1,1.2,0.5,1", "alpha_readout"), ("1,-0.5,1", "omega"),
                                       ("1,0.5,nan", "u"), ("inf,0.5,1", "alpha")])
def test_out_of_range_names_the_exponent_and_the_field(text, name):
    with pytest.raises(UserError, match=rf"^alignment: {name} = \S+ is outside \[0, 1\]$") as e:
        parse_alignment(text)
    assert e.value.field == "alignment"


@pytest.mark.parametrize("value", [1.5, -0.1, math.nan])
def test_a_bad_omega_readout_is_its_own_field(value):
    with pytest.raises(UserError) as e:
        parse_alignment("full", omega_readout=value)
    assert e.value.field == "omega_readout" and "omega_readout = " in e.value.message


@pytest.mark.parametrize("family,expected,section", [(Family.ADAM, FULL, "§4.2.1"), (Family.SGD, FULL, "Table 1"),
                                                     (Family.ADAFACTOR, NONE, "§4.2.2")])
def test_the_default_follows_the_papers_experiments(family, expected, section):
    al, source = resolve_alignment(None, family)
    assert al == expected
    assert source.startswith(f"default for {family.value}") and section in source


def test_a_given_alignment_wins_and_says_so():
    al, source = resolve_alignment("none", Family.ADAM)
    assert al == NONE and source == "--alignment none"
    al, source = resolve_alignment(Alignment(0.7, 0.5, 0.7), Family.SGD, omega_readout=1.0)
    assert al.at("readout") == (0.7, 1.0, 0.7) and "given" in source
