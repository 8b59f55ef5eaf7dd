"""The training script's alignment probe (script/template/probes.py: AlignmentProbe, log_ratio).

Truth known by construction: a dense layer whose weight update ΔW and input change Δz we set
by hand (rank-one aligned: exponent 1; independent: 1/2; mixtures: the value their norms
predict), the paper's A beside them, then the probe inside the training script (empty step 0,
resume, DDP, FSDP) and the issue's toy: an SP hidden layer trained with Adam at c = 1.
"""

import csv
import importlib.util
import json
import subprocess
import sys
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from scaleadvise.core.prescribe import PrescribeRequest, prescribe  # noqa: E402
from scaleadvise.script.template import train as T  # noqa: E402
from scaleadvise.script.template.nanodo import Dense  # noqa: E402
from scaleadvise.script.template.probes import AlignmentProbe, log_ratio  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAN_IN, FAN_OUT, TOKENS = 1024, 256, 128


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def no_autocast():
    return torch.autocast("cpu", enabled=False)


class Moved(torch.nn.Module):
    """A dense layer whose input we move by hand: the layer sees x + delta."""

    def __init__(self, fan_in: int = FAN_IN, fan_out: int = FAN_OUT):
        super().__init__()
        self.layer = Dense(fan_in, fan_out)
        self.delta = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x + self.delta)


def gaussian(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def along(direction: torch.Tensor, seed: int) -> torch.Tensor:
    """TOKENS tokens, each a random multiple of `direction` (every token on one line)."""
    return gaussian(TOKENS, 1, seed=seed) * direction


def rank_one(v: torch.Tensor, d: torch.Tensor, size: float) -> torch.Tensor:
    """v d^T scaled to Frobenius norm `size`."""
    m = torch.outer(v, d)
    return m * (size / m.norm())


def probe_with(w0: torch.Tensor, x: torch.Tensor, mult: float = 1.0) -> tuple[Moved, AlignmentProbe]:
    model = Moved(w0.shape[1], w0.shape[0])
    with torch.no_grad():
        model.layer.weight.copy_(w0)
    model.layer.mult = mult
    return model, AlignmentProbe(model, x, no_autocast)


def move(model: Moved, dw: torch.Tensor | None = None, dz: torch.Tensor | None = None) -> Moved:
    with torch.no_grad():
        if dw is not None:
            model.layer.weight += dw
    if dz is not None:
        model.delta = dz
    return model


# ------------------------------------------------------------------ log_ratio


def test_log_ratio_endpoints_and_undefined_cases():
    n = 512
    w = gaussian(64, n, seed=1)
    z = gaussian(200, n, seed=2)
    sq = lambda x, y: float((y @ x.T).square().sum())  # noqa: E731
    independent = log_ratio(sq(w, z), float(w.square().sum()), float(z.square().sum()), n)
    assert independent == pytest.approx(0.5, abs=0.01)  # central-limit scaling (§2.3)
    m = gaussian(n, seed=3)
    w1, z1 = rank_one(gaussian(64, seed=4), m, 3.0), along(m, seed=5)
    assert log_ratio(sq(w1, z1), float(w1.square().sum()), float(z1.square().sum()), n) == pytest.approx(1.0, abs=1e-6)
    for sums in ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (0.0, 1.0, 1.0), (math.nan, 1.0, 1.0), (1.0, math.nan, 1.0)):
        assert log_ratio(*sums, n) is None
    assert log_ratio(1.0, 1.0, 1.0, 1) is None  # log base 1


# ------------------------------------------------------------------ truth by construction


def test_aligned_update_alpha_one_while_A_stays_half():
    """The issue's point: ΔW rank-one along the data (alpha = 1) but ||ΔW|| = ||W_0|| / 100,
    so A, of the whole W_t and z_t, barely leaves 1/2; with ||ΔW|| = 100 ||W_0|| A follows alpha."""
    w0 = gaussian(FAN_OUT, FAN_IN, seed=0) / math.sqrt(FAN_IN)
    m = gaussian(FAN_IN, seed=1)
    x = along(m, seed=2)
    for scale, a_expected in ((0.01, 0.5), (100.0, 1.0)):
        model, probe = probe_with(w0, x)
        move(model, dw=rank_one(gaussian(FAN_OUT, seed=3), m, scale * float(w0.norm())))
        v = probe.measure(1)["layer"]
        assert v["alpha"] == pytest.approx(1.0, abs=1e-6)
        assert v["log_alignment"] == pytest.approx(a_expected, abs=0.01)
        assert v["omega"] is None and v["u"] is None  # Δz = 0: undefined, not 1/2


def test_independent_update_alpha_half():
    w0 = gaussian(FAN_OUT, FAN_IN, seed=0) / math.sqrt(FAN_IN)
    model, probe = probe_with(w0, gaussian(TOKENS, FAN_IN, seed=1))
    move(model, dw=gaussian(FAN_OUT, FAN_IN, seed=2) * 1e-3)
    assert probe.measure(1)["layer"]["alpha"] == pytest.approx(0.5, abs=0.01)


def test_omega_one_when_the_input_moves_along_the_init_and_half_when_independent():
    """omega needs W_0 of low rank to reach 1 (the readout of few outputs, §3.3.3): W_0 = a b^T
    and Δz along b give exactly 1; a random Δz gives 1/2."""
    b = gaussian(FAN_IN, seed=1)
    w0 = rank_one(gaussian(FAN_OUT, seed=0), b, 1.0)
    x = gaussian(TOKENS, FAN_IN, seed=2)
    model, probe = probe_with(w0, x)
    move(model, dz=along(b, seed=3) * 1e-2)
    v = probe.measure(1)["layer"]
    assert v["omega"] == pytest.approx(1.0, abs=1e-6)
    assert v["alpha"] is None and v["u"] is None  # ΔW = 0
    model, probe = probe_with(gaussian(FAN_OUT, FAN_IN, seed=4) / math.sqrt(FAN_IN), x)
    move(model, dz=gaussian(TOKENS, FAN_IN, seed=5) * 1e-2)
    assert probe.measure(1)["layer"]["omega"] == pytest.approx(0.5, abs=0.01)


def test_u_one_when_update_and_input_change_align_and_half_when_independent():
    w0 = gaussian(FAN_OUT, FAN_IN, seed=0) / math.sqrt(FAN_IN)
    x = gaussian(TOKENS, FAN_IN, seed=1)
    d = gaussian(FAN_IN, seed=2)
    model, probe = probe_with(w0, x)
    move(model, dw=rank_one(gaussian(FAN_OUT, seed=3), d, 0.05), dz=along(d, seed=4) * 0.1)
    v = probe.measure(1)["layer"]
    assert v["u"] == pytest.approx(1.0, abs=1e-6)
    assert v["alpha"] == pytest.approx(0.5, abs=0.02)  # the same ΔW is independent of x
    model, probe = probe_with(w0, x)
    move(model, dw=gaussian(FAN_OUT, FAN_IN, seed=5) * 1e-3, dz=gaussian(TOKENS, FAN_IN, seed=6) * 0.1)
    assert probe.measure(1)["layer"]["u"] == pytest.approx(0.5, abs=0.01)


@settings(max_examples=12, deadline=None)
@given(target=st.floats(0.55, 0.95), seed=st.integers(0, 1000))
def test_intermediate_alpha_is_what_the_mixture_predicts(target, seed):
    """ΔW = P + R, P = v m^T aligned with every token, R independent: ||ΔW z||^2 = ||P||^2 ||z||^2
    + ||R||^2 ||z||^2 / n, so alpha = 1 + log_n((p + r / n) / (p + r)) / 2 with p, r the squared norms.
    Choosing p / r to give `target`, the probe must measure it."""
    n = FAN_IN
    root = n ** (2 * target - 2)  # (p + r/n) / (p + r) for the target alpha
    p_over_r = (root - 1 / n) / (1 - root)
    m = gaussian(n, seed=seed)
    r = gaussian(FAN_OUT, n, seed=seed + 1)
    p = rank_one(gaussian(FAN_OUT, seed=seed + 2), m, math.sqrt(p_over_r) * float(r.norm()))
    w0 = gaussian(FAN_OUT, n, seed=seed + 3) / math.sqrt(n)
    model, probe = probe_with(w0, along(m, seed=seed + 4))
    move(model, dw=(p + r) * 1e-3)
    assert probe.measure(1)["layer"]["alpha"] == pytest.approx(target, abs=0.02)


def test_the_multiplier_cancels_in_every_ratio():
    w0 = gaussian(FAN_OUT, FAN_IN, seed=0) / math.sqrt(FAN_IN)
    x = gaussian(TOKENS, FAN_IN, seed=1) + gaussian(FAN_IN, seed=2)  # a shared direction: not all 1/2
    dw, dz = gaussian(FAN_OUT, FAN_IN, seed=3) * 1e-3 + 1e-4, gaussian(TOKENS, FAN_IN, seed=4) * 0.1 + 0.05
    seen = []
    for mult in (1.0, 0.03):
        model, probe = probe_with(w0, x, mult)
        start = probe.measure(0)["layer"]["log_alignment"]
        seen.append((start, probe.measure(1)["layer"] if move(model, dw=dw, dz=dz) else None))
    (a0, a), (b0, b) = seen
    assert b0 == pytest.approx(a0) and b == pytest.approx(a)
    assert all(v is not None for v in a.values()) and a["u"] > 0.55, a  # u: dw, dz share the constant direction


def test_step_zero_terms_are_empty_and_the_model_is_left_as_it_was():
    model = torch.nn.Sequential(Dense(64, 32), torch.nn.GELU(), Dense(32, 8)).train()
    for p in model.parameters():
        torch.nn.init.normal_(p, 0.0, p.shape[1] ** -0.5)
    before = [p.detach().clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    probe = AlignmentProbe(model, gaussian(16, 64, seed=0), no_autocast)
    v = probe.measure(0)
    assert set(v) == {"0", "2"}
    assert all(r["alpha"] is None and r["omega"] is None and r["u"] is None for r in v.values())
    assert all(0.3 < r["log_alignment"] < 0.7 for r in v.values())
    assert model.training and all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert torch.equal(rng, torch.get_rng_state())
    # q, k, v read one input: the probe keeps one copy of it
    shared = torch.nn.ModuleDict({"q": Dense(8, 8), "k": Dense(8, 8)})
    for p in shared.parameters():
        torch.nn.init.normal_(p)
    shared.forward = lambda x: shared["q"](x) + shared["k"](x)
    p = AlignmentProbe(shared, gaussian(4, 8, seed=1), no_autocast)
    assert p.z0["q"] is p.z0["k"]


def test_measuring_never_recompiles_the_compiled_training_graph():
    """The probe hooks the plain module between compiled steps: torch.compile traces once."""
    compiles = []

    def backend(gm, example_inputs):
        compiles.append(gm)
        return gm.forward

    model = torch.nn.Sequential(Dense(32, 32), torch.nn.GELU(), Dense(32, 8))
    for p in model.parameters():
        torch.nn.init.normal_(p, 0.0, 0.2)
    compiled = torch.compile(model, backend=backend)
    x = gaussian(4, 32, seed=0)
    probe = AlignmentProbe(model, x, no_autocast)
    for step in range(1, 4):
        compiled(x).square().mean().backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.01 * p.grad
                p.grad = None
        assert probe.measure(step)["2"]["alpha"] is not None
    assert len(compiles) == 1


# ------------------------------------------------------------------ the training script

TINY = dict(width=64, base_width=64, base_lr=1e-2, depth=2, head_dim=16, context=32, vocab=256)
FAST = ["--device", "cpu", "--batch-size", "8", "--log-every", "1", "--eval-every", "10", "--eval-batches", "2"]


def tiny(param: str = "mup", optim: str = "adam") -> dict:
    """The emitted script's data block for a tiny prescription."""
    from scaleadvise.script.emit import script_prescription

    return script_prescription(prescribe(PrescribeRequest(param=param, optim=optim, **TINY)).to_dict(),
                               depth_free=True)


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_script_logs_the_three_terms_beside_A(tmp_path):
    out = tmp_path / "r"
    assert T.main([*FAST, "--steps", "6", "--out", str(out), "--align-every", "3"], prescription=tiny()) == 0
    a = rows(out / "alignment.csv")
    assert list(a[0]) == ["width", "layer", "step", "log_alignment", "alpha", "omega", "u"]
    assert {r["step"] for r in a} == {"0", "3", "6"}
    for r in a:
        assert 0.3 < float(r["log_alignment"]) < 1.0
        if r["step"] == "0":  # ΔW = Δz = 0: no exponent, an empty cell
            assert r["alpha"] == r["omega"] == r["u"] == ""
        else:
            assert all(0.0 < float(r[k]) <= 1.0 for k in ("alpha", "omega", "u")), r


def test_resumed_run_logs_what_an_uninterrupted_one_does(tmp_path):
    """W_0 and z_0 are rebuilt from the seed before the checkpoint loads: the same reference."""
    pres, args = tiny(), ["--steps", "8", "--grads-every", "0", "--align-every", "2"]
    assert T.main([*FAST, *args, "--out", str(tmp_path / "a")], prescription=pres) == 0
    assert T.main([*FAST, *args, "--out", str(tmp_path / "b"), "--stop-at", "3"], prescription=pres) == 0
    assert T.main([*FAST, *args, "--out", str(tmp_path / "b"), "--resume"], prescription=pres) == 0
    a, b = rows(tmp_path / "a" / "alignment.csv"), rows(tmp_path / "b" / "alignment.csv")
    assert a == b and any(r["step"] == "8" and r["alpha"] for r in b)


def test_resume_refuses_a_reference_that_differs(tmp_path, capsys):
    pres, args = tiny(), ["--steps", "6", "--grads-every", "0", "--align-every", "2", "--out", str(tmp_path / "r")]
    assert T.main([*FAST, *args, "--stop-at", "2"], prescription=pres) == 0
    ckpt = tmp_path / "r" / "checkpoint.pt"
    payload = torch.load(ckpt, weights_only=False)
    assert set(payload["align_probe"]) >= {"blocks.0.attn.q", "readout"}
    payload["align_probe"]["readout"][0] *= 1.01  # as if the init had come out differently
    torch.save(payload, ckpt)
    capsys.readouterr()
    assert T.main([*FAST, *args, "--resume"], prescription=pres) == 2
    err = capsys.readouterr().err
    assert "alignment probe" in err and "readout" in err and err.count("\n") == 1


def test_align_every_zero_holds_no_probe(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("--align-every 0 built the probe")

    monkeypatch.setattr(T, "AlignmentProbe", refuse)
    assert T.main([*FAST, "--steps", "2", "--out", str(tmp_path / "r"), "--align-every", "0"], prescription=tiny()) == 0
    assert not (tmp_path / "r" / "alignment.csv").exists()


def _distributed(tmp_path, mode: str, extra: list[str]) -> tuple[list[dict], list[dict]]:
    from test_train_distributed import COMMON, TINY as TINY_FLAGS, _single, _torchrun

    script = tmp_path / "train.py"
    proc = subprocess.run([sys.executable, "-m", "scaleadvise", "emit-train", *TINY_FLAGS, "-o", str(script)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    args = ["--steps", "6", *COMMON, "--align-every", "2"]
    one = _single(str(script), [*args, "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    for more in extra:
        two = _torchrun(str(script), [*args, "--out", str(tmp_path / mode), "--distributed", mode, *more.split()])
        assert two.returncode == 0, two.stderr
    return rows(tmp_path / "one" / "alignment.csv"), rows(tmp_path / mode / "alignment.csv")


def _same_values(a: list[dict], b: list[dict], rel: float) -> None:
    assert [(r["layer"], r["step"]) for r in a] == [(r["layer"], r["step"]) for r in b]
    for x, y in zip(a, b):
        for k in ("log_alignment", "alpha", "omega", "u"):
            assert (x[k] == "") == (y[k] == "") and (x[k] == "" or float(y[k]) == pytest.approx(float(x[k]), rel=rel))


def test_ddp_rank_zero_measures_what_one_process_does(tmp_path):
    one, ddp = _distributed(tmp_path, "ddp", [""])
    _same_values(one, ddp, rel=1e-4)


@pytest.mark.slow
def test_fsdp_shards_measure_and_resume_what_one_process_does(tmp_path):
    """Each rank keeps its rows of W_0 (FSDP2 shards dim 0); shard sums are reduced over ranks."""
    one, fsdp = _distributed(tmp_path, "fsdp", ["--stop-at 3", "--resume"])
    _same_values(one, fsdp, rel=1e-4)


# ------------------------------------------------------------------ the toy


def _toy():
    spec = importlib.util.spec_from_file_location("align_toy", ROOT / "examples" / "align" / "make_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_toy_sp_hidden_layer_alpha_high_while_A_stays_low(cli, tmp_path):
    """SP MLP, Adam at the full-alignment exponents (hidden c = 1): the hidden update aligns
    with its input (alpha 0.82-0.88, rising with width) while A stays at 0.53-0.65 (falling
    with width). Read as alpha, A gave c_hidden ≈ 0.6; the measured alpha, omega, u give ≈ 0.9."""
    toy = _toy()
    rows_ = [r for w in (128, 512) for r in toy.train(w, steps=100)]
    s = toy.summary(rows_)
    for width in ("128", "512"):
        assert s[width]["alpha"][0] > 0.8 and s[width]["A"][1] < 0.66 and s[width]["alpha"][0] - s[width]["A"][1] > 0.18
        assert s[width]["c_hidden_from_A_peak"] < 0.66
    assert s["512"]["alpha"][0] > s["128"]["alpha"][1] and s["512"]["A"][1] < s["128"]["A"][1]
    path = tmp_path / "alignment.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows_[0]))
        w.writeheader()
        w.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows_)
    code, out, err = cli("align", str(path), "--param", "stp", "--optim", "adam", "--n-hidden", "1", "--json")
    assert code == 0, err
    doc = json.loads(out)
    mean = doc["lr_exponents"]["measured_mean"]
    assert mean["c"]["hidden"] >= doc["layer_types"]["hidden"]["alpha"]["mean"] > 0.84
    assert doc["layer_types"]["hidden"]["mean"] < 0.62  # A, shown and not used
