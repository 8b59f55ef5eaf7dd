"""The training-script template run in-process at a tiny size (width 64, depth 2, context 32, vocab 256):
learning, the CSVs, bit-for-bit resume, signals, result.json and exit codes, bad input."""

import csv
import json
import math
import os
import signal

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scaleadvise.core.prescribe import PrescribeRequest, prescribe  # noqa: E402
from scaleadvise.script.emit import script_prescription  # noqa: E402
from scaleadvise.script.template import train as T  # noqa: E402
from scaleadvise.script.template.nanodo import Dense  # noqa: E402
from scaleadvise.script.template.probes import log_alignment  # noqa: E402

TINY = dict(width=64, base_width=64, base_lr=1e-2, depth=2, head_dim=16, context=32, vocab=256)
FAST = ["--device", "cpu", "--batch-size", "8", "--log-every", "1", "--eval-every", "10", "--eval-batches", "2"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def tiny(param: str = "stp", optim: str = "adam", **kw) -> dict:
    """The emitted script's data block for a tiny prescription."""
    return script_prescription(prescribe(PrescribeRequest(param=param, optim=optim, **{**TINY, **kw})).to_dict(),
                               depth_free=True)


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def result(out) -> dict:
    return json.loads((out / "result.json").read_text())


def listing(out) -> list[str]:
    return sorted(os.listdir(out))


def test_loss_falls_in_30_steps(tmp_path, capsys):
    out = tmp_path / "r"
    assert T.main([*FAST, "--steps", "30", "--out", str(out), "--grads-every", "10", "--align-every", "10"],
                  prescription=tiny()) == 0
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
    res = result(out)
    assert res == {**res, "status": "done", "step": 30, "steps": 30, "width": 64, "depth": 2, "lr": 1e-2, "seed": 0,
                   "parameterization": "stp", "optimizer": "adam"}
    assert res["train_loss"] == float(m[-1]["train_loss"]) and res["eval_loss"] == float(m[-1]["eval_loss"])
    assert res["seconds"] > 0
    assert listing(out) == ["alignment.csv", "checkpoint.pt", "grads.csv", "metrics.csv", "result.json"]
    # The banner comes before the first step and says what will run, and how long it may take.
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("NanoDO width 64, depth 2, 4 heads, context 32, vocab 256: 0.13M parameters")
    assert "256 tokens per step" in lines[2] and "cpu" in lines[2] and "ETA ~" in lines[2]
    assert lines[3].startswith("step 1/30 | loss ")


def test_first_line_at_step_1_whatever_the_log_interval(tmp_path, capsys):
    out = tmp_path / "r"
    assert T.main([*FAST, "--steps", "3", "--log-every", "1000", "--out", str(out)], prescription=tiny()) == 0
    steps = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert steps == ["1/3", "3/3"]


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
    assert list(a[0]) == ["width", "layer", "step", "log_alignment", "alpha", "omega", "u"] and a[0]["width"] == "256"
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


def _same_rows(a, b, name):
    a, b = rows(a / name), rows(b / name)
    cols = [c for c in a[0] if c not in ("tokens_per_s", "mfu")]
    assert [[r[c] for c in cols] for r in a] == [[r[c] for c in cols] for r in b], name


def test_resume_continues_bit_for_bit(tmp_path):
    pres = tiny("mup", "adam")
    args = [*FAST, "--steps", "20", "--grads-every", "5", "--align-every", "5"]
    assert T.main([*args, "--out", str(tmp_path / "straight")], prescription=pres) == 0
    assert T.main([*args, "--out", str(tmp_path / "split"), "--stop-at", "10"], prescription=pres) == 0
    assert result(tmp_path / "split")["status"] == "stopped" and result(tmp_path / "split")["step"] == 10
    assert [r["step"] for r in rows(tmp_path / "split" / "metrics.csv")][-1] == "10"
    assert T.main([*args, "--out", str(tmp_path / "split"), "--resume"], prescription=pres) == 0
    for name in ("metrics.csv", "grads.csv", "alignment.csv"):
        _same_rows(tmp_path / "straight", tmp_path / "split", name)
    assert result(tmp_path / "split")["status"] == "done"
    # Resuming a finished run trains nothing and logs nothing twice.
    assert T.main([*args, "--out", str(tmp_path / "split"), "--resume"], prescription=pres) == 0
    _same_rows(tmp_path / "straight", tmp_path / "split", "metrics.csv")


@pytest.mark.parametrize("optim", ["adam-atan2", "adam-ps", "sgd"])  # their states: m, v, step; momentum
def test_resume_exact_for_every_optimizer_state(tmp_path, optim):
    pres = tiny("mfp", optim)
    args = [*FAST, "--steps", "8", "--grads-every", "0", "--align-every", "0"]
    T.main([*args, "--out", str(tmp_path / "a")], prescription=pres)
    T.main([*args, "--out", str(tmp_path / "b"), "--stop-at", "4"], prescription=pres)
    T.main([*args, "--out", str(tmp_path / "b"), "--resume"], prescription=pres)
    a, b = rows(tmp_path / "a" / "metrics.csv"), rows(tmp_path / "b" / "metrics.csv")
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_checkpoints_and_resume_duplicates_nothing(tmp_path, monkeypatch, capsys, signum):
    """A signal during step 4 (sent from inside it) stops the run after that step: checkpoint,
    result.json "stopped", one line on stderr, exit 128 + signum, no temporary file; --resume
    then finishes exactly as a run that was never stopped."""
    pres = tiny("mup", "adam")
    args = [*FAST, "--steps", "8", "--grads-every", "1", "--align-every", "2", "--ckpt-every", "0"]
    assert T.main([*args, "--out", str(tmp_path / "straight")], prescription=pres) == 0
    scales = T.gradient_scales

    def probe(model, opt, dist):
        if opt.state[next(iter(opt.state))]["step"] == 4:
            os.kill(os.getpid(), signum)
        return scales(model, opt, dist)

    monkeypatch.setattr(T, "gradient_scales", probe)
    out = tmp_path / "stopped"
    capsys.readouterr()
    assert T.main([*args, "--out", str(out)], prescription=pres) == 128 + signum
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"stopped by {signal.Signals(signum).name} at step 4" in err and "--resume" in err
    assert result(out)["status"] == "stopped" and result(out)["step"] == 4
    assert listing(out) == ["alignment.csv", "checkpoint.pt", "grads.csv", "metrics.csv", "result.json"]
    monkeypatch.setattr(T, "gradient_scales", scales)
    assert T.main([*args, "--out", str(out), "--resume"], prescription=pres) == 0
    for name in ("metrics.csv", "grads.csv", "alignment.csv"):
        _same_rows(tmp_path / "straight", out, name)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_a_second_signal_stops_at_once(tmp_path, monkeypatch, capsys):
    scales = T.gradient_scales

    def probe(model, opt, dist):
        if opt.state[next(iter(opt.state))]["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C twice
        return scales(model, opt, dist)

    monkeypatch.setattr(T, "gradient_scales", probe)
    out = tmp_path / "o"
    assert T.main([*FAST, "--steps", "8", "--grads-every", "1", "--ckpt-every", "2", "--out", str(out)],
                  prescription=tiny()) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stopped by SIGINT again: not saved since the last checkpoint" in err
    assert listing(out) == ["alignment.csv", "checkpoint.pt", "grads.csv", "metrics.csv"]  # step 2's checkpoint
    monkeypatch.setattr(T, "gradient_scales", scales)
    assert T.main([*FAST, "--steps", "8", "--grads-every", "1", "--ckpt-every", "2", "--out", str(out), "--resume"],
                  prescription=tiny()) == 0
    assert [r["step"] for r in rows(out / "metrics.csv")] == [str(i) for i in range(1, 9)]


def test_signal_before_the_first_step_saves_nothing(tmp_path, monkeypatch, capsys):
    load = T.load_tokens

    def interrupted(*a, **kw):
        os.kill(os.getpid(), signal.SIGTERM)
        return load(*a, **kw)

    monkeypatch.setattr(T, "load_tokens", interrupted)
    out = tmp_path / "o"
    assert T.main([*FAST, "--steps", "3", "--out", str(out)], prescription=tiny()) == 143
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stopped by SIGTERM before the first step; nothing saved" in err
    assert not out.exists()


def test_diverged_run_exit_1_and_result(tmp_path):
    out = tmp_path / "d"
    assert T.main([*FAST, "--steps", "6", "--out", str(out), "--lr", "1e4", "--log-every", "2"],
                  prescription=tiny("stp", "sgd")) == 1
    res = result(out)
    assert res["status"] == "diverged" and res["train_loss"] is None and res["step"] <= 6
    json.loads((out / "result.json").read_text())  # strict JSON: no NaN


def test_resume_without_checkpoint_is_refused(tmp_path, capsys):
    out = tmp_path / "none"
    assert _error(capsys, [*FAST, "--steps", "2", "--out", str(out), "--resume"], tiny()).count("no checkpoint.pt")
    assert not out.exists()


def test_a_start_that_never_checkpointed_does_not_block_its_out(tmp_path, capsys):
    """Logs of a start that died before its first checkpoint (here: written by hand) and a
    temporary file of a save a kill interrupted are removed; the run says so and logs each
    step once."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "metrics.csv").write_text("step,train_loss,eval_loss,lr,tokens_per_s,mfu\n1,5.5,,0.1,1,\n")
    (out / "alignment.csv").write_text("width,layer,step,log_alignment\n64,readout,0,0.5\n")
    (out / "checkpoint.pt.tmp").write_bytes(b"\0" * 1000)
    assert T.main([*FAST, "--steps", "3", "--out", str(out)], prescription=tiny()) == 0
    said = capsys.readouterr().out
    assert "never saved a checkpoint; starting over (removed metrics.csv, alignment.csv)" in said
    assert [r["step"] for r in rows(out / "metrics.csv")] == ["1", "2", "3"]
    assert not (out / "checkpoint.pt.tmp").exists()


def test_lr_schedule():
    f = [T.lr_factor(s, 100, 10) for s in range(100)]
    assert f[0] == 0.1 and f[9] == 1.0  # linear warmup from 0 (C.3)
    assert f[9 + 45] == pytest.approx(0.5) and f[-1] == pytest.approx(0.0, abs=1e-15)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))  # cosine decays monotonically


def test_data_files(tmp_path):
    from scaleadvise.script.template.data import load_tokens

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


def test_eval_set_is_the_same_for_every_seed():
    """Seeds change the init and the training batches, never the held-out batches, so a
    sweep's seed-to-seed spread measures training noise only."""
    from scaleadvise.script.template.data import Batches, eval_batches, load_tokens

    held = load_tokens(None, 256, 32, seed=0)[1]
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(eval_batches(held, 32, 8, 3, 0, 1, torch.device("cpu")),
                                                         eval_batches(held, 32, 8, 3, 0, 1, torch.device("cpu"))))
    train = load_tokens(None, 256, 32, seed=0)[0]
    a, b = (Batches(train, 32, 8, 0, 1, seed, torch.device("cpu")) for seed in (0, 1))
    assert not torch.equal(a.next()[0], b.next()[0])


def _error(capsys, argv, pres) -> str:
    assert T.main(argv, prescription=pres) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err
    return err


def test_bad_input_one_line_exit_2(tmp_path, capsys):
    pres = tiny()
    assert "--bogus" in _error(capsys, ["--bogus"], pres)
    assert "not a multiple of the head dimension 16" in _error(capsys, [*FAST, "--width", "72"], pres)
    for flag in ("--width", "--depth", "--context", "--vocab"):
        for value in ("0", "-16"):
            assert f"{flag}: {value}: must be a positive integer" in _error(capsys, [*FAST, flag, value], pres)
    for flag in ("--steps", "--batch-size", "--log-every"):
        assert f"{flag}: 0: must be >= 1" in _error(capsys, [*FAST, flag, "0"], pres)
    for value in ("nan", "inf", "-1", "0"):
        assert f"--lr: {value}: must be a positive number" in _error(capsys, [*FAST, "--lr", value], pres)
    assert "--grads-every: -1: must be >= 0" in _error(capsys, [*FAST, "--grads-every", "-1"], pres)
    assert "--beta2 1.0: must be below 1" in _error(capsys, [*FAST, "--beta2", "1"], pres)
    small = tmp_path / "small.bin"
    small.write_bytes(np.arange(40, dtype=np.uint16).tobytes())
    assert "too small for --context 32" in _error(capsys, [*FAST, "--data", str(small), "--out",
                                                            str(tmp_path / "o1")], pres)
    assert not (tmp_path / "o1").exists()  # nothing written for bad input
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x01\x02\x03")
    assert "whole, non-zero number" in _error(capsys, [*FAST, "--data", str(odd)], pres)
    big = tmp_path / "big.bin"
    big.write_bytes(np.full(4000, 999, dtype=np.uint16).tobytes())
    assert "token id 999 >= vocab 256" in _error(capsys, [*FAST, "--data", str(big)], pres)
    assert "no such file" in _error(capsys, [*FAST, "--data", str(tmp_path / "missing.bin")], pres)
    assert "is a directory" in _error(capsys, [*FAST, "--data", str(tmp_path)], pres)
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.txt"
        locked.write_text("x" * 1000)
        locked.chmod(0)
        assert "Permission denied" in _error(capsys, [*FAST, "--data", str(locked)], pres)
    if not torch.cuda.is_available():
        assert "no CUDA device" in _error(capsys, ["--device", "cuda"], pres)
    assert "--eps: 0: must be > 0 (0 gives 0/0" in _error(capsys, [*FAST, "--eps", "0"], pres)
    assert "has no epsilon" in _error(capsys, [*FAST, "--eps", "1e-8"], tiny(optim="adam-atan2"))
    assert "--threads: 0: must be >= 1" in _error(capsys, [*FAST, "--threads", "0"], pres)
    assert "--stop-at 50" in _error(capsys, [*FAST, "--steps", "10", "--stop-at", "50"], pres)
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert f"--out {afile}: is a file" in _error(capsys, [*FAST, "--out", str(afile)], pres)
    assert "torchrun" in _error(capsys, [*FAST, "--distributed", "ddp"], pres)
    assert "adafactor" in _error(capsys, [*FAST, "--out", str(tmp_path / "o2")], {**pres, "optimizer": "adafactor"})


def test_depth_override_only_where_the_exponents_allow_it(tmp_path, capsys):
    """With a hidden omega above 1/2 the exponents depend on the depth (Table 2): the script
    trains only its own depth; with the paper's alignments any depth."""
    fixed = script_prescription(prescribe(PrescribeRequest(param="stp", optim="adam", alignment="1,0.7,1",
                                                           **TINY)).to_dict(), depth_free=False)
    assert "--depth 3: this prescription's exponents depend on the depth" in _error(
        capsys, [*FAST, "--depth", "3", "--steps", "1"], fixed)
    out = tmp_path / "d3"
    assert T.main([*FAST, "--depth", "3", "--steps", "1", "--out", str(out)], prescription=tiny()) == 0
    assert result(out)["depth"] == 3


def test_out_holding_another_run_is_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    pres = tiny()
    assert T.main([*FAST, "--steps", "2", "--out", str(out)], prescription=pres) == 0
    before = (out / "metrics.csv").read_text()
    err = _error(capsys, [*FAST, "--steps", "2", "--out", str(out)], pres)
    assert "holds another run (checkpoint.pt, result.json)" in err and "--resume" in err
    err = _error(capsys, [*FAST, "--steps", "3", "--out", str(out), "--resume"], pres)
    assert "was started with --steps 2, not 3" in err
    assert (out / "metrics.csv").read_text() == before


def test_tokens_per_s_is_measured_since_the_last_log_without_evaluation(tmp_path, monkeypatch):
    """tokens_per_s of a logged step covers the training since the previous log only: a slow
    evaluation must not depress the rates logged after it (it did when the rate was the
    running average since step 1). A fake clock makes it exact: every read advances it by
    one unit, every evaluation batch by 1000."""
    import time as real_time
    import types

    clock = types.SimpleNamespace(t=0.0)

    def perf_counter():
        clock.t += 1.0
        return clock.t

    monkeypatch.setattr(T, "time", types.SimpleNamespace(perf_counter=perf_counter, time=real_time.time,
                                                         sleep=real_time.sleep))
    loss = T.F.cross_entropy

    def slow_when_evaluating(*a, **k):
        if not T.torch.is_grad_enabled():  # evaluation runs under no_grad
            clock.t += 1000.0
        return loss(*a, **k)

    monkeypatch.setattr(T.F, "cross_entropy", slow_when_evaluating)
    out = tmp_path / "r"
    assert T.main([*FAST, "--steps", "24", "--eval-every", "8", "--grads-every", "0", "--align-every", "0",
                   "--out", str(out)], prescription=tiny()) == 0
    tps = {int(r["step"]): float(r["tokens_per_s"]) for r in rows(out / "metrics.csv")}
    assert max(tps.values()) / min(tps[s] for s in range(2, 25)) < 3.0, tps  # no step pays for an evaluation


def test_a_long_cpu_run_suggests_the_tiny_model_in_its_banner(tmp_path, monkeypatch, capsys):
    """Before the first step of a run an hour long on a CPU, the banner names the tiny configuration."""
    monkeypatch.setattr(T, "estimate_seconds", lambda *a, **k: 3600.0)
    assert T.main([*FAST, "--steps", "1", "--out", str(tmp_path / "run"), "--align-every", "0"],
                  prescription=tiny(width=256, base_width=256)) == 0
    out = capsys.readouterr().out
    assert "ETA ~1:00:00" in out and "try a tiny model: --width 128 --depth 2 --context 64" in out
