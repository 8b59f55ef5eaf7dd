"""Which layer type a tensor is: embedding (l = 1), hidden (2..L) or readout (L+1) (§2.1).

The one home of the classification, used by model descriptions (``core.model``), by
``scaleadvise.torch.parameterize`` on a user's module, and by the analysis commands that
read tensor names from CSV files (``epsilon``, ``align``).

By growth (the muP cheat sheet's rule, from shapes at two widths):

    fan-in fixed,  fan-out grows  -> embedding   (input layers; norm gains and biases too)
    fan-in grows,  fan-out grows  -> hidden
    fan-in grows,  fan-out fixed  -> readout
    nothing grows                 -> fixed       (width-independent: no exponent applies)

By name, when no second width is at hand: the names of the emitted NanoDO script and of
the common model families (``tok_emb``, ``wte``, ``lm_head``, ``mlp``, ``attn``, ...).
"""

from typing import Literal


LayerType = Literal["embedding", "hidden", "readout"]
LAYER_TYPES: tuple[LayerType, ...] = ("embedding", "hidden", "readout")
Label = Literal["embedding", "hidden", "readout", "fixed"]
LABELS: tuple[Label, ...] = (*LAYER_TYPES, "fixed")
TensorKind = Literal["linear", "embedding", "norm", "bias"]


def by_growth(kind: TensorKind, grows_in: bool, grows_out: bool) -> Label:
    """The cheat sheet's rule. A vector (gain, bias) has fan-in 1: embedding-type where
    its length grows with width, fixed where it does not (a readout bias [vocab])."""
    if kind in ("norm", "bias"):
        return "embedding" if grows_out else "fixed"
    if grows_in:
        return "hidden" if grows_out else "readout"
    return "embedding" if grows_out else "fixed"


# (needle, layer type), first match wins. A needle matches a dotted part of the name
# exactly, as a prefix or as a suffix; a needle starting with "." matches the name's end.
_NAME_RULES: tuple[tuple[str, LayerType], ...] = (
    ("readout", "readout"), ("lm_head", "readout"), ("unembed", "readout"), ("head", "readout"),
    ("embed", "embedding"), ("wte", "embedding"), ("wpe", "embedding"), ("tok_emb", "embedding"),
    ("pos_emb", "embedding"), ("norm", "embedding"), ("ln", "embedding"), (".bias", "embedding"),
    ("attn", "hidden"), ("mlp", "hidden"), ("ffn", "hidden"), ("hidden", "hidden"), ("blocks", "hidden"),
)


def by_name(name: str) -> LayerType | None:
    """Layer type of a tensor name (or of a layer-type name itself); None if unknown."""
    key = name.strip().lower()
    if key.endswith(".weight"):
        key = key[: -len(".weight")]
    if key in LAYER_TYPES:
        return key  # type: ignore[return-value]
    parts = key.split(".")
    for needle, layer in _NAME_RULES:
        if needle.startswith("."):
            if key.endswith(needle):
                return layer
        elif any(p == needle or p.startswith(needle) or p.endswith(needle) for p in parts):
            return layer
    return None
