"""The README's tour shows real output: rerun its commands on the committed example data
and check every table row and verdict line the README quotes is still what they print."""

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# Lines worth pinning: table rows and the sentences that carry the numbers.
QUOTED = re.compile(r"^(│|stp \+ adam|  lr\* =|  at width|  the base LR|  inconclusive|Recommendation|prescribe with)")


def tour_blocks() -> list[tuple[list[str], list[str]]]:
    """(argv, quoted output lines) for each `$ scaleadvise ...` in the README's code blocks
    whose inputs are committed files (emit-train and training write new ones)."""
    out = []
    for block in re.findall(r"```\n(.*?)```", README, flags=re.S):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("$ scaleadvise "):
            continue
        if lines[0].split()[2] == "emit-train":
            continue
        argv = shlex.split(lines[0][2:])[1:]
        quoted = [line.rstrip() for line in lines[1:] if QUOTED.match(line) and "..." not in line]
        out.append((argv, quoted))
    return out


BLOCKS = tour_blocks()


def test_the_tour_is_found():
    assert {argv[0] for argv, _ in BLOCKS} == {"prescribe", "fit", "align", "epsilon"}
    assert sum(len(q) for _, q in BLOCKS) >= 20


@pytest.mark.parametrize("argv,quoted", BLOCKS, ids=[" ".join(a[:2]) for a, _ in BLOCKS])
def test_tour_output_is_current(cli, monkeypatch, argv, quoted):
    monkeypatch.chdir(ROOT)
    code, out, err = cli(*argv)
    assert code == 0, err
    printed = [line.rstrip() for line in (out + err).splitlines()]
    for line in quoted:
        assert any(line in p for p in printed), f"README quotes a line `{' '.join(argv[:2])}` no longer prints:\n{line}"
