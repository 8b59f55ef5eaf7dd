"""Assertions and contexts shared by the tests."""

import os
from contextlib import contextmanager

import pytest


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


NOBODY = 65534


@contextmanager
def denied():
    """Make permission bits bite: as root (which ignores them), run the block with the
    effective uid/gid of nobody. Files it must reach need o+r (and directories o+x), and
    the modules it imports should be loaded already: an interpreter installed under
    /root (pyenv) is out of nobody's reach."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.setegid(NOBODY)
        os.seteuid(NOBODY)
    except PermissionError:
        os.setegid(0)
        pytest.skip("running as root without the right to drop privileges: chmod cannot deny access")
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
