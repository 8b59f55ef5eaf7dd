"""core/model.py: dimension expressions, model descriptions expanded at a width, the
hidden chain, overrides, and errors that name the model file and field. (Validation of a
YAML's fields and a user model's classification are in tests/test_prescribe.py.)"""

import pytest

from scaleadvise.core.model import eval_dim, expand, hidden_chain, list_presets, load_model, parameter_count, with_overrides
from scaleadvise.errors import UserError

ENV = {"d": 256, "depth": 4, "head_dim": 64}


@pytest.mark.parametrize("expr,value", [
    (128, 128), ("4 * d", 1024), ("d // head_dim", 4), ("(d + 1) * 2", 514), ("-d + 2 * d", 256),
    ("d / 3", 256 / 3), ("2 * depth", 8),
])
def test_eval_dim(expr, value):
    assert eval_dim(expr, ENV) == value


@pytest.mark.parametrize("expr,message", [
    ("d // 0", "divides by zero"), ("d / (depth - 4)", "divides by zero"),
    ("d ** 2", "only numbers, names and"), ("__import__('os')", "only numbers, names and"),
    ("d +", "is not valid"), ("e * 2", r"unknown name 'e' \(known: d, depth, head_dim\)"),
])
def test_eval_dim_errors_name_the_model_field(expr, message):
    with pytest.raises(UserError, match=message) as e:
        eval_dim(expr, ENV)
    assert e.value.field == "model"


def test_presets():
    assert list_presets() == ["gpt2", "llama", "mlp", "nanodo"]


def test_the_papers_mlp_at_width_256():
    """§3.1's network: input 784 -> d, three hidden d -> d, output d -> 10, with biases."""
    tensors = expand(load_model("mlp"), 256)
    got = {t.name: (t.shape, t.layer_type, t.scale_dim) for t in tensors}
    assert got["input"] == ([256, 784], "embedding", 256)
    assert got["input.bias"] == ([256], "embedding", 256)
    assert got["hidden.2"] == ([256, 256], "hidden", 256)
    assert got["hidden.2.bias"] == ([256], "embedding", 256)
    assert got["output"] == ([10, 256], "readout", 256)
    assert len(tensors) == 2 + 2 * 3 + 1
    assert parameter_count(tensors) == 784 * 256 + 256 + 3 * (256 * 256 + 256) + 10 * 256


def test_blocks_are_listed_block_by_block():
    names = [t.name for t in expand(load_model("nanodo"), 256)][:8]
    assert names == ["embed.tokens", "embed.positions", "blocks.0.attn_norm", "blocks.0.attn.q", "blocks.0.attn.k",
                     "blocks.0.attn.v", "blocks.0.attn.o", "blocks.0.mlp_norm"]


def test_hidden_chain():
    """Two dense layers per attention and per MLP on the residual path: 4 per block."""
    assert hidden_chain(load_model("nanodo"), 1024) == 32
    assert hidden_chain(load_model("gpt2"), 768) == 48
    assert hidden_chain(load_model("mlp"), 1024) == 3  # default: depth


def test_overrides():
    spec = with_overrides(load_model("nanodo"), depth=2, vocab=1000, head_dim=None)
    tensors = expand(spec, 256)
    assert spec.depth == 2 and next(t.shape for t in tensors if t.name == "embed.tokens") == [1000, 256]
    assert sum(t.name.endswith("mlp.up") for t in tensors) == 2
    with pytest.raises(UserError, match="model mlp has no dimension 'context'") as e:
        with_overrides(load_model("mlp"), context=128)
    assert e.value.field == "context"


@pytest.mark.parametrize("width,field,message", [
    (0, "width", "must be a positive integer, got 0"),
    (100, "width", "100 is not divisible by the head dimension 128 (model nanodo)"),
])
def test_expand_errors_name_the_field(width, field, message):
    with pytest.raises(UserError) as e:
        expand(load_model("nanodo"), width)
    assert e.value.field == field and e.value.message.startswith(message)


@pytest.mark.parametrize("tensors,message", [
    ("[{name: w, shape: [d, d / 3]}]", "w shape = 341.333 at width 1024 is not a positive integer"),
    ("[{name: w, shape: [d, 1e400]}]", "w shape = inf at width 1024 is not a positive integer"),
    ("[{name: 'w{i}', shape: [d, d], repeat: depth / 2}]", "w{i} repeat = 1.5 at width 1024 is not an integer >= 0"),
])
def test_shapes_that_are_not_sizes(tmp_path, tensors, message):
    f = tmp_path / "m.yaml"
    f.write_text(f"name: m\ndepth: 3\ntensors: {tensors}\n")
    with pytest.raises(UserError, match="model m: " + message.replace("(", r"\(").replace("{", r"\{")) as e:
        expand(load_model(str(f)), 1024)
    assert e.value.field == "model"


def test_an_expression_error_in_a_users_file_names_the_file(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("name: m\ndepth: 2\ntensors: [{name: w, shape: [d, d // 0]}]\n")
    with pytest.raises(UserError, match=f"^model: {f}: dimension expression 'd // 0' divides by zero$"):
        load_model(str(f))


@pytest.mark.parametrize("content,message", [
    ("- a\n- b\n", "expected a mapping of model fields"),
    ("name: m\ndepth: 2\ntensors: [{name: w, shape: [d, d], kind: conv}]\n", "field 'tensors.0.kind'"),
])
def test_load_model_errors(tmp_path, content, message):
    f = tmp_path / "m.yaml"
    f.write_text(content)
    with pytest.raises(UserError, match=message) as e:
        load_model(str(f))
    assert e.value.field == "model" and e.value.message.startswith(str(f))


def test_unknown_preset_suggests_and_a_missing_file_is_named():
    with pytest.raises(UserError, match="did you mean 'llama'") as e:
        load_model("lama")
    assert e.value.field == "model"
    with pytest.raises(UserError, match="^model: nope.yaml: no such file$"):
        load_model("nope.yaml")
