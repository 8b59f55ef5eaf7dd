"""`scaleadvise emit-train`: the emitted file is standalone and applies `prescribe --json` exactly."""

import ast
import csv
import importlib.util
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from scaleadvise.script.emit import check_bundle, emit_script, strip_dropped  # noqa: E402

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


def script_tensors(mod, width: int | None = None, lr: float | None = None) -> tuple[dict, object, object]:
    """Build the emitted script's model and optimizer as its main() would."""
    pres = mod.PRESCRIPTION
    dims = mod.model_dims(pres, width)
    model = mod.NanoDO(**dims)
    specs = mod.resolve_model(model, pres, dims["width"], lr or pres["base_lr"])
    mod.apply_prescription(model, specs, pres["attention_scale"], torch.Generator().manual_seed(0))
    args = SimpleNamespace(beta1=0.9, beta2=0.98)
    opt = mod.make_optimizer(pres["optimizer"], mod.param_groups(model, specs), args, fused=False)
    return specs, model, opt


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a == pytest.approx(b, rel=1e-12, abs=0)


def compare(specs: dict, model, opt, doc: dict) -> None:
    expected = {t["name"]: t for t in doc["tensors"]}
    assert list(specs) == list(expected)  # same tensors, same names, same order
    lr_of = {id(p): (g["lr"], g.get("eps")) for g in opt.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    for name, want in expected.items():
        got = specs[name]
        for key in ("layer_type", "shape", "init", "scale_dim"):
            assert got[key] == want[key], (name, key)
        for key in ("init_std", "multiplier", "lr", "eps"):
            assert _same(got[key], want[key]), (name, key, got[key], want[key])
        p = params[name if name.startswith("embed.") else name + ".weight"]
        lr, eps = lr_of[id(p)]  # what the optimizer will actually use
        assert _same(lr, want["lr"]) and _same(eps if doc["eps_mode"] != "none" else None, want["eps"]), name
        if want["init"] == "ones":
            assert torch.all(p == want["init_std"]), name
        elif p.numel() >= 4096:
            assert p.std().item() == pytest.approx(want["init_std"], rel=0.05), name


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("optim", OPTIMS)
def test_param_groups_equal_prescribe(cli, tmp_path, param, optim):
    extra = ["--param", param, "--optim", optim, "--base-width", "32", "--constants",
             "paper" if optim != "adam-atan2" else "default"]
    path, emitted = emit(cli, tmp_path, *extra)
    mod = load(path, f"emitted_{param}_{optim}".replace("-", "_"))
    doc = prescribed(cli, *TINY, *extra)
    assert mod.PRESCRIPTION == json.loads(json.dumps(emitted["prescription"]))
    compare(*script_tensors(mod), doc)
    # A sweep trains other widths from the same data block: still prescribe's numbers.
    wide = prescribed(cli, *[a if a != "64" else "128" for a in TINY], *extra)
    compare(*script_tensors(mod, width=128), wide)
    modules = {n: m for n, m in script_tensors(mod)[1].named_modules()}
    scale = 1 / 16 if doc["attention_scale"] == "linear" else 16 ** -0.5  # C.2
    assert modules["blocks.0.attn"].logit_scale == pytest.approx(scale)


def test_per_layer_eps_follows_the_gradient_exponents(cli, tmp_path):
    extra = ["--param", "mfp", "--optim", "adam", "--eps", "per-layer", "--base-eps", "1e-8", "--base-width", "16"]
    mod = load(emit(cli, tmp_path, *extra)[0], "emitted_eps")
    compare(*script_tensors(mod), prescribed(cli, *TINY, *extra))
    specs = script_tensors(mod)[0]
    # §4.3: eps_l = base_eps (n/b)^-g_l; MFP's hidden g is 1.5 (Table 1)
    assert specs["blocks.0.mlp.up"]["eps"] == pytest.approx(1e-8 * 4 ** -mod.PRESCRIPTION["layers"]["hidden"]["g"])


def test_emitted_file_is_standalone(cli, tmp_path):
    path, emitted = emit(cli, tmp_path, "--param", "mup", "--optim", "adam-atan2", "--base-width", "64")
    text = open(path).read()
    assert not [line for line in text.splitlines() if line.strip().startswith("# ---- bundle: drop")]
    assert f"    {emitted['command']}\n" in text  # the exact command, in the header
    assert emitted["command"].startswith("scaleadvise emit-train --param mup --optim adam-atan2 --width 64 "
                                         "--depth 2 --head-dim 16 --context 32 --vocab 256 --base-width 64")
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


def test_csvs_are_read_by_fit_epsilon_align(cli, tmp_path):
    """The emitted script's outputs go straight into the analysis commands."""
    path, _ = emit(cli, tmp_path, "--param", "mup", "--optim", "adam", "--base-width", "32", "--base-lr", "3e-3")
    mod = load(path, "emitted_csv")
    sweep, single = tmp_path / "sweep", tmp_path / "single"
    common = ["--device", "cpu", "--batch-size", "4", "--eval-batches", "1", "--log-every", "3", "--steps", "3"]
    assert mod.main([*common, "--out", str(sweep), "--widths", "16,32,64", "--sweep-lr", "2^-9:2^-6:1",
                     "--grads-every", "0", "--align-every", "0"]) == 0
    code, out, err = cli("fit", str(sweep / "sweeps.csv"), "--json")
    assert code == 0, err
    assert mod.main([*common, "--out", str(single), "--grads-every", "1", "--align-every", "1"]) == 0
    code, out, err = cli("epsilon", str(single / "grads.csv"), "--param", "mup", "--json")
    assert code == 0, err
    code, out, err = cli("align", str(single / "alignment.csv"), "--json")
    assert code == 0, err


def test_bundle_checks():
    src = "import os\n# ---- bundle: drop begin\nfrom scaleadvise.x import y\n# ---- bundle: drop end\nA = 1\n"
    assert strip_dropped(src, "m.py") == "import os\nA = 1\n"
    with pytest.raises(ValueError, match="never closed"):
        strip_dropped("# ---- bundle: drop begin\nx = 1\n", "m.py")
    with pytest.raises(ValueError, match="__future__"):
        check_bundle([("a.py", "from __future__ import annotations\n")])
    with pytest.raises(ValueError, match="imports scaleadvise"):
        check_bundle([("a.py", "import scaleadvise.core.theory\n")])
    with pytest.raises(ValueError, match="also defined in a.py"):
        check_bundle([("a.py", "def f():\n    pass\n"), ("b.py", "f = 2\n")])
    pres = {"parameterization": "stp", "optimizer": "adam", "base_width": 1024, "base_lr": 1e-3,
            "eps_mode": "constant", "base_eps": 1e-9, "attention_scale": "sqrt", "constants": {},
            "layers": {}, "model": {"width": 8, "depth": 1, "heads": 1, "head_dim": 8, "context": 4, "vocab": 9}}
    text = emit_script(pres, 'scaleadvise emit-train --model """x\\"')
    assert ast.parse(text) and '"""x' not in text.split("PRESCRIPTION")[0].replace('\\"\\"\\"', "")


def test_cli_bad_input_one_line_exit_2(cli, tmp_path):
    cases = [
        (["--optim", "adafactor"], "supports adam, adamw"),
        (["--width", "100"], "not divisible by the head dimension 128"),
        (["--width", "96", "--heads", "5"], "does not divide the width 96"),
        (["--heads", "2", "--head-dim", "64"], "give one"),
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
    assert not list(tmp_path.iterdir())


def test_umup_is_refused(cli, tmp_path):
    """u-muP needs unit-scaled ops the script does not have (Blake et al. 2024): one line, exit 2,
    no file written."""
    path = tmp_path / "train.py"
    code, out, err = cli("emit-train", *TINY, "--param", "umup", "-o", str(path))
    assert code == 2 and "unit-scaled ops" in err and err.count("\n") == 1
    assert not path.exists()
