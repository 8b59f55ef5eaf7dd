"""Write prescribe_none.json: sha256 of `scaleadvise prescribe ... --json` (stdout, exit code,
stderr) for many requests, as the code before depth and weight decay produced them.

Written by the code before issue 12: first at commit 312d47c, then again at main ff00ac0 (whose
error lines gained the ``--flag: message`` form; the 296 successful outputs did not change), with
``PYTHONPATH=<a checkout of main> python tests/data/make_prescribe_none.py``.
tests/test_depth_prescribe.py reruns every request with and without ``--depth-param none``
and asserts the same bytes (issue 12: `--depth-param none` is bit-identical to today).
"""

import contextlib
import hashlib
import io
import itertools
import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("prescribe_none.json")


def requests() -> list[list[str]]:
    out = []
    for param, optim, width, model in itertools.product(
            ("stp", "ntk", "mup", "mfp", "umup"), ("sgd", "adam", "adamw", "adam-atan2", "adafactor", "adam-ps", "lion"),
            (256, 4096), ("nanodo", "gpt2", "llama", "mlp")):
        out.append(["--param", param, "--optim", optim, "--width", str(width), "--model", model])
    extras = [
        ["--eps", "per-layer", "--base-eps", "1e-8", "--width", "8192"],
        ["--eps", "per-layer", "--optim", "adafactor", "--width", "2048", "--base-width", "256"],
        ["--alignment", "none", "--param", "mup", "--optim", "sgd", "--width", "4096"],
        ["--alignment", "0.7,0.5,0.7", "--param", "stp", "--width", "2048"],
        ["--alignment", "yang-hu", "--param", "ntk", "--width", "2048"],
        ["--constants", "paper", "--base-lr", "2e-4", "--width", "4096"],
        ["--constants", "paper", "--param", "mup", "--base-width", "256", "--width", "4096"],
        ["--depth", "4", "--head-dim", "16", "--vocab", "256", "--context", "64", "--width", "256", "--base-width", "32"],
        ["--depth", "32", "--model", "llama", "--width", "8192"],
        ["--heads", "8", "--width", "1024"],
        ["--param", "custom", "--a", "0,0,1", "--b", "0,0.5,0", "--width", "2048", "--base-width", "256"],
        ["--omega-readout", "1", "--width", "4096"],
        ["--sgd-readout", "max", "--optim", "sgd", "--param", "mup", "--width", "4096"],
        ["--param", "mup-na", "--width", "4096"],
        ["--width", "0"], ["--base-lr", "nan"], ["--eps", "-1"], ["--model", "nope"],
        ["--optim", "adam-atan2", "--eps", "1e-8"],
    ]
    return out + extras


def run(args: list[str], extra: tuple[str, ...] = ()) -> str:
    """The hash of one request; ``extra`` flags reach the command but not the ``command``
    field the JSON echoes (so that `--depth-param none` can be compared with its absence)."""
    from scaleadvise.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["scaleadvise", "prescribe", *args, "--json"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(["prescribe", *args, *extra, "--json"])
                code = 0
            except SystemExit as e:
                code = int(e.code or 0)
    finally:
        sys.argv = argv
    return hashlib.sha256(f"{code}\n{out.getvalue()}\n{err.getvalue()}".encode()).hexdigest()


if __name__ == "__main__":
    doc = {" ".join(r): run(r) for r in requests()}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(doc)} requests -> {OUT}")
