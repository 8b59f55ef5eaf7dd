"""docs/CONTRACTS.md against the code, both ways, so the document cannot drift.

* JSON: every field each command's ``--json`` prints (over examples that reach every
  optional field) is listed in the command's table, and every listed field is printed.
* Columns: each reader's table (name, required, aliases) is the one `fit`, `epsilon`
  and `align` declare; each file the script writes has the columns its code declares.
* Flags: each listed flag exists on each command listed for it.
"""

import ast
import json
import re
import sys
from pathlib import Path

import pytest
import typer

import scaleadvise
from scaleadvise.cli.app import app

DOC = Path(__file__).resolve().parents[1] / "docs" / "CONTRACTS.md"
PACKAGE = Path(scaleadvise.__file__).parent
ROOT = Path(__file__).resolve().parent.parent


def _sections() -> dict[str, list[list[str]]]:
    """Heading (### or ##) -> the rows of the table under it, as lists of cell texts."""
    out: dict[str, list[list[str]]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        if line.startswith("#"):
            current = line.lstrip("#").strip()
            out[current] = []
        elif current and line.startswith("|") and not set(line) <= set("|- "):
            out[current].append([c.strip() for c in line.strip().strip("|").split("|")])
    return {k: rows[1:] for k, rows in out.items() if rows}  # drop each table's header row


def _code(cell: str) -> list[str]:
    """The `backticked` names of a cell."""
    return re.findall(r"`([^`]+)`", cell)


SECTIONS = _sections()


# ------------------------------------------------------------------ JSON

def _pattern(path: str) -> tuple[str, ...]:
    """'tensors[].name' -> ('tensors', '[]', 'name')."""
    out: list[str] = []
    for part in path.split("."):
        while part.endswith("[]"):
            out += [part[:-2], "[]"] if part[:-2] else ["[]"]
            part = ""
        if part:
            out.append(part)
    return tuple(out)


def _matches(path: tuple, pattern: tuple) -> bool:
    return len(path) == len(pattern) and all(p == q or (q.startswith("<") and q.endswith(">") and p != "[]")
                                             for p, q in zip(path, pattern))


def _extends(path: tuple, patterns) -> bool:
    """Some documented field lies below ``path`` (so a null or empty value there is fine)."""
    return any(len(q) > len(path) and _matches(path, q[:len(path)]) for q in patterns)


def _leaves(obj, patterns, path=()) -> set[tuple]:
    if isinstance(obj, dict) and obj:
        return set().union(*(_leaves(v, patterns, path + (str(k),)) for k, v in obj.items()))
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        return set().union(*(_leaves(x, patterns, path + ("[]",)) for x in obj))
    if (obj is None or obj == [] or obj == {}) and _extends(path, patterns):
        return set()
    return {path}


def _sweep(tmp_path) -> Path:
    """Two sweeps (param stp and mup, optim adam throughout), a width with every run diverged."""
    from scaleadvise.analysis.fit_synth import synthetic_sweep

    lrs = 2.0 ** __import__("numpy").arange(-14, -4, 0.5)
    frames = []
    for param, k in (("stp", -1.0), ("mup", 0.0)):
        df = synthetic_sweep([128, 256, 512, 1024], lrs, k=k, lr0=2.0**-8, noise=0.002, seeds=2, rng=1)
        df["param"], df["optim"] = param, "adam"
        frames.append(df)
    import pandas as pd

    df = pd.concat(frames)
    df.loc[(df["width"] == 1024) & (df["param"] == "mup"), "loss"] = float("nan")
    path = tmp_path / "sweeps.csv"
    df.to_csv(path, index=False)
    return path


def _grads(tmp_path) -> Path:
    rows = ["width,layer,step,grad_rms"] + [f"{w},{name},{s},{v * (w / 128) ** -g}" for w in (128, 256, 512)
                                            for s in (10, 20, 30) for name, g, v in
                                            (("hidden", 1.0, 1e-6 * (1 + s / 1000)), ("readout", 0.5, 3e-5))]
    path = tmp_path / "grads.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _alignment(tmp_path) -> Path:
    rows = ["width,layer,step,log_alignment"] + [f"{w},{name},{s},{a + 0.001 * s}" for w in (256, 512)
                                                 for s in (0, 10, 100) for name, a in
                                                 (("blocks.0.mlp.up", 0.6), ("readout", 0.9))]
    path = tmp_path / "alignment.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _examples(tmp_path) -> dict[str, list[tuple[str, ...]]]:
    sweep, grads, align = _sweep(tmp_path), _grads(tmp_path), _alignment(tmp_path)
    return {
        "prescribe": [("prescribe",), ("prescribe", "--eps", "per-layer"), ("prescribe", "--optim", "adam-atan2"),
                      ("prescribe", "--param", "custom", "--a", "0,0,0", "--b", "0,0,0", "--model", "mlp"),
                      ("prescribe", "--optim", "adamw", "--depth-param", "completep", "--base-depth", "4",
                       "--wd-timescale", "1e9tokens", "--tokens-per-step", "1000", "--eps", "per-layer")],
        "check": [("check", "--a", "0,0,0", "--b", "0,0.5,0.5", "--c", "0,1,1"),
                  ("check", "--a", "0,0,0", "--b", "0,0.5,0.5", "--c", "0,0,0")],
        "equiv": [("equiv", "--param", "stp", "--to-form", "ntk", "--width", "256", "--base-width", "64"),
                  ("equiv", "--param", "stp", "--theta", "0,0.5,0.5"),
                  ("equiv", "--param", "stp", "--to-form", "mup")],
        "presets": [("presets",)],
        "fit": [("fit", str(sweep), "--target-width", "4096", "--bootstrap", "20", "--setting", "global"),
                ("fit", str(sweep), "--group-by", "none", "--bootstrap", "0")],
        "epsilon": [("epsilon", str(grads), "--param", "mfp", "--plot", str(tmp_path / "eps.png")),
                    ("epsilon", str(grads))],
        "align": [("align", str(align), "--param", "mup", "--plot", str(tmp_path / "align.png"))],
        "sweep": [("sweep", str(ROOT / "tests" / "sweep_fake_train.py"), "--widths", "64", "--lrs", "1e-3,2e-3",
                   "--steps", "5", "--out", str(tmp_path / "sweep"), "--dry-run")],
    }


def _documented(command: str) -> set[tuple]:
    rows = SECTIONS[f"`{command} --json`"]
    return {_pattern(_code(r[0])[0]) for r in rows}


@pytest.mark.parametrize("command", ["prescribe", "check", "equiv", "presets", "fit", "epsilon", "align", "sweep"])
def test_json_fields_are_documented_both_ways(command, cli, tmp_path, monkeypatch):
    documented = _documented(command)
    printed: set[tuple] = set()
    for args in _examples(tmp_path)[command]:
        monkeypatch.setattr(sys, "argv", ["scaleadvise", *args, "--json"])  # as from a shell (`command`)
        code, out, err = cli(*args, "--json")
        assert code == 0, err
        printed |= _leaves(json.loads(out), documented)
    undocumented = {".".join(p) for p in printed if not any(_matches(p, q) for q in documented)}
    assert not undocumented, f"add to docs/CONTRACTS.md, `{command} --json`: {sorted(undocumented)}"
    stale = {".".join(q) for q in documented if not any(_matches(p, q) for p in printed)}
    assert not stale, f"docs/CONTRACTS.md lists fields `{command} --json` does not print: {sorted(stale)}"


def test_yaml_is_the_json_document(cli):
    import yaml

    _, out_json, _ = cli("prescribe", "--width", "2048", "--json")
    _, out_yaml, _ = cli("prescribe", "--width", "2048", "--yaml")
    a, b = json.loads(out_json), yaml.safe_load(out_yaml)
    a.pop("command", None), b.pop("command", None)
    assert a == b


# ------------------------------------------------------------------ columns

def _readers():
    from scaleadvise.analysis.align import alignment_columns
    from scaleadvise.analysis.epsilon_data import gradient_columns
    from scaleadvise.analysis.fit import SWEEP_COLUMNS

    return {"`fit` reads a sweep table": SWEEP_COLUMNS, "`epsilon` reads a gradient table": gradient_columns(),
            "`align` reads an alignment table": alignment_columns()}


@pytest.mark.parametrize("section", list(_readers()))
def test_columns_each_command_reads(section):
    rows = SECTIONS[section]
    documented = [(_code(r[0])[0], r[1] == "yes", tuple(_code(r[2]))) for r in rows]
    declared = [(c.name, c.required, tuple(c.aliases)) for c in _readers()[section]]
    assert documented == declared


def _declared_string_tuples() -> dict[str, tuple[str, ...]]:
    """Module-level NAME = ("a", "b", ...) in the script's and the sweep's modules."""
    out = {}
    for folder in ("script", "sweep"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            for node in ast.parse(path.read_text()).body:
                if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                        and isinstance(node.value, ast.Tuple)
                        and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.value.elts)):
                    out[node.targets[0].id] = tuple(e.value for e in node.value.elts)
    return out


WRITTEN = {"metrics.csv": "METRICS_COLUMNS", "grads.csv": "GRADS_COLUMNS", "alignment.csv": "ALIGNMENT_COLUMNS",
           "sweeps.csv": "SWEEP_COLUMNS"}


def test_columns_the_script_writes():
    declared = _declared_string_tuples()
    rows = SECTIONS["Files the training script writes"]
    assert sorted(_code(r[0])[0] for r in rows) == sorted(WRITTEN)
    for row in rows:
        name = _code(row[0])[0]
        constant = WRITTEN[name]
        assert constant in declared, f"no {constant} in scaleadvise/script or scaleadvise/sweep for {name}"
        assert tuple(_code(row[1])) == declared[constant], name


def test_the_sweep_table_the_script_writes_is_one_fit_reads():
    from scaleadvise.analysis.fit import SWEEP_COLUMNS

    written = _declared_string_tuples()["SWEEP_COLUMNS"]
    assert {c.name for c in SWEEP_COLUMNS if c.required} <= set(written)


# ------------------------------------------------------------------ flags

def test_flags_exist_where_listed():
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    for row in SECTIONS["Flags scripts rely on"]:
        flag = _code(row[0])[0]
        for command in (c.strip() for c in row[1].split(",")):
            if command.startswith("("):  # the program itself
                params = group.params
            else:
                params = group.get_command(ctx, command).params
            opts = {o for p in params for o in getattr(p, "opts", [])}
            assert flag in opts, f"{flag} is not an option of {command}"


def test_every_command_has_json():
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    listed = {c.strip() for row in SECTIONS["Flags scripts rely on"] if _code(row[0]) == ["--json"]
              for c in row[1].split(",")}
    for name in group.list_commands(ctx):
        opts = {o for p in group.get_command(ctx, name).params for o in getattr(p, "opts", [])}
        assert ("--json" in opts) == (name in listed) or name == "emit-train", name
