"""Every command against bad input of every kind (issue 11, item 5).

Each case must end the way a user can act on: exit status 2, exactly one line on stderr
that starts ``scaleadvise: error:`` and names the flag, file, line or field at fault,
nothing on stdout, no traceback, and the working directory exactly as it was (no output
file created, no temp file left, no existing file touched).

The cases run in-process (the ``cli`` fixture) in a scratch directory holding good and
bad inputs; a few run as real processes through the installed entry points, where a
traceback from the interpreter itself would show. "Unreadable" and "unwritable" use
permissions: when the tests run as root, which ignores them, the command runs with the
effective uid of ``nobody`` for the duration of the call (skipped where that is not
possible), so the operating system really refuses.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import json

import pytest
from helpers import denied
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    names: str  # what the error line must name (a flag, file, line or field)
    denied: bool = False  # needs permissions to bite (unreadable input, unwritable output)


# ------------------------------------------------------------------ the scratch directory

SWEEP = "width,lr,loss\n" + "".join(
    f"{w},{2.0 ** e},{3 + 0.1 * (e + 7 + (w // 64).bit_length()) ** 2}\n" for w in (64, 128, 256) for e in range(-10, -3))
GRADS = "width,layer,step,grad_rms\n" + "".join(
    f"{w},{name},{s},{v * (w / 128) ** -1}\n" for w in (128, 256, 512) for s in (10, 20)
    for name, v in (("hidden", 1e-6), ("readout", 3e-5)))
ALIGN = "width,layer,step,log_alignment\n" + "".join(
    f"{w},{name},{s},{0.6 + 0.001 * s}\n" for w in (128, 256) for s in (0, 10, 20) for name in ("hidden", "readout"))
HEADERS = {"fit": "width,lr,loss", "epsilon": "width,layer,step,grad_rms", "align": "width,layer,step,log_alignment"}
GOOD_TABLE = {"fit": ("sweeps.csv", SWEEP), "epsilon": ("grads.csv", GRADS), "align": ("alignment.csv", ALIGN)}
MODEL = """name: tiny
depth: 2
dims: {vocab: 64}
tensors:
  - {name: embed, shape: [vocab, d], kind: embedding}
  - {name: "blocks.{i}.mlp", shape: [d, d], repeat: depth}
  - {name: readout, shape: [vocab, d]}
"""


def _bad_row(text: str, column: str, value: str) -> str:
    """``text`` with ``column`` of the first data row replaced by ``value``."""
    lines = text.splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index(column)] = value
    return "\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n"


def _files() -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {
        "model.yaml": MODEL,
        "consts.yaml": "embedding: 1\nhidden: 1\nreadout: 1\n",
        "custom.yaml": "a: {embedding: 0, hidden: 0.5, readout: 0.5}\nb: {embedding: 0, hidden: 0, readout: 0}\n",
        "afile": "a regular file, not a directory\n",
        "keep.yaml": "embedding: 2\nhidden: 2\nreadout: 2\n",  # an output that exists: must stay untouched
    }
    for name, text in GOOD_TABLE.values():
        files[name] = text
    for ext in ("yaml", "csv"):
        files[f"empty.{ext}"] = b""
        files[f"binary.{ext}"] = bytes(range(256)) * 4
        files[f"locked.{ext}"] = "embedding: 1\nhidden: 1\nreadout: 1\n" if ext == "yaml" else SWEEP
    files["latin1.yaml"] = "name: caf\xe9\ndepth: 2\n".encode("latin-1")
    files["latin1.csv"] = "width,lr,loss,note\n64,0.01,3.0,caf\xe9\n".encode("latin-1")
    files["invalid.yaml"] = "name: [unclosed\ndepth: 2\n"
    files["list.yaml"] = "- embedding\n- hidden\n"
    files["scalar.yaml"] = "42\n"
    files["ragged.csv"] = "width,lr,loss\n64,0.01,3.0\n64,0.02,3.1,9,9,9\n"
    files["wrong_cols.csv"] = "alpha,beta,gamma\n1,2,3\n"
    files["table.xyz"] = SWEEP
    files["garbage.parquet"] = b"not a parquet file at all"
    for ext in ("gz", "xz", "bz2", "zip"):
        files[f"garbage.csv.{ext}"] = b"not compressed data"
    files["bad.jsonl"] = '{"width": 64, "lr": 0.01\n{oops\n'
    files["bad.json"] = "[{\"width\": 64,"
    for cmd, header in HEADERS.items():
        files[f"header_{cmd}.csv"] = header + "\n"
    return files


@pytest.fixture
def scratch(monkeypatch):
    """A world-readable scratch directory (so nobody can traverse it) as the cwd."""
    root = Path(tempfile.mkdtemp(prefix="scaleadvise-bad-"))
    root.chmod(0o755)
    for name, content in _files().items():
        path = root / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        path.chmod(0o644)
    for d in ("adir.yaml", "adir.csv", "outdir"):
        (root / d).mkdir(mode=0o755)
    (root / "ro").mkdir()
    (root / "ro").chmod(0o555)
    (root / "locked.yaml").chmod(0)
    (root / "locked.csv").chmod(0)
    monkeypatch.chdir(root)
    yield root
    for p in (root / "ro", root / "locked.yaml", root / "locked.csv"):
        p.chmod(0o755)
    shutil.rmtree(root)


def _listing(root: Path) -> dict[str, tuple]:
    """Every path under root with its size, mtime and mode: any write or leftover shows."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


# ------------------------------------------------------------------ the cases

def _yaml_file_cases(prefix: str, args: tuple[str, ...], flag: str) -> list[Case]:
    """Every way a YAML file given to ``flag`` can be wrong."""
    kinds = {"missing": "nope.yaml", "directory": "adir.yaml", "empty": "empty.yaml", "binary": "binary.yaml",
             "latin1": "latin1.yaml", "invalid": "invalid.yaml", "list": "list.yaml", "scalar": "scalar.yaml",
             "unreadable": "locked.yaml"}
    return [Case(f"{prefix}-{flag.lstrip('-')}-{kind}", (*args, flag, name), name, denied=kind == "unreadable")
            for kind, name in kinds.items()]


def _table_file_cases(cmd: str, extra: tuple[str, ...] = ()) -> list[Case]:
    """Every way the input table of fit/epsilon/align can be wrong as a file."""
    kinds = {"missing": "nope.csv", "directory": "adir.csv", "empty": "empty.csv", "header-only": f"header_{cmd}.csv",
             "binary": "binary.csv", "latin1": "latin1.csv", "ragged": "ragged.csv", "wrong-columns": "wrong_cols.csv",
             "unknown-suffix": "table.xyz", "garbage-parquet": "garbage.parquet", "garbage-gz": "garbage.csv.gz",
             "garbage-xz": "garbage.csv.xz", "garbage-zip": "garbage.csv.zip",
             "bad-jsonl": "bad.jsonl", "bad-json": "bad.json", "unreadable": "locked.csv"}
    return [Case(f"{cmd}-file-{kind}", (cmd, name, *extra), name, denied=kind == "unreadable")
            for kind, name in kinds.items()]


def _plot_cases(cmd: str, args: tuple[str, ...]) -> list[Case]:
    kinds = {"directory": ("outdir", "outdir"), "unknown-suffix": ("fig.xyz", "fig.xyz"),
             "empty": ("", "--plot"), "missing-parent": ("missing/fig.png", "missing"),
             "parent-is-file": ("afile/fig.png", "afile"), "unwritable": ("ro/fig.png", "ro")}
    return [Case(f"{cmd}-plot-{kind}", (*args, "--plot", path), names, denied=kind == "unwritable")
            for kind, (path, names) in kinds.items()]


def _numbers(prefix: str, args: tuple[str, ...], flag: str, values: tuple[str, ...]) -> list[Case]:
    return [Case(f"{prefix}-{flag.lstrip('-')}={v}", (*args, flag, v), flag) for v in values]


NUMBERS = ("0", "-1", "nan", "inf", "abc")


def _app() -> list[Case]:
    return [
        Case("app-unknown-command", ("frobnicate",), "frobnicate"),
        Case("app-typo-command", ("prescrib",), "prescrib"),
        Case("app-unknown-option", ("--frobnicate",), "--frobnicate"),
        Case("app-version-with-value", ("--version=3",), "--version"),
        Case("app-help-then-junk", ("prescribe", "extra-argument"), "extra-argument"),
        Case("app-missing-option-value", ("prescribe", "--width"), "--width"),
        Case("app-unknown-command-option", ("prescribe", "--frobnicate"), "--frobnicate"),
    ]


def _prescribe() -> list[Case]:
    P = ("prescribe",)
    cases = []
    cases += _numbers("prescribe", P, "--width", ("0", "-1", "-4096", "nan", "inf", "abc", "1.5", "100"))
    cases += _numbers("prescribe", P, "--base-width", ("0", "-1", "abc", "nan"))
    cases += _numbers("prescribe", P, "--base-lr", NUMBERS)
    cases += _numbers("prescribe", P, "--depth", ("0", "-1", "abc", "100000000"))
    cases += _numbers("prescribe", P, "--vocab", ("1" + "0" * 20,))
    cases += _numbers("prescribe", ("prescribe", "--model", "mlp"), "--width", ("1" + "0" * 400,))
    cases += _numbers("prescribe", P, "--heads", ("0", "-2", "7"))
    cases += _numbers("prescribe", P, "--head-dim", ("0", "-16", "100", "abc"))
    cases += _numbers("prescribe", P, "--context", ("0", "-1"))
    cases += _numbers("prescribe", P, "--vocab", ("0", "-5"))
    cases += _numbers("prescribe", P, "--omega-readout", ("2", "-1", "nan", "abc"))
    cases += _numbers("prescribe", P, "--eps", ("-1", "nan", "inf", "abc", "per-leyer"))
    cases += _numbers("prescribe", ("prescribe", "--eps", "per-layer"), "--base-eps", ("0", "-1", "nan", "inf"))
    cases += _numbers("prescribe", P, "--alignment", ("sideways", "1,2", "x,y,z", "2,0.5,1", "nan,0.5,1",
                                                      "-0.1,0.5,1", "1,0.5,1,1,0.5,7", "inf,inf,inf"))
    cases += [
        Case("prescribe-param-unknown", (*P, "--param", "mupp"), "--param"),
        Case("prescribe-param-empty", (*P, "--param", ""), "--param"),
        Case("prescribe-optim-unknown", (*P, "--optim", "adamm"), "--optim"),
        Case("prescribe-optim-empty", (*P, "--optim", ""), "--optim"),
        Case("prescribe-model-unknown", (*P, "--model", "gpt5"), "--model"),
        Case("prescribe-model-no-context", (*P, "--model", "mlp", "--context", "128"), "--context"),
        Case("prescribe-constants-unknown", (*P, "--constants", "papers"), "--constants"),
        Case("prescribe-sgd-readout", (*P, "--optim", "sgd", "--sgd-readout", "most"), "--sgd-readout"),
        Case("prescribe-eps-atan2", (*P, "--optim", "adam-atan2", "--eps", "1e-8"), "--eps"),
        Case("prescribe-eps-sgd", (*P, "--optim", "sgd", "--eps", "per-layer"), "--eps"),
        Case("prescribe-base-eps-alone", (*P, "--base-eps", "1e-9"), "--base-eps"),
        Case("prescribe-custom-no-ab", (*P, "--param", "custom"), "--param"),
        Case("prescribe-custom-only-a", (*P, "--param", "custom", "--a", "0,0.5,0.5"), "--b"),
        Case("prescribe-ab-without-custom", (*P, "--a", "0,0,0", "--b", "0,0,0"), "--a"),
        Case("prescribe-custom-a-short", (*P, "--param", "custom", "--a", "0,1", "--b", "0,0,0"), "--a"),
        Case("prescribe-custom-a-text", (*P, "--param", "custom", "--a", "x,y,z", "--b", "0,0,0"), "--a"),
        Case("prescribe-custom-b-nan", (*P, "--param", "custom", "--a", "0,0,0", "--b", "nan,0,0"), "--b"),
        Case("prescribe-custom-b-inf", (*P, "--param", "custom", "--a", "0,0,0", "--b", "0,inf,0"), "--b"),
        Case("prescribe-custom-file-and-param", (*P, "--custom-file", "custom.yaml"), "--custom-file"),
    ]
    cases += _yaml_file_cases("prescribe", P, "--model")
    cases += _yaml_file_cases("prescribe", P, "--constants")
    cases += _yaml_file_cases("prescribe", (*P, "--param", "custom"), "--custom-file")
    # YAML that parses but says the wrong thing
    bad_models = {
        "model-missing-depth": ("name: x\ntensors: [{name: w, shape: [d, d]}]\n", "depth"),
        "model-depth-zero": ("name: x\ndepth: 0\ntensors: [{name: w, shape: [d, d]}]\n", "depth"),
        "model-depth-text": ("name: x\ndepth: deep\ntensors: [{name: w, shape: [d, d]}]\n", "depth"),
        "model-no-tensors": ("name: x\ndepth: 2\ntensors: []\n", "tensors"),
        "model-unknown-field": ("name: x\ndepth: 2\ncolour: red\ntensors: [{name: w, shape: [d, d]}]\n", "colour"),
        "model-bad-expression": ("name: x\ndepth: 2\ntensors: [{name: w, shape: [d, d +]}]\n", "d +"),
        "model-unknown-name": ("name: x\ndepth: 2\ntensors: [{name: w, shape: [d, e]}]\n", "'e'"),
        "model-call-in-shape": ("name: x\ndepth: 2\ntensors: [{name: w, shape: [d, 'exit()']}]\n", "exit()"),
        "model-fraction-shape": ("name: x\ndepth: 2\ntensors: [{name: w, shape: [d, d / 3]}]\n", "w shape"),
        "model-negative-dim": ("name: x\ndepth: 2\ndims: {v: -8}\ntensors: [{name: w, shape: [v, d]}]\n", "w shape"),
        "model-width-zero": ("name: x\nwidth: 0\ndepth: 2\ntensors: [{name: w, shape: [d, d]}]\n", "width"),
        "model-chain-zero": ("name: x\ndepth: 2\nhidden_chain: 0\ntensors: [{name: w, shape: [d, d]}]\n",
                             "hidden_chain"),
        "model-redefines-d": ("name: x\ndepth: 2\ndims: {d: 4}\ntensors: [{name: w, shape: [d, d]}]\n", "dims"),
        "model-bad-kind": ("name: x\ndepth: 2\ntensors: [{name: w, shape: [d, d], kind: conv}]\n", "kind"),
        "model-3d-shape": ("name: x\ndepth: 2\ntensors: [{name: w, shape: [d, d, d]}]\n", "shape"),
        "model-repeat-text": ("name: x\ndepth: 2\ntensors: [{name: w, shape: [d, d], repeat: many}]\n", "many"),
        "model-huge-shape": ("name: x\ndepth: 2\ntensors: [{name: w, shape: [d, 1e400]}]\n", "shape"),
        "model-zero-division": ("name: x\ndepth: 2\ntensors: [{name: w, shape: [d, d // 0]}]\n", "d // 0"),
    }
    bad_constants = {
        "constants-missing-field": ("embedding: 1\nhidden: 1\n", "readout"),
        "constants-text": ("embedding: 1\nhidden: lots\nreadout: 1\n", "hidden"),
        "constants-zero": ("embedding: 1\nhidden: 0\nreadout: 1\n", "hidden"),
        "constants-negative": ("embedding: -1\nhidden: 1\nreadout: 1\n", "embedding"),
        "constants-nan": ("embedding: 1\nhidden: .nan\nreadout: 1\n", "hidden"),
        "constants-inf": ("embedding: 1\nhidden: .inf\nreadout: 1\n", "hidden"),
        "constants-base-width-zero": ("base_width: 0\nembedding: 1\nhidden: 1\nreadout: 1\n", "base_width"),
        "constants-base-width-text": ("base_width: wide\nembedding: 1\nhidden: 1\nreadout: 1\n", "base_width"),
        "constants-no-optimizer": ("sgd:\n  stp: {embedding: 1, hidden: 1, readout: 1}\n", "adam"),
        "constants-no-param": ("adam:\n  mup: {embedding: 1, hidden: 1, readout: 1}\n", "stp"),
        "constants-nested-not-mapping": ("adam:\n  stp: [1, 2, 3]\n", "stp"),
    }
    bad_custom = {
        "custom-no-b": ("a: {embedding: 0, hidden: 0.5, readout: 0.5}\n", "custom-no-b.yaml"),
        "custom-a-list": ("a: [0, 0.5, 0.5]\nb: {embedding: 0, hidden: 0, readout: 0}\n", "'a'"),
        "custom-missing-hidden": ("a: {embedding: 0, readout: 0.5}\nb: {embedding: 0, hidden: 0, readout: 0}\n",
                                  "a.hidden"),
        "custom-text": ("a: {embedding: 0, hidden: half, readout: 0.5}\nb: {embedding: 0, hidden: 0, readout: 0}\n",
                        "a.hidden"),
        "custom-nan": ("a: {embedding: 0, hidden: .nan, readout: 0.5}\nb: {embedding: 0, hidden: 0, readout: 0}\n",
                       "a.hidden"),
        "custom-attention": ("a: {embedding: 0, hidden: 0.5, readout: 0.5}\nb: {embedding: 0, hidden: 0, readout: 0}\n"
                             "attention_scale: cube\n", "attention_scale"),
    }
    for kind, (text, names) in bad_models.items():
        cases.append(Case(f"prescribe-{kind}", (*P, "--model", f"@{kind}.yaml={text}"), names))
    for kind, (text, names) in bad_constants.items():
        cases.append(Case(f"prescribe-{kind}", (*P, "--constants", f"@{kind}.yaml={text}"), names))
    for kind, (text, names) in bad_custom.items():
        cases.append(Case(f"prescribe-{kind}", (*P, "--param", "custom", "--custom-file", f"@{kind}.yaml={text}"), names))
    return cases


def _check() -> list[Case]:
    ok = {"--a": "0,0,0", "--b": "0,0.5,0.5", "--c": "0,1,1"}

    def with_(flag: str, value: str) -> tuple[str, ...]:
        args = dict(ok, **{flag: value})
        return ("check", *[x for kv in args.items() for x in kv])

    cases = [Case("check-missing-a", ("check", "--b", "0,0,0", "--c", "0,0,0"), "--a")]
    for flag in ok:
        for v in ("1,2", "x,y,z", "nan,0,0", "0,inf,0", "0,0,-inf", "", "0,0,0,0"):
            cases.append(Case(f"check-{flag.lstrip('-')}={v}", with_(flag, v), flag))
    base = with_("--a", "0,0,0")
    cases += _numbers("check", base, "--optim", ("adamm", ""))
    cases += _numbers("check", base, "--alignment", ("sideways", "2,0.5,1", "nan,nan,nan", "1,0.5"))
    cases += _numbers("check", base, "--omega-readout", ("nan", "1.5", "-0.5", "abc"))
    return cases


def _equiv() -> list[Case]:
    E = ("equiv", "--param", "stp", "--to-form", "ntk")
    W = (*E, "--width", "256", "--base-width", "64")
    cases = [
        Case("equiv-missing-param", ("equiv", "--to-form", "ntk"), "--param"),
        Case("equiv-param-unknown", ("equiv", "--param", "foo", "--to-form", "ntk"), "--param"),
        Case("equiv-to-form-unknown", ("equiv", "--param", "stp", "--to-form", "foo"), "--to-form"),
        Case("equiv-no-target", ("equiv", "--param", "stp"), "--to-form"),
        Case("equiv-both-targets", (*E, "--theta", "0,0,0"), "--theta"),
        Case("equiv-not-equivalent-width", ("equiv", "--param", "stp", "--to-form", "mup", "--width", "256"),
             "--width"),
        Case("equiv-out-without-width", (*E, "--constants-out", "c.yaml"), "--constants-out"),
        Case("equiv-pres-out-without-width", (*E, "--prescription-out", "p.json"), "--prescription-out"),
        # the second output fails: the first must not be written either
        Case("equiv-second-output-fails", (*W, "--constants-out", "c.yaml", "--prescription-out", "missing/p.json"),
             "missing"),
        Case("equiv-existing-output-kept", (*W, "--constants-out", "keep.yaml", "--prescription-out", "outdir"),
             "outdir"),
        Case("equiv-outputs-same-file", (*W, "--constants-out", "x.out", "--prescription-out", "./x.out"), "same file"),
    ]
    for v in ("x", "1,2", "nan,0,0", "0,inf,0"):
        cases.append(Case(f"equiv-theta={v}", ("equiv", "--param", "stp", "--theta", v), "--theta"))
    cases += _numbers("equiv", ("equiv", "--param", "stp", "--theta", "0,0,0"), "--optim", ("adamm",))
    cases += _numbers("equiv", E, "--alignment", ("sideways", "2,0.5,1"))
    cases += _numbers("equiv", E, "--width", ("0", "-256", "abc", "100"))
    cases += _numbers("equiv", (*E, "--width", "256"), "--base-width", ("0", "-64"))
    cases += _numbers("equiv", (*E, "--width", "256"), "--base-lr", ("0", "-1", "nan", "inf"))
    cases += _numbers("equiv", (*E, "--width", "256"), "--depth", ("0", "-1"))
    cases += _numbers("equiv", (*E, "--width", "256"), "--head-dim", ("0", "-16"))
    cases += _numbers("equiv", (*E, "--width", "256"), "--model", ("gpt5",))
    cases += _yaml_file_cases("equiv", (*E, "--width", "256"), "--constants")
    cases += _yaml_file_cases("equiv", (*E, "--width", "256"), "--model")[:3]
    for flag, name in (("--constants-out", "c.yaml"), ("--prescription-out", "p.json")):
        for kind, (path, names) in {"directory": ("outdir", "outdir"), "missing-parent": (f"missing/{name}", "missing"),
                                    "parent-is-file": (f"afile/{name}", "afile"),
                                    "unwritable": (f"ro/{name}", "ro")}.items():
            cases.append(Case(f"equiv-{flag.lstrip('-')}-{kind}", (*W, flag, path), names,
                              denied=kind == "unwritable"))
    return cases


def _presets() -> list[Case]:
    return [Case("presets-extra-argument", ("presets", "gpt2"), "gpt2"),
            Case("presets-unknown-option", ("presets", "--yaml"), "--yaml")]


def _column_cases(cmd: str, columns: dict[str, tuple[str, ...]], extra: tuple[str, ...] = ()) -> list[Case]:
    """A bad value in the first data row of each column: the error names the column and line 2."""
    name, text = GOOD_TABLE[cmd]
    cases = []
    for column, values in columns.items():
        for v in values:
            content = _bad_row(text, column, v)
            cases.append(Case(f"{cmd}-{column}={v or 'empty'}", (cmd, f"@bad_{column}.csv={content}", *extra),
                              f"'{column}'"))
    return cases


def _fit() -> list[Case]:
    F = ("fit", "sweeps.csv", "--bootstrap", "0")
    cases = _table_file_cases("fit")
    cases += _column_cases("fit", {"width": ("nan", "inf", "-64", "0", "abc", ""), "lr": ("nan", "inf", "-0.01", "0",
                                                                                       "abc"), "loss": ("abc",)})
    cases += _numbers("fit", F, "--target-width", ("0", "-1", "nan", "inf", "abc"))
    cases += _numbers("fit", F, "--step", ("-1", "abc"))
    cases += _numbers("fit", F, "--bootstrap", ("-1", "abc"))
    cases += _numbers("fit", F, "--transfer-tol", ("-1", "nan", "abc"))
    cases += _numbers("fit", F, "--optimum", ("best",))
    cases += _numbers("fit", F, "--param", ("mupp",))
    cases += _numbers("fit", F, "--optim", ("adamm",))
    cases += _numbers("fit", F, "--setting", ("sideways",))
    cases += _numbers("fit", F, "--group-by", ("colour",))
    cases += [Case(f"fit-{col}-col-missing", (*F, f"--{col}-col", "nope"), "nope") for col in ("width", "lr", "loss")]
    cases += _plot_cases("fit", F)
    return cases


def _epsilon() -> list[Case]:
    E = ("epsilon", "grads.csv")
    cases = _table_file_cases("epsilon")
    cases += _column_cases("epsilon", {"width": ("nan", "0", "-128", "abc"), "grad_rms": ("nan", "-1e-6", "0", "abc")})
    cases.append(Case("epsilon-unknown-layer", ("epsilon", f"@gizmo.csv={GRADS.replace('readout', 'gizmo')}"),
                      "gizmo"))
    cases.append(Case("epsilon-nothing-given", ("epsilon",), "--grad-rms"))
    cases += _numbers("epsilon", E, "--eps", ("0", "-1", "nan", "inf", "abc"))
    cases += _numbers("epsilon", E, "--base-width", ("0", "nan"))
    cases += _numbers("epsilon", E, "--target-width", ("0", "nan", "inf"))
    cases += _numbers("epsilon", E, "--state-dtype", ("fp8",))
    cases += _numbers("epsilon", E, "--confidence", ("0", "1", "nan"))
    cases += _numbers("epsilon", E, "--min-eps", ("0", "nan"))
    cases += _numbers("epsilon", E, "--thresholds", ("x", "0", "-1,1", "nan", ","))
    cases += _numbers("epsilon", E, "--safe-ratio", ("0", "nan"))
    cases += _numbers("epsilon", E, "--optim", ("adamm", "sgd"))
    cases += _numbers("epsilon", E, "--param", ("mupp",))
    cases += _numbers("epsilon", ("epsilon", "--param", "mfp"), "--grad-rms",
                      ("hidden", "hidden=x@1024", "hidden=-1@1024", "hidden=nan@1024", "hidden=1e-7@0",
                       "hidden=1e-7@nan", "gizmo=1e-7@1024"))
    cases += [Case("epsilon-grad-rms-col-missing", (*E, "--grad-rms-col", "nope"), "nope")]
    cases += _plot_cases("epsilon", E)
    return cases


def _align() -> list[Case]:
    A = ("align", "alignment.csv")
    cases = _table_file_cases("align")
    cases += _column_cases("align", {"width": ("nan", "0", "abc"), "step": ("-3", "abc"),
                                     "log_alignment": ("nan", "abc")})
    cases += _numbers("align", A, "--tolerance", ("0", "0.3", "nan", "abc"))
    cases += _numbers("align", A, "--param", ("mupp",))
    cases += _numbers("align", A, "--optim", ("adamm",))
    cases += _numbers("align", A, "--alignment", ("sideways", "2,0.5,1"))
    cases += [Case("align-step-col-missing", (*A, "--step-col", "nope"), "nope")]
    cases += _plot_cases("align", A)
    return cases


CASES = [*_app(), *_prescribe(), *_check(), *_equiv(), *_presets(), *_fit(), *_epsilon(), *_align()]

# ------------------------------------------------------------------ the cases nobody listed

_NUMBERISH = st.one_of(
    st.integers(-(2**70), 2**70).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "0", "-0", "1e309", "0x10", "1_000", "½", "nan", "-inf", "per-layer", "full", "none"]),
    st.text(max_size=12))
_FLAGS = {"prescribe": ["--width", "--base-width", "--base-lr", "--depth", "--heads", "--head-dim", "--context",
                        "--vocab", "--eps", "--base-eps", "--alignment", "--omega-readout", "--param", "--optim",
                        "--model", "--constants", "--sgd-readout"],
          "check": ["--optim", "--alignment", "--omega-readout", "--a", "--b", "--c"],
          "equiv": ["--width", "--base-width", "--base-lr", "--theta", "--to-form", "--optim", "--depth", "--head-dim"]}
_BASE = {"prescribe": ("prescribe", "--json", "--no-tensors", "--depth", "2"),
         "check": ("check", "--a", "0,0,0", "--b", "0,0.5,0.5", "--c", "0,1,1", "--json"),
         "equiv": ("equiv", "--param", "stp", "--to-form", "ntk", "--json")}


@st.composite
def _command_lines(draw):
    cmd = draw(st.sampled_from(sorted(_FLAGS)))
    flags = draw(st.lists(st.sampled_from(_FLAGS[cmd]), min_size=1, max_size=3, unique=True))
    args = [x for f in flags for x in (f, draw(_NUMBERISH))]
    return (*_BASE[cmd], *args)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(args=_command_lines())
def test_any_value_of_any_flag_is_an_answer_or_a_clean_error(args, cli):
    """Whatever a user types into these flags: a JSON answer (exit 0) or one clean line (exit 2)."""
    code, out, err = cli(*args)
    if code == 0:
        json.loads(out)
    else:
        _assert_clean_failure(Case("fuzz", args, ""), code, out, err)


def _materialize(args: tuple[str, ...], root: Path) -> list[str]:
    """``@name=content`` arguments become files written into the scratch directory first."""
    out = []
    for a in args:
        if a.startswith("@") and "=" in a:
            name, content = a[1:].split("=", 1)
            (root / name).write_text(content)
            (root / name).chmod(0o644)
            a = name
        out.append(a)
    return out


def test_the_harness_is_as_wide_as_promised():
    assert len(CASES) >= 250
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {c.args[0] for c in CASES}
    assert {"prescribe", "check", "equiv", "presets", "fit", "epsilon", "align"} <= commands


def _assert_clean_failure(case: Case, code: int, out: str, err: str) -> None:
    assert code == 2, f"exit {code}\nstdout: {out[:500]}\nstderr: {err[-2000:]}"
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), f"not one line on stderr:\n{err}"
    assert lines[0].startswith("scaleadvise: error: "), lines[0]
    assert case.names in lines[0], f"the error does not name {case.names!r}: {lines[0]}"
    assert out == "", f"stdout is not empty: {out[:500]}"


_READABLE = {"--model": "model.yaml", "--constants": "consts.yaml", "--custom-file": "custom.yaml"}


def _warm_up(args: list[str], elsewhere: Path, cli) -> None:
    """Run the command once with the refused file swapped for an allowed one, so that every
    module it imports is loaded before the run as nobody, who cannot read an interpreter
    installed under /root."""
    swapped = []
    for i, a in enumerate(args):
        if a == "locked.csv":
            a = GOOD_TABLE[args[0]][0]
        elif a == "locked.yaml":
            a = _READABLE[args[i - 1]]
        elif a.startswith("ro/"):
            a = str(elsewhere / a[3:])
        swapped.append(a)
    cli(*swapped)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, scratch, cli, tmp_path):
    args = _materialize(case.args, scratch)
    if case.denied and os.geteuid() == 0:
        _warm_up(args, tmp_path, cli)
    before = _listing(scratch)
    if case.denied:
        with denied():
            code, out, err = cli(*args)
    else:
        code, out, err = cli(*args)
    _assert_clean_failure(case, code, out, err)
    assert _listing(scratch) == before, "the working directory changed"


# ------------------------------------------------------------------ as real processes

ENTRY = Path(sys.executable).with_name("scaleadvise")
PROCESS_CASES = [c for c in CASES if c.id in {
    "app-unknown-command", "prescribe-width=0", "prescribe-head-dim=0", "prescribe-model-directory",
    "prescribe-constants-binary", "check-a=nan,0,0", "equiv-constants-out-directory", "fit-file-binary",
    "fit-plot-directory", "epsilon-plot-unknown-suffix", "align-file-missing", "presets-extra-argument"}]


@pytest.mark.parametrize("how", ["entry-point", "python-m"])
@pytest.mark.parametrize("case", PROCESS_CASES, ids=[c.id for c in PROCESS_CASES])
def test_bad_input_in_a_real_process(case, how, scratch, tmp_path):
    if how == "entry-point" and not ENTRY.exists():
        pytest.skip(f"{ENTRY} is not installed")
    args = _materialize(case.args, scratch)
    before = _listing(scratch)
    cmd = [str(ENTRY)] if how == "entry-point" else [sys.executable, "-m", "scaleadvise"]
    env = dict(os.environ, MPLCONFIGDIR=str(tmp_path), COLUMNS="120")
    r = subprocess.run(cmd + args, capture_output=True, text=True, timeout=120, cwd=scratch, env=env)
    _assert_clean_failure(case, r.returncode, r.stdout, r.stderr)
    assert _listing(scratch) == before, "the working directory changed"


def test_the_process_cases_exist():
    assert len(PROCESS_CASES) == 12
