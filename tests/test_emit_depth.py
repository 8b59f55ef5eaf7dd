"""The emitted script with depth and weight decay: its rule gives prescribe's numbers at any depth,
its blocks scale their branches, its data block names the decay convention, and the decay it
applies per step is the prescribed one."""

import json

import pytest

torch = pytest.importorskip("torch")

from test_emit import TINY, emit, load, prescribed, script_tensors  # noqa: E402

DEPTH = ["--depth-param", "completep", "--base-depth", "2"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _tiny(depth: int) -> list[str]:
    return [("--depth" if a == "--depth" else a) if i != TINY.index("--depth") + 1 else str(depth)
            for i, a in enumerate(TINY)]


@pytest.mark.parametrize("name,optim", [("completep", "adamw"), ("depth-mup", "adam"), ("completep", "sgd"),
                                        ("depth-mup", "adam-ps")])
@pytest.mark.parametrize("depth", [2, 6, 12])
def test_script_rule_equals_prescribe_at_any_depth(cli, tmp_path, name, optim, depth):
    """Emitted at depth 2 (the base), trained at depth L: prescribe at depth L, bit for bit."""
    common = ["--param", "mup", "--optim", optim, "--base-width", "32", "--depth-param", name, "--base-depth", "2"]
    eps = [] if optim == "sgd" else ["--eps", "per-layer", "--base-eps", "1e-8"]
    path, _ = emit(cli, tmp_path, *common[:4], *common[4:], *eps)
    mod = load(path, f"emitted_{name}_{optim}_{depth}".replace("-", "_"))
    pres = mod.PRESCRIPTION
    model, values = mod.build_model(pres, mod.model_size(pres, None, depth), pres["base_lr"], 0, "cpu")
    doc = prescribed(cli, *_tiny(depth), *common, *eps)
    for t in doc["tensors"]:
        got = values[t["name"]]
        assert (got["lr"], got["eps"], got["multiplier"], got["init_std"]) == (t["lr"], t["eps"], t["multiplier"],
                                                                              t["init_std"]), t["name"]
    assert all(b.res_mult == doc["residual_multiplier"] for b in model.blocks)
    assert doc["residual_multiplier"] == (depth / 2) ** -(1.0 if name == "completep" else 0.5)


def test_without_depth_the_data_block_is_unchanged(cli, tmp_path):
    path, _ = emit(cli, tmp_path, "--param", "mup", "--optim", "adamw")
    text = open(path).read()
    block = text[text.index("PRESCRIPTION = {"):text.index("\n}\n", text.index("PRESCRIPTION = {"))]
    assert "depth_param" not in block and "weight_decay" not in block and "residual" not in block
    mod = load(path, "emitted_plain")
    assert "depth" not in mod.PRESCRIPTION and "weight_decay" not in mod.PRESCRIPTION
    assert all(len(row) == 4 for row in mod.PRESCRIPTION["tensors"].values())
    assert all(b.res_mult == 1.0 for b in mod.build_model(mod.PRESCRIPTION, mod.model_size(mod.PRESCRIPTION), 1e-3,
                                                           0, "cpu")[0].blocks)


def test_forward_scales_each_branch(cli, tmp_path):
    path, _ = emit(cli, tmp_path, "--param", "mup", "--optim", "adamw", *DEPTH)
    mod = load(path, "emitted_forward")
    pres = mod.PRESCRIPTION
    model, _ = mod.build_model(pres, mod.model_size(pres, None, 8), 1e-3, 0, "cpu")
    idx = torch.randint(0, 256, (2, 8))
    with torch.no_grad():
        want = model.embed(idx)
        for b in model.blocks:
            want = want + 0.25 * b.attn(b.attn_norm(want))
            want = want + 0.25 * b.mlp(b.mlp_norm(want))
        want = model.readout(model.final_norm(want))
        assert torch.allclose(model(idx), want, atol=1e-5)


@pytest.mark.parametrize("conv", ["torch", "independent", "coupled"])
def test_decay_in_the_data_block_and_per_tensor(cli, tmp_path, conv):
    lam = 1e-3 if conv != "coupled" else 0.5
    path, _ = emit(cli, tmp_path, "--param", "mup", "--optim", "adamw", "--weight-decay", str(lam),
                   "--wd-convention", conv, *DEPTH)
    text = open(path).read()
    assert f'"weight_decay": {{"convention": "{conv}", "lambda": {lam!r}, "vectors": False}}' in text
    assert f"convention {conv}" in text
    mod = load(path, f"emitted_decay_{conv}")
    values, _, _ = script_tensors(mod)
    for name, v in values.items():
        matrix = not name.endswith("norm")
        want = (lam * v["lr"] if conv == "coupled" else lam) if matrix else None
        assert v.get("decay") == (pytest.approx(want, rel=1e-12) if want else None), name


def test_the_run_applies_the_prescribed_decay(cli, tmp_path):
    """One step at LR ~ 0 (warmup's first step is lr/warmup; base LR tiny): every matrix shrinks by
    1 - λ · schedule, the norm gains not at all."""
    lam = 0.05
    path, _ = emit(cli, tmp_path, "--param", "mup", "--optim", "adamw", "--weight-decay", str(lam), *DEPTH)
    mod = load(path, "emitted_run")
    out = tmp_path / "run"
    args = mod.parse_args(["--out", str(out), "--steps", "1", "--warmup", "1", "--lr", "1e-30", "--device", "cpu",
                           "--batch-size", "2", "--depth", "4", "--align-every", "0", "--grads-every", "0"])
    pres = mod.PRESCRIPTION
    model, _ = mod.build_model(pres, mod.model_size(pres, None, 4), 1e-30, args.seed, "cpu")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    saved = {}
    real = mod.build_model

    def spy(*a, **k):
        m, v = real(*a, **k)
        saved["model"] = m
        return m, v

    mod.build_model = spy
    assert mod.train(args, pres, 0.0) == 0
    factor = mod.lr_factor(0, 1, 1)
    for n, p in saved["model"].named_parameters():
        ratio = (p.detach() / before[n]).flatten()
        want = 1.0 if n.endswith("norm.weight") else 1 - lam * factor
        assert torch.allclose(ratio, torch.full_like(ratio, want), rtol=1e-5), n
    assert json.loads((out / "result.json").read_text())["depth"] == 4


def test_emit_train_refuses_what_prescribe_refuses(cli, tmp_path):
    code, out, err = cli("emit-train", *TINY, "--depth-param", "completep", "-o", str(tmp_path / "t.py"))
    assert code == 2 and "--depth-param: completep needs base_depth" in err and not (tmp_path / "t.py").exists()
