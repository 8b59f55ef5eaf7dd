"""core/optimizers.py: the one optimizer table (family, where epsilon enters, Table C2),
name lookup and its errors. Families by name are also in tests/test_theory.py."""

import pytest

from scaleadvise.core.optimizers import OPTIMIZERS, SCRIPTED, Family, get_optimizer, optimizer_family
from scaleadvise.errors import UserError


def test_table_c2_default_epsilons():
    defaults = {name: o.default_eps for name, o in OPTIMIZERS.items()}
    assert defaults == {"sgd": None, "adam": 1e-9, "adamw": 1e-9, "adam-atan2": None, "lion": None,
                        "sign-sgd": None, "adafactor": 1e-30, "adam-ps": 1e-9}


def test_where_epsilon_enters():
    """sqrt(v) + eps for Adam-style updates; v + eps for Adafactor (Shazeer & Stern); none
    for SGD, the sign-based and atan2 updates (C.5)."""
    assert {n: o.eps for n, o in OPTIMIZERS.items()} == {
        "sgd": None, "adam": "sqrt_v", "adamw": "sqrt_v", "adam-atan2": None, "lion": None, "sign-sgd": None,
        "adafactor": "v", "adam-ps": "sqrt_v"}
    for o in OPTIMIZERS.values():
        assert (o.eps is None) == (o.default_eps is None), o.name


def test_per_layer_epsilon_exponent_follows_where_it_enters():
    """eps_l ∝ n^-g where it is compared with sqrt(v) ∝ n^-g, n^-2g where with v (§4.3)."""
    assert get_optimizer("adam").eps_exponent(0.5) == 0.5
    assert get_optimizer("adam-ps").eps_exponent(1.5) == 1.5
    assert get_optimizer("adafactor").eps_exponent(0.5) == 1.0
    assert get_optimizer("sgd").eps_exponent(0.5) is None
    assert get_optimizer("adam-atan2").eps_exponent(0.5) is None


def test_families():
    assert {n: o.family for n, o in OPTIMIZERS.items()} == {
        "sgd": Family.SGD, "adam": Family.ADAM, "adamw": Family.ADAM, "adam-atan2": Family.ADAM,
        "lion": Family.ADAM, "sign-sgd": Family.ADAM, "adafactor": Family.ADAFACTOR, "adam-ps": Family.ADAFACTOR}
    assert optimizer_family(Family.SGD) is Family.SGD
    assert optimizer_family("Adafactor") is Family.ADAFACTOR


def test_the_script_implements_these():
    assert SCRIPTED == ("sgd", "adam", "adamw", "adam-atan2", "adam-ps")


@pytest.mark.parametrize("spelling", ["AdamW", " adamw ", "ADAMW"])
def test_names_ignore_case_and_blanks(spelling):
    assert get_optimizer(spelling).name == "adamw"


def test_adam_atan2_with_underscores():
    assert get_optimizer("Adam_Atan2").name == "adam-atan2"


def test_unknown_names_name_the_field_and_suggest():
    with pytest.raises(UserError, match=r"^optim: unknown optimizer 'adamm' .* did you mean 'adam'\?$") as e:
        get_optimizer("adamm")
    assert e.value.field == "optim"
    with pytest.raises(UserError) as e:
        get_optimizer("rmsprop", field="to_optim")
    assert e.value.field == "to_optim" and "did you mean" not in str(e.value) and "known: sgd, adam" in str(e.value)
    with pytest.raises(UserError, match="unknown optimizer ''"):
        optimizer_family("")
