"""The training-script template run in-process at a tiny size (width 64, depth 2, context 32, vocab 256)."""

import csv
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scaleadvise.prescribe import PrescribeRequest, prescribe  # noqa: E402
from scaleadvise.templates import train as T  # noqa: E402
from scaleadvise.templates.nanodo import Dense  # noqa: E402
from scaleadvise.templates.probes import log_alignment  # noqa: E402

TINY = dict(width=64, base_width=64, base_lr=1e-2, depth=2, head_dim=16, context=32, vocab=256)
FAST = ["--device", "cpu", "--batch-size", "8", "--log-every", "1", "--eval-every", "10", "--eval-batches", "2"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def tiny(param: str = "stp", optim: str = "adam", **kw) -> dict:
    return prescribe(PrescribeRequest(param=param, optim=optim, **{**TINY, **kw}))


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(tmp_path, args: list[str], pres: dict, capsys=None) -> int:
    return T.main([*FAST, *args], prescription=pres)


def test_loss_falls_in_30_steps(tmp_path):
    out = tmp_path / "r"
    assert run(tmp_path, ["--steps", "30", "--out", str(out), "--grads-every", "10", "--align-every", "10"],
               tiny()) == 0
    m = rows(out / "metrics.csv")
    assert [int(r["step"]) for r in m] == list(range(1, 31))
    first, last = float(m[0]["train_loss"]), float(m[-1]["train_loss"])
    # STP logits start O(1) (readout std 1/sqrt(fan_in)): ln V plus about half their variance
    assert math.log(256) - 0.1 < first < math.log(256) + 1.0
    assert last < first - 0.7  # the synthetic stream is learnable (entropy ln 4)
    assert float(m[-1]["eval_loss"]) < first - 0.7
    assert float(m[-1]["lr"]) == 0.0  # cosine decays to 0 at the last step (C.3)
    assert set(m[0]) == {"step", "train_loss", "eval_loss", "lr", "tokens_per_s", "mfu"}
    assert m[0]["mfu"] == ""  # no peak FLOP/s known for a CPU


def test_grads_csv_columns_and_first_step_identity(tmp_path):
    """After Adam's first step the bias-corrected v is g^2, so RMS sqrt(v_hat) = RMS g exactly."""
    out = tmp_path / "g"
    T.main([*FAST, "--steps", "3", "--out", str(out), "--grads-every", "2", "--align-every", "0"], prescription=tiny())
    g = rows(out / "grads.csv")
    assert list(g[0]) == ["width", "layer", "step", "grad_rms", "sqrt_v_rms", "seed", "decrease", "decrease_no_eps",
                          "eps"]
    assert {r["seed"] for r in g} == {"0"} and all(0 < float(r["decrease"]) <= float(r["decrease_no_eps"]) for r in g
                                                   if r["step"] == "1")
    names = {r["layer"] for r in g}
    assert {"embed.tokens", "blocks.1.mlp.down", "readout", "final_norm"} <= names
    assert {int(r["step"]) for r in g} == {1, 2}
    for r in g:
        if r["step"] == "1":
            assert float(r["sqrt_v_rms"]) == pytest.approx(float(r["grad_rms"]), rel=1e-5)
    assert not (out / "alignment.csv").exists()


def test_sgd_has_no_second_moment(tmp_path):
    out = tmp_path / "s"
    T.main([*FAST, "--steps", "2", "--out", str(out), "--grads-every", "1"], prescription=tiny(optim="sgd"))
    g = rows(out / "grads.csv")
    assert g and all(r["sqrt_v_rms"] == "" and float(r["grad_rms"]) > 0 for r in g)


def test_alignment_is_half_at_init_and_one_when_aligned(tmp_path):
    out = tmp_path / "a"
    T.main([*FAST, "--steps", "1", "--out", str(out), "--align-every", "1", "--width", "256"], prescription=tiny())
    a = [r for r in rows(out / "alignment.csv") if r["step"] == "0"]
    assert list(a[0]) == ["width", "layer", "step", "log_alignment"] and a[0]["width"] == "256"
    dense = {r["layer"] for r in a}
    assert dense == {f"blocks.{i}.{m}" for i in range(2) for m in
                     ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.up", "mlp.down")} | {"readout"}
    for r in a:  # random init is independent of the data: no alignment, A = 1/2 (§4.1)
        assert float(r["log_alignment"]) == pytest.approx(0.5, abs=0.05), r
    # Full alignment: every row of W parallel to z gives ||Wz|| = n ||W|| ||z|| / n, A = 1.
    layer = Dense(32, 8)
    layer.mult = 0.3  # the multiplier cancels in the ratio
    torch.nn.init.constant_(layer.weight, 0.7)
    z = torch.full((4, 5, 32), 2.0)
    values = log_alignment(torch.nn.Sequential(layer), z, lambda: torch.autocast("cpu", enabled=False))
    assert values["0"] == pytest.approx(1.0, abs=1e-6)


def test_resume_continues_bit_for_bit(tmp_path):
    pres = tiny("mup", "adam")
    args = ["--steps", "20", "--grads-every", "5", "--align-every", "5"]
    T.main([*FAST, *args, "--out", str(tmp_path / "straight")], prescription=pres)
    T.main([*FAST, *args, "--out", str(tmp_path / "split"), "--stop-at", "10"], prescription=pres)
    assert (tmp_path / "split" / "checkpoint.pt").exists()
    assert [r["step"] for r in rows(tmp_path / "split" / "metrics.csv")][-1] == "10"
    T.main([*FAST, *args, "--out", str(tmp_path / "split"), "--resume"], prescription=pres)
    for name in ("metrics.csv", "grads.csv", "alignment.csv"):
        a, b = rows(tmp_path / "straight" / name), rows(tmp_path / "split" / name)
        cols = [c for c in a[0] if c not in ("tokens_per_s", "mfu")]
        assert [[r[c] for c in cols] for r in a] == [[r[c] for c in cols] for r in b], name


@pytest.mark.parametrize("optim", ["adam-atan2", "adam-ps", "sgd"])  # their states: m, v, step; momentum
def test_resume_exact_for_every_optimizer_state(tmp_path, optim):
    pres = tiny("mfp", optim)
    args = ["--steps", "8", "--grads-every", "0", "--align-every", "0"]
    T.main([*FAST, *args, "--out", str(tmp_path / "a")], prescription=pres)
    T.main([*FAST, *args, "--out", str(tmp_path / "b"), "--stop-at", "4"], prescription=pres)
    T.main([*FAST, *args, "--out", str(tmp_path / "b"), "--resume"], prescription=pres)
    a, b = rows(tmp_path / "a" / "metrics.csv"), rows(tmp_path / "b" / "metrics.csv")
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]


def test_sweep_marks_divergence_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = [*FAST, "--steps", "4", "--out", str(out), "--sweep-lr", "1e-2,1e4", "--widths", "32,64",
            "--grads-every", "0", "--align-every", "0", "--log-every", "2"]
    assert T.main(args, prescription=tiny("stp", "sgd")) == 0
    s = rows(out / "sweeps.csv")
    assert list(s[0]) == ["width", "lr", "loss", "step", "seed", "param", "optim", "diverged"]
    assert [(int(r["width"]), float(r["lr"])) for r in s] == [(32, 1e-2), (32, 1e4), (64, 1e-2), (64, 1e4)]
    for r in s:
        assert r["param"] == "stp" and r["optim"] == "sgd" and r["step"] == "4"
        if float(r["lr"]) > 1:
            assert r["diverged"] == "1" and r["loss"] == "nan"
        else:
            assert r["diverged"] == "0" and 4 < float(r["loss"]) < 6.5
    capsys.readouterr()
    assert T.main(args + ["--resume"], prescription=tiny("stp", "sgd")) == 0
    assert capsys.readouterr().out.count("skip") == 4
    assert len(rows(out / "sweeps.csv")) == 4


def test_lr_grid_and_schedule():
    grid = T.parse_lr_grid("2^-14:2^-6:0.5")
    assert len(grid) == 17 and grid[0] == 2.0 ** -14 and grid[-1] == pytest.approx(2.0 ** -6, rel=1e-12)
    assert all(b / a == pytest.approx(2 ** 0.5) for a, b in zip(grid, grid[1:]))
    assert T.parse_lr_grid("1e-3, 3e-3") == [1e-3, 3e-3]
    f = [T.lr_factor(s, 100, 10) for s in range(100)]
    assert f[0] == 0.1 and f[9] == 1.0  # linear warmup from 0 (C.3)
    assert f[9 + 45] == pytest.approx(0.5) and f[-1] == pytest.approx(0.0, abs=1e-15)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))  # cosine decays monotonically


def test_data_files(tmp_path):
    from scaleadvise.templates.data import load_tokens

    rng = np.random.default_rng(0)
    train = rng.integers(0, 300, 5000).astype(np.uint16)
    (tmp_path / "train.bin").write_bytes(train.tobytes())
    (tmp_path / "val.bin").write_bytes(train[:500].tobytes())
    tr, held, about = load_tokens(str(tmp_path / "train.bin"), 300, 32)
    assert len(tr) == 5000 and len(held) == 500 and "val.bin" in about  # nanoGPT layout
    (tmp_path / "x.bin").write_bytes(train.astype(np.uint32).tobytes())
    tr, held, _ = load_tokens(str(tmp_path / "x.bin"), 300, 32, "uint32")
    assert len(tr) + len(held) == 5000 and len(held) == 250 and int(tr[7]) == int(train[7])
    (tmp_path / "t.txt").write_text("hello world " * 100)
    tr, held, _ = load_tokens(str(tmp_path / "t.txt"), 256, 8)
    assert bytes(tr[:5].astype(np.uint8)) == b"hello"


def _error(capsys, argv, pres) -> str:
    assert T.main(argv, prescription=pres) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err
    return err


def test_eval_set_is_the_same_for_every_seed(tmp_path):
    """Seeds change the init and the training batches, never the held-out batches, so a
    sweep's seed-to-seed spread measures training noise only."""
    from scaleadvise.templates.data import load_tokens
    from scaleadvise.templates.dist import setup_distributed

    pres = tiny()
    args = T.build_parser().parse_args([*FAST, "--eval-batches", "3"])
    tokens = load_tokens(None, 256, 32)[:2]
    dist = setup_distributed("none", "cpu")
    a, b = (T.Run(args, pres, 64, 1e-2, seed, str(tmp_path / f"s{seed}"), dist, tokens) for seed in (0, 1))
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(a.eval_set, b.eval_set))
    assert not torch.equal(a.batches.next()[0], b.batches.next()[0])  # training data does differ


def test_bad_input_one_line_exit_2(tmp_path, capsys):
    pres = tiny()
    assert "--bogus" in _error(capsys, ["--bogus"], pres)
    assert "not divisible by the head dimension 16" in _error(capsys, [*FAST, "--width", "72"], pres)
    small = tmp_path / "small.bin"
    small.write_bytes(np.arange(40, dtype=np.uint16).tobytes())
    assert "too small for --context 32" in _error(capsys, [*FAST, "--data", str(small), "--out",
                                                            str(tmp_path / "o1")], pres)
    assert not (tmp_path / "o1").exists()  # nothing written for bad input
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x01\x02\x03")
    assert "whole number" in _error(capsys, [*FAST, "--data", str(odd)], pres)
    big = tmp_path / "big.bin"
    big.write_bytes(np.full(4000, 999, dtype=np.uint16).tobytes())
    assert "token id 999 >= vocab 256" in _error(capsys, [*FAST, "--data", str(big)], pres)
    assert "no such file" in _error(capsys, [*FAST, "--data", str(tmp_path / "missing.bin")], pres)
    if not torch.cuda.is_available():
        assert "no CUDA device" in _error(capsys, ["--device", "cuda"], pres)
    assert "adam-atan2" in _error(capsys, [*FAST, "--eps", "0"], pres)
    assert "--threads 0" in _error(capsys, [*FAST, "--threads", "0"], pres)
    assert "--stop-at 50" in _error(capsys, [*FAST, "--steps", "10", "--stop-at", "50"], pres)
    assert "--sweep-lr" in _error(capsys, [*FAST, "--sweep-lr", "1:x:2"], pres)
    assert "no prescription" in _error(capsys, [*FAST], None)
    assert "adafactor" in _error(capsys, [*FAST], {**pres, "optimizer": "adafactor"})


def test_out_holding_another_run_is_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    pres = tiny()
    assert T.main([*FAST, "--steps", "2", "--out", str(out)], prescription=pres) == 0
    before = (out / "metrics.csv").read_text()
    err = _error(capsys, [*FAST, "--steps", "2", "--out", str(out)], pres)
    assert "holds another run's files" in err and "--resume" in err
    err = _error(capsys, [*FAST, "--steps", "3", "--out", str(out), "--resume"], pres)
    assert "steps" in err
    assert (out / "metrics.csv").read_text() == before
