"""`scaleadvise emit-train`: the emitted file is standalone, evaluates the one rule to `prescribe
--json`'s numbers, ships the chosen optimizer only, and the command keeps stdout for the script."""

import ast
import csv
import importlib.util
import json
import os
import stat
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from helpers import nanodo_yaml  # noqa: E402
from scaleadvise.script.emit import check_bundle, emit_script, hoist, prune, shorten  # noqa: E402

PARAMS = ("stp", "ntk", "mup", "mfp")  # umup is refused: test_umup_is_refused
OPTIMS = ("adam", "adamw", "adam-atan2", "sgd", "adam-ps")
TINY = ["--width", "64", "--depth", "2", "--head-dim", "16", "--context", "32", "--vocab", "256"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def emit(cli, tmp_path, *extra: str, name: str = "train.py") -> tuple[str, dict]:
    path = tmp_path / name
    code, out, err = cli("emit-train", *TINY, *extra, "-o", str(path), "--json")
    assert code == 0, err
    return str(path), json.loads(out)


def load(path: str, name: str = "emitted_train"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing runs nothing: main() is guarded
    return module


def prescribed(cli, *args: str) -> dict:
    code, out, err = cli("prescribe", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def script_tensors(mod, width: int | None = None) -> tuple[dict, object, object]:
    """The emitted script's model, values and optimizer, built as its train() builds them."""
    pres = mod.PRESCRIPTION
    model, values = mod.build_model(pres, mod.model_size(pres, width), pres["base_lr"], 0, "cpu")
    groups = mod.param_groups((p, values[mod.tensor_name(n)]) for n, p in model.named_parameters())
    return values, model, mod.make_optimizer(pres["optimizer"], groups, (0.9, 0.98), False)


def compare(values: dict, model, opt, doc: dict) -> None:
    """Bit for bit: the script evaluates the same rule on the same numbers as prescribe."""
    expected = {t["name"]: t for t in doc["tensors"]}
    assert list(values) == list(expected)  # same tensors, same names, same order
    lr_of = {id(p): (g["lr"], g.get("eps")) for g in opt.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    for name, want in expected.items():
        got = values[name]
        for key in ("layer_type", "init", "scale_dim", "init_std", "multiplier", "lr", "eps"):
            assert got[key] == want[key], (name, key, got[key], want[key])
        p = params[name + ".weight"]
        assert lr_of[id(p)] == (want["lr"], want["eps"]), name  # what the optimizer will use
        assert list(p.shape) == want["shape"], name
        if want["init"] == "ones":
            assert torch.all(p == want["init_std"]), name
        elif p.numel() >= 4096:
            assert p.std().item() == pytest.approx(want["init_std"], rel=0.05), name


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("optim", OPTIMS)
def test_rule_in_the_script_equals_prescribe(cli, tmp_path, param, optim):
    extra = ["--param", param, "--optim", optim, "--base-width", "32", "--constants",
             "paper" if optim != "adam-atan2" else "default"]
    path, emitted = emit(cli, tmp_path, *extra)
    mod = load(path, f"emitted_{param}_{optim}".replace("-", "_"))
    doc = prescribed(cli, *TINY, *extra)
    assert emitted["prescription"]["tensors"] == doc["tensors"]
    compare(*script_tensors(mod), doc)
    # --width trains another width from the same data block: still prescribe's numbers there.
    compare(*script_tensors(mod, width=128), prescribed(cli, *[a if a != "64" else "128" for a in TINY], *extra))
    modules = dict(script_tensors(mod)[1].named_modules())
    scale = 1 / 16 if doc["attention_scale"] == "linear" else 16 ** -0.5  # C.2
    assert modules["blocks.0.attn"].logit_scale == pytest.approx(scale)


def test_per_layer_eps_follows_the_gradient_exponents(cli, tmp_path):
    extra = ["--param", "mfp", "--optim", "adam", "--eps", "per-layer", "--base-eps", "1e-8", "--base-width", "16"]
    mod = load(emit(cli, tmp_path, *extra)[0], "emitted_eps")
    compare(*script_tensors(mod), prescribed(cli, *TINY, *extra))
    values = script_tensors(mod)[0]
    # §4.3: eps_l = base_eps (n/b)^-g_l; MFP's hidden g is 1.5 (Table 1)
    assert values["blocks.0.mlp.up"]["eps"] == pytest.approx(1e-8 * 4 ** -1.5)


def test_emitted_file_is_standalone_and_ships_the_chosen_optimizer_only(cli, tmp_path):
    path, emitted = emit(cli, tmp_path, "--param", "mup", "--optim", "adam-atan2", "--base-width", "64")
    text = open(path).read()
    assert f"    {emitted['command']}\n" in text  # the exact command, in the header
    assert emitted["command"].startswith("scaleadvise emit-train --param mup --optim adam-atan2 --width 64 "
                                         "--depth 2 --head-dim 16 --context 32 --vocab 256 --base-width 64")
    assert "class AdamAtan2" in text and "class AdamPS" not in text and "def _adam_ps" not in text
    assert "torch.optim.SGD" not in text
    tree = ast.parse(text)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots - set(sys.stdlib_module_names) == {"torch", "numpy"}
    # Run it where scaleadvise cannot be imported at all.
    poison = tmp_path / "poison" / "scaleadvise"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('the emitted script imported scaleadvise')\n")
    env = {**os.environ, "PYTHONPATH": str(poison.parent), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, path, "--steps", "3", "--device", "cpu", "--batch-size", "4",
                           "--out", str(out), "--log-every", "1", "--eval-batches", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(out / "metrics.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2", "3"]
    help_text = subprocess.run([sys.executable, path, "--help"], env=env, capture_output=True, text=True).stdout
    assert "--steps STEPS" in help_text and "(default: 1000)" in help_text  # --help shows the defaults


def test_default_script_reads_top_to_bottom(cli, tmp_path, capsys):
    """The default run's file: header, imports, the data block, then the sources in
    nanoGPT's order (config, model, rule, apply, data, dist, probes, loop); Adam only."""
    code, text, err = cli("emit-train")
    assert code == 0, err
    assert text.startswith('#!/usr/bin/env python3\n"""Train NanoDO')
    sources = ("script/template/config.py", "script/template/nanodo.py", "core/rule.py", "torch/apply.py",
               "script/template/data.py", "script/template/dist.py", "script/template/probes.py",
               "script/template/train.py")
    order = [text.index(s) for s in ("\nimport argparse", "\nPRESCRIPTION = {",
                                     *(f"-- scaleadvise/{s}: " for s in sources))]
    assert order == sorted(order)
    assert "torch.optim.Adam(" in text and "AdamAtan2" not in text and "torch/optim.py" not in text
    assert "scaleadvise" not in "".join(line for line in text.splitlines(keepends=True)
                                        if line.startswith(("import ", "from ")))
    ast.parse(text)


def test_csvs_are_read_by_epsilon_and_align(cli, tmp_path):
    """The emitted script's outputs go straight into the analysis commands."""
    path, _ = emit(cli, tmp_path, "--param", "mup", "--optim", "adam", "--base-width", "32", "--base-lr", "3e-3")
    mod = load(path, "emitted_csv")
    out = tmp_path / "single"
    assert mod.main(["--device", "cpu", "--batch-size", "4", "--eval-batches", "1", "--log-every", "3", "--steps",
                     "3", "--out", str(out), "--grads-every", "1", "--align-every", "1"]) == 0
    code, _, err = cli("epsilon", str(out / "grads.csv"), "--param", "mup", "--json")
    assert code == 0, err
    code, _, err = cli("align", str(out / "alignment.csv"), "--json")
    assert code == 0, err


def test_stdout_carries_the_script_and_nothing_else(cli, tmp_path):
    """`scaleadvise emit-train > train.py`: the script on stdout, the table on stderr."""
    code, out, err = cli("emit-train", *TINY)
    assert code == 0, err
    assert out.startswith("#!/usr/bin/env python3") and ast.parse(out)
    assert "┃ layer" not in out and "layer" in err and "stp + adam" in err
    path = tmp_path / "piped.py"
    path.write_text(out)
    assert load(str(path), "emitted_piped").PRESCRIPTION["model"]["width"] == 64


def test_json_never_mixes_with_a_script_on_stdout(cli, tmp_path):
    for args in ([], ["-o", "-"]):
        code, out, err = cli("emit-train", *TINY, *args, "--json")
        assert code == 2 and out == "" and "give -o FILE" in err and err.count("\n") == 1, (args, err)
    code, out, err = cli("emit-train", *TINY, "-o", str(tmp_path / "t.py"), "--json")
    doc = json.loads(out)  # stdout is one JSON document
    assert code == 0 and doc["output"] == str(tmp_path / "t.py") and doc["lines"] > 100


def test_output_is_written_atomically_with_the_umask(cli, tmp_path):
    path = tmp_path / "t.py"
    path.write_text("old")
    old = os.umask(0o027)
    try:
        code, out, err = cli("emit-train", *TINY, "-o", str(path))
    finally:
        os.umask(old)
    assert code == 0, err
    assert path.read_text().startswith("#!/usr/bin/env python3") and os.listdir(tmp_path) == ["t.py"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o750  # executable, as the umask allows
    assert "layer" in out  # with -o, the table is the command's output


def test_unwritable_output_is_one_line(cli, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    where = locked if os.geteuid() != 0 else "/sys"  # root writes anywhere but in sysfs
    try:
        code, out, err = cli("emit-train", *TINY, "-o", f"{where}/t.py")
    finally:
        locked.chmod(0o700)
    assert code == 2 and "cannot write" in err and err.count("\n") == 1, err
    assert os.listdir(locked) == []


def test_emit_from_a_prescription_file(cli, tmp_path):
    """equiv's --prescription-out (NTK with the constants that make it SP's network) becomes a script."""
    model = tmp_path / "model.yaml"
    model.write_text(nanodo_yaml(depth=2, ffn="4 * d"))
    flags = ["--optim", "adam-atan2", "--width", "64", "--base-width", "64", "--base-lr", "0.004", "--model", str(model)]
    target = tmp_path / "ntk.json"
    code, out, err = cli("equiv", "--param", "stp", "--to-form", "ntk", *flags, "--prescription-out", str(target))
    assert code == 0, err
    doc = json.loads(target.read_text())
    code, out, err = cli("emit-train", "--prescription", str(target), "-o", str(tmp_path / "ntk.py"))
    assert code == 0, err
    mod = load(str(tmp_path / "ntk.py"), "emitted_ntk")
    assert mod.PRESCRIPTION["layers"]["hidden"]["gamma"] == doc["constants"]["hidden"] == 8.0
    values = script_tensors(mod)[0]
    for t in doc["tensors"]:
        assert values[t["name"]]["init_std"] == pytest.approx(t["init_std"], rel=1e-12), t["name"]
        assert values[t["name"]]["lr"] == pytest.approx(t["lr"], rel=1e-12), t["name"]
    code, out, err = cli("emit-train", "--prescription", str(target), "--width", "128")
    assert code == 2 and "drop --width" in err
    bad = tmp_path / "bad.json"
    for text, needle in (("{", "not JSON"), ('{"optimizer": "adafactor"}', "supports"), ("[1]", "not a")):
        bad.write_text(text)
        code, out, err = cli("emit-train", "--prescription", str(bad))
        assert code == 2 and needle in err and err.count("\n") == 1, (text, err)
    code, out, err = cli("emit-train", "--prescription", str(tmp_path))
    assert code == 2 and "cannot read" in err


def test_bundle_edits():
    """Imports hoisted once, package imports dropped, other optimizers' branches and the
    definitions only they reach dropped."""
    a = ('"""A."""\nimport os\nfrom scaleadvise.x import helper\n\n\ndef used():\n    return os.sep\n\n\n'
         'def unused():\n    return 1\n')
    b = ('"""B."""\nimport os\n\n\ndef pick(optimizer):\n    if optimizer == "sgd":\n        return used()\n'
         '    if optimizer in ("adam", "adamw"):\n        return helper()\n    return None\n\n\n'
         'def helper():\n    return 2\n\n\nif __name__ == "__main__":\n    pick("sgd")\n')
    parts, imports = prune([("a.py", a), ("b.py", b)], "adam")
    assert [w for w, _ in parts] == ["b.py"] and imports == ["import os"]  # a.py only served sgd: gone
    sb = parts[0][1]
    assert 'if optimizer == "sgd"' not in sb and 'if optimizer in ("adam", "adamw")' in sb and "def helper" in sb
    assert sb.startswith('"""B."""\n') and "import" not in sb and 'if __name__ == "__main__"' in sb
    parts, imports = prune([("a.py", a), ("b.py", b)], "sgd")
    assert "def used" in parts[0][1] and "def unused" not in parts[0][1] and "def helper" not in parts[1][1]
    assert imports == ["import os", "import os"] and hoist(imports) == "import os\n"
    with pytest.raises(ValueError, match="bound to"):
        hoist(["import torch.nn as nn", "from torch import nn as nn2", "from torch.nn import functional as nn"])
    with pytest.raises(ValueError, match="__future__"):
        check_bundle([("a.py", "from __future__ import annotations\n")])
    with pytest.raises(ValueError, match="imports scaleadvise"):
        check_bundle([("a.py", "import scaleadvise.core.theory\n")])
    with pytest.raises(ValueError, match="also defined in a.py"):
        check_bundle([("a.py", "def f():\n    pass\n"), ("b.py", "f = 2\n")])


def test_header_survives_a_hostile_command(cli):
    code, out, err = cli("prescribe", *TINY, "--json")
    text = emit_script(json.loads(out), 'scaleadvise emit-train --model """x\\"')
    assert ast.parse(text) and '"""x' not in text.split("PRESCRIPTION")[0].replace('\\"\\"\\"', "")


def test_cli_bad_input_one_line_exit_2(cli, tmp_path):
    cases = [
        (["--optim", "adafactor"], "supports sgd, adam, adamw"),
        (["--width", "100"], "not divisible by the head dimension 128"),
        (["--width", "96", "--heads", "5"], "does not divide the width 96"),
        (["--heads", "2", "--head-dim", "64"], "give one"),
        (["--head-dim", "0"], "--head-dim: must be a positive integer"),
        (["--head-dim", "-16"], "--head-dim: must be a positive integer"),
        (["--width", "0"], "--width: must be a positive integer"),
        (["--depth", "-1"], "--depth: must be a positive integer"),
        (["--bogus"], "--bogus"),
        (["--model", "gpt2"], "NanoDO"),
        (["--param", "nope"], "unknown parameterization"),
        (["--width", "128", "-o", str(tmp_path / "missing" / "t.py")], "does not exist"),
        (["--width", "128", "-o", str(tmp_path)], "is a directory"),
    ]
    for args, needle in cases:
        code, out, err = cli("emit-train", *args)
        assert code == 2, (args, err)
        assert needle in err and err.count("\n") == 1, (args, err)
        assert out == "", args  # no half script on stdout
    assert not list(tmp_path.iterdir())


def test_umup_is_refused(cli, tmp_path):
    """u-muP needs unit-scaled ops the script does not have (Blake et al. 2024): one line, exit 2,
    no file written."""
    path = tmp_path / "train.py"
    code, out, err = cli("emit-train", *TINY, "--param", "umup", "-o", str(path))
    assert code == 2 and "unit-scaled ops" in err and err.count("\n") == 1
    assert not path.exists()


def test_depth_freedom_is_recorded(cli, tmp_path):
    """The paper's alignments leave the exponents depth-independent; a hidden omega > 1/2 does not."""
    assert load(emit(cli, tmp_path, name="a.py")[0], "emitted_free").PRESCRIPTION["model"]["depth_free"] is True
    path = emit(cli, tmp_path, "--alignment", "1,0.7,1", name="b.py")[0]
    assert load(path, "emitted_fixed").PRESCRIPTION["model"]["depth_free"] is False


def test_optional_parts_ship_only_where_the_prescription_has_them(cli, tmp_path):
    """Depth and weight-decay code is dropped from a script whose prescription has neither,
    and kept (and run) where it has both."""
    plain = open(emit(cli, tmp_path, name="plain.py")[0]).read()
    assert "def depth_factor" not in plain and "def decay_per_step" not in plain and '"depth" in pres' not in plain
    both = open(emit(cli, tmp_path, "--optim", "adamw", "--weight-decay", "1e-4", "--depth-param", "completep",
                     "--base-depth", "2", name="both.py")[0]).read()
    assert both.count("def depth_factor") == 1 and "def decay_per_step" in both and "res_mult = depth_factor" in both


def test_shorten_keeps_first_paragraphs_and_paragraph_breaks():
    source = ('"""Title line.\n\nMore about the module."""\n\n\nclass A:\n    """One.\n\n    Two."""\n\n'
              '    x = 1\n\n    def f(self):\n        """Only paragraph\n        on two lines."""\n        a = 1\n\n'
              '        b = 2\n\n        # a comment opens a paragraph\n        return a + b\n\n\n\ndef g():\n'
              '    return 2\n')
    text, title = shorten(source)
    assert title == "Title line."
    assert text == ('class A:\n    """One."""\n    x = 1\n\n    def f(self):\n        """Only paragraph\n'
                    '        on two lines."""\n        a = 1\n        b = 2\n\n        # a comment opens a paragraph\n'
                    '        return a + b\n\ndef g():\n    return 2\n')
    assert shorten("def h():\n    '''Single quotes.\n\n    More.'''\n    return 1\n")[0] == \
        "def h():\n    '''Single quotes.'''\n    return 1\n"
    namespace: dict = {}
    exec(text, namespace)
    assert namespace["A"]().f() == 3 and namespace["A"].__doc__ == "One."
