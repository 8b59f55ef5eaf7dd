"""core/classify.py: the one layer-type classification, by growth (the muP cheat sheet's
rule) and by name (the names the emitted script and common model families use)."""

import re

import pytest

from scaleadvise.core.classify import LABELS, LAYER_TYPES, by_growth, by_name
from scaleadvise.core.model import layer_type_of
from scaleadvise.core.model import expand, load_model
from scaleadvise.errors import UserError


@pytest.mark.parametrize("kind,grows_in,grows_out,label", [
    ("linear", True, True, "hidden"),       # d -> d
    ("linear", True, False, "readout"),     # d -> vocab
    ("linear", False, True, "embedding"),   # vocab/pixels -> d
    ("linear", False, False, "fixed"),      # nothing grows: no exponent applies
    ("embedding", False, True, "embedding"),
    ("norm", False, True, "embedding"),     # a gain of length d has fan-in 1
    ("bias", False, True, "embedding"),
    ("bias", False, False, "fixed"),        # a readout bias [vocab]
    ("norm", True, True, "embedding"),      # vectors are judged by their length alone
])
def test_by_growth(kind, grows_in, grows_out, label):
    assert by_growth(kind, grows_in, grows_out) == label


def test_labels():
    assert LAYER_TYPES == ("embedding", "hidden", "readout") and LABELS == (*LAYER_TYPES, "fixed")


@pytest.mark.parametrize("name,layer", [
    ("embed.tokens", "embedding"), ("blocks.3.mlp.up.weight", "hidden"), ("blocks.0.attn_norm", "embedding"),
    ("blocks.7.attn.o", "hidden"), ("readout", "readout"), ("lm_head.weight", "readout"),
    ("transformer.wte", "embedding"), ("transformer.wpe.weight", "embedding"), ("h.0.attn.c_attn.bias", "embedding"),
    ("model.norm", "embedding"), ("tok_emb", "embedding"), ("ln_f", "embedding"), ("unembed", "readout"),
    ("HIDDEN", "hidden"), ("  readout ", "readout"), ("ffn.w1", "hidden"),
])
def test_by_name(name, layer):
    assert by_name(name) == layer


@pytest.mark.parametrize("name", ["gizmo", "conv1", ""])
def test_unknown_names(name):
    assert by_name(name) is None


@pytest.mark.parametrize("preset", ["nanodo", "gpt2"])
def test_by_name_agrees_with_by_growth_on_the_presets(preset):
    """The names the emitted script writes into grads.csv/alignment.csv (NanoDO) and GPT-2's
    classify by name as their shapes do."""
    spec = load_model(preset)
    for t in expand(spec, spec.width):
        assert by_name(t.name) == t.layer_type, t.name


def test_layer_type_of_names_where_the_name_came_from():
    assert layer_type_of("blocks.0.mlp.up", "grads.csv: line 2") == "hidden"
    with pytest.raises(UserError, match=re.escape("grads.csv: line 7: unknown layer 'gizmo'")):
        layer_type_of("gizmo", "grads.csv: line 7")


@pytest.mark.parametrize("name,layer", [
    ("layers.3.attention.wq", "hidden"), ("layers.0.feed_forward.w2.weight", "hidden"), ("output", "readout"),
    ("tok_embeddings", "embedding"), ("input", "embedding"), ("hidden.2", "hidden"), ("h.5.attn.c_attn", "hidden"),
])
def test_csv_names_of_the_shipped_presets_have_their_derived_types(name, layer):
    """Names no rule knows (llama's wq/w2, the mlp's input/output) take the type their preset
    derives from its shapes (the one classification, core/classify.by_growth)."""
    assert layer_type_of(name, "grads.csv: line 2") == layer
