"""Assertions shared by the CLI tests."""


def assert_bad_input(cli, *args: str, match: str) -> None:
    """A command fails as bad input must: exit 2, one line on stderr, nothing on stdout."""
    code, out, err = cli(*args)
    assert code == 2, (out, err)
    assert err.startswith("scaleadvise: error:") and err.count("\n") == 1, err
    assert match in err, err
    assert out == ""


def nanodo_yaml(width: int = 64, depth: int = 1, ffn: str = "d") -> str:
    """A small NanoDO model description (the tensors of presets/models/nanodo.yaml): head dim 16,
    context 32, byte vocabulary; `ffn` as an expression of the width d."""
    blocks = "\n".join(f'  - {{name: "blocks.{{i}}.{name}", shape: {shape}{kind}, repeat: depth}}' for name, shape, kind in (
        ("attn_norm", "[d]", ", kind: norm"), ("attn.q", "[d, d]", ""), ("attn.k", "[d, d]", ""),
        ("attn.v", "[d, d]", ""), ("attn.o", "[d, d]", ""), ("mlp_norm", "[d]", ", kind: norm"),
        ("mlp.up", "[ffn, d]", ""), ("mlp.down", "[d, ffn]", "")))
    return f"""name: tiny-nanodo
width: {width}
depth: {depth}
head_dim: 16
dims: {{vocab: 256, context: 32, heads: d // head_dim, ffn: {ffn}}}
tensors:
  - {{name: embed.tokens, shape: [vocab, d], kind: embedding}}
  - {{name: embed.positions, shape: [context, d], kind: embedding}}
{blocks}
  - {{name: final_norm, shape: [d], kind: norm}}
  - {{name: readout, shape: [vocab, d]}}
"""
