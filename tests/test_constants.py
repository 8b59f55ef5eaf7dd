"""core/constants.py: the LR constants gamma (Table C3, files), the base width they were
tuned at and their conversion to another base width (§4.2.1, C.4)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleadvise.core.constants import ConstantSet, convert, list_constant_sets, load_constants
from scaleadvise.errors import UserError


def test_shipped_sets():
    assert list_constant_sets() == ["default", "paper"]


def test_default_is_one_everywhere_at_any_base_width():
    c = load_constants("default", "adam", "stp")
    assert c.gamma == {"embedding": 1.0, "hidden": 1.0, "readout": 1.0} and c.base_width is None


@pytest.mark.parametrize("optim,param,gamma", [
    ("adam", "stp", (5.357, 1.133, 2.596)),       # Table C3, Adam rows
    ("adamw", "mup", (5.303, 1.258, 11.723)),     # AdamW and Adam-atan2 use the Adam row
    ("adam-atan2", "mfp", (0.351, 0.939, 2.814)),
    ("sgd", "mup", (1398.861, 5.532, 0.020)),
    ("adafactor", "ntk", (0.837, 0.955, 0.765)),
    ("adam-ps", "stp", (2.598, 1.845, 0.838)),
])
def test_table_c3(optim, param, gamma):
    c = load_constants("paper", optim, param)
    assert tuple(c.gamma.values()) == gamma and c.base_width == 1024  # C.4: tuned at b = 1024
    assert c.source.startswith("Table C3")


def test_a_flat_file_with_its_base_width(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("base_width: 256\nembedding: 2\nhidden: 0.5\nreadout: 4\n")
    c = load_constants(str(f), "sgd", "mup")
    assert c.gamma == {"embedding": 2.0, "hidden": 0.5, "readout": 4.0} and c.base_width == 256


def test_convert_keeps_every_learning_rate():
    """gamma_l (b/b0)^-c_l at base width b gives the LRs gamma_l gave at b0 (module doc)."""
    tuned = ConstantSet({"embedding": 1.0, "hidden": 2.0, "readout": 3.0}, "test", base_width=1024)
    c = {"embedding": 0.0, "hidden": 1.0, "readout": 0.5}
    out = convert(tuned, c, 256)
    assert out.gamma == {"embedding": 1.0, "hidden": 8.0, "readout": 6.0} and out.base_width == 256
    assert "converted to base width 256" in out.source


def test_convert_is_a_no_op_where_it_must_be():
    untied = ConstantSet({"embedding": 1.0, "hidden": 1.0, "readout": 1.0}, "ones")
    assert convert(untied, {"embedding": 1, "hidden": 1, "readout": 1}, 64).gamma == untied.gamma
    tuned = ConstantSet({"embedding": 2.0, "hidden": 2.0, "readout": 2.0}, "x", base_width=64)
    same = convert(tuned, {"embedding": 1, "hidden": 1, "readout": 1}, 64)
    assert same.gamma == tuned.gamma and same.source == "x, tuned at base width 64"


@given(c=st.floats(-1, 2), b=st.sampled_from([32, 64, 256, 1024, 4096]), n=st.sampled_from([128, 1024, 65536]))
def test_converted_constants_give_the_same_lr_at_every_width(c, b, n):
    tuned = ConstantSet({"embedding": 1.5, "hidden": 1.5, "readout": 1.5}, "x", base_width=1024)
    cs = {"embedding": c, "hidden": c, "readout": c}
    g = convert(tuned, cs, b).gamma["hidden"]
    assert g * (n / b) ** -c == pytest.approx(1.5 * (n / 1024) ** -c, rel=1e-12)


@pytest.mark.parametrize("text,message", [
    ("embedding: 1\nhidden: true\nreadout: 1\n", "field 'hidden' = True is not a number"),
    ("base_width: yes\nembedding: 1\nhidden: 1\nreadout: 1\n", "field 'base_width' = True must be a positive integer"),
    ("base_width: 64.5\nembedding: 1\nhidden: 1\nreadout: 1\n", "field 'base_width' = 64.5"),
    ("adam: {stp: 3}\n", "field 'adam.stp' must map embedding/hidden/readout to numbers"),
])
def test_file_errors_name_the_file_the_field_and_the_flag(tmp_path, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(UserError, match=message) as e:
        load_constants(str(f), "adam", "stp")
    assert e.value.field == "constants" and e.value.message.startswith(str(f))


def test_neither_a_set_nor_a_file():
    with pytest.raises(UserError, match="'papers' is neither a shipped set") as e:
        load_constants("papers", "adam", "stp")
    assert e.value.field == "constants"
