"""The grads.csv probe (`templates.probes.gradient_scales`) against a hand computation of Adam."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scaleadvise.script.template.dist import Dist  # noqa: E402
from scaleadvise.script.template.probes import GRADS_COLUMNS, gradient_scales  # noqa: E402
from scaleadvise.torch.optim import AdamAtan2, AdamPS  # noqa: E402

ONE = Dist("none", 0, 1, 0, torch.device("cpu"))


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def tiny():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Linear(3, 2, bias=False))


def grads_for(step: int) -> list[np.ndarray]:
    """Fixed, hand-chosen gradients of every parameter at each step (float64 reference)."""
    rng = np.random.default_rng(step)
    return [rng.normal(size=s) * 10.0 ** -rng.integers(2, 7, size=s) for s in ((3, 5), (3,), (2, 3))]


def adam_by_hand(steps: int, lr: list[float], eps: list[float], betas=(0.9, 0.98)) -> list[dict]:
    """Adam's m, v after `steps` steps, and the probe's numbers from their definitions."""
    b1, b2 = betas
    grads = [grads_for(t) for t in range(1, steps + 1)]
    out = []
    for i in range(3):
        m = v = 0.0
        for t in range(steps):
            g = grads[t][i]
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        g = grads[-1][i]
        m_hat, sqrt_v_hat = m / (1 - b1**steps), np.sqrt(v / (1 - b2**steps))
        k = 0 if i < 2 else 1  # the first Linear is group 0, the second group 1
        out.append({"grad_rms": np.sqrt(np.mean(g * g)), "sqrt_v_rms": np.sqrt(np.mean(sqrt_v_hat**2)),
                    "decrease": lr[k] * np.sum(g * m_hat / (sqrt_v_hat + eps[k])),
                    "decrease_no_eps": lr[k] * np.sum(g * m_hat / sqrt_v_hat), "eps": eps[k]})
    return out


def run_adam(model, opt, steps: int) -> list[dict]:
    params = list(model.parameters())
    for t in range(1, steps + 1):
        for p, g in zip(params, grads_for(t)):
            p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
    return gradient_scales(model, opt, ONE)


@pytest.mark.parametrize("steps", [1, 4])
def test_probe_matches_adam_by_hand(steps):
    model = tiny()
    lr, eps = [3e-3, 1e-2], [1e-5, 1e-4]  # eps comparable to some sqrt(v): both terms differ
    opt = torch.optim.Adam([{"params": model[0].parameters(), "lr": lr[0], "eps": eps[0]},
                            {"params": model[1].parameters(), "lr": lr[1], "eps": eps[1]}], betas=(0.9, 0.98))
    rows = run_adam(model, opt, steps)
    want = adam_by_hand(steps, lr, eps)
    assert [r["layer"] for r in rows] == ["0", "0.bias", "1"]  # tensor names: `.weight` dropped
    for r, w in zip(rows, want):
        for key in ("grad_rms", "sqrt_v_rms", "decrease", "decrease_no_eps"):
            assert r[key] == pytest.approx(w[key], rel=2e-5), (r["layer"], key)
        assert r["eps"] == w["eps"]
        assert 0 < r["decrease"] < r["decrease_no_eps"]
    if steps == 1:  # m_hat = g and sqrt(v_hat) = |g| after one step: decrease_no_eps = lr ||g||_1
        for r, g, k in zip(rows, grads_for(1), (0, 0, 1)):
            assert r["decrease_no_eps"] == pytest.approx(lr[k] * np.abs(g).sum(), rel=1e-5)


def test_decrease_is_the_first_order_loss_decrease():
    """On L(W) = 1/2 ||A W - y||^2 a small step lowers L by `decrease` up to O(lr^2)."""
    torch.manual_seed(1)
    w = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    a, y = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)

    def loss():
        return 0.5 * (a @ w - y).square().sum()

    model = torch.nn.Module()
    model.w = w
    opt = torch.optim.Adam([w], lr=1e-5, eps=3.0)  # eps of the order of |g|: a real cut
    for _ in range(3):
        opt.zero_grad()
        loss().backward()
        opt.step()
    opt.zero_grad()
    before = loss()
    before.backward()
    opt.step()
    with torch.no_grad():
        drop = float(before - loss())
    row = gradient_scales(model, opt, ONE)[0]
    assert row["decrease"] == pytest.approx(drop, rel=1e-3)
    assert row["decrease"] < 0.9 * row["decrease_no_eps"]  # eps takes a visible share


def test_tiny_eps_effect_survives_summation():
    """eps = 1e-12 against sqrt(v) ~ 1: the lost share ~1e-12 is resolved, not rounded to 0."""
    w = torch.nn.Parameter(torch.ones(1000))
    model = torch.nn.Module()
    model.w = w
    opt = torch.optim.Adam([w], lr=1.0, eps=1e-12)
    w.grad = torch.ones(1000)
    opt.step()
    r = gradient_scales(model, opt, ONE)[0]
    lost = (r["decrease_no_eps"] - r["decrease"]) / r["decrease"]
    assert lost == pytest.approx(1e-12, rel=1e-3)


def test_adam_ps_carries_the_parameter_scale():
    model = tiny()
    opt = AdamPS(model.parameters(), lr=1e-2, eps=1e-5)
    rows = run_adam(model, opt, 2)
    ref = adam_by_hand(2, [1e-2, 1e-2], [1e-5, 1e-5])
    for r, w, p in zip(rows, ref, model.parameters()):
        s = max(1e-3, float(p.detach().square().mean().sqrt()))  # RMS(W) after the step stands in
        assert r["decrease"] == pytest.approx(s * w["decrease"], rel=1e-4)
        assert r["decrease"] / r["decrease_no_eps"] == pytest.approx(w["decrease"] / w["decrease_no_eps"], rel=1e-5)


@pytest.mark.parametrize("make", [lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: AdamAtan2(ps, lr=0.1)])
def test_optimizers_without_eps_on_sqrt_v_leave_the_decrease_empty(make):
    model = tiny()
    rows = run_adam(model, make(model.parameters()), 2)
    assert all(r["decrease"] is None and r["decrease_no_eps"] is None and r["grad_rms"] > 0 for r in rows)


def test_grads_columns_keep_the_contract_first():
    assert GRADS_COLUMNS[:5] == ("width", "layer", "step", "grad_rms", "sqrt_v_rms")
    assert {"seed", "decrease", "decrease_no_eps", "eps"} <= set(GRADS_COLUMNS)


def test_underflowed_second_moment_gives_finite_terms():
    """Gradients of 1e-25 square to 0 in float32: v = 0 there. Those elements count 0; the
    terms stay finite (an inf would make the grads.csv unreadable by `scaleadvise epsilon`)."""
    w = torch.nn.Parameter(torch.ones(4))
    model = torch.nn.Module()
    model.w = w
    opt = torch.optim.Adam([w], lr=1.0, eps=1e-8)
    w.grad = torch.tensor([1e-25, 1e-25, 1.0, 2.0])
    opt.step()
    r = gradient_scales(model, opt, ONE)[0]
    assert r["decrease_no_eps"] == pytest.approx(3.0, rel=1e-6)  # |1| + |2|: lr·||g||_1 over the live elements
    assert r["decrease"] == pytest.approx(1 / (1 + 1e-8) + 4 / (2 + 1e-8), rel=1e-6)


@pytest.mark.slow
def test_fsdp_decrease_terms_are_sums_over_shards(tmp_path):
    """Two gloo ranks holding shards of every tensor and its moments log the same decrease
    terms as one process (the inner products are summed over shards)."""
    import csv
    import os
    import socket
    import subprocess
    import sys

    from scaleadvise.core.prescribe import PrescribeRequest, prescribe
    from scaleadvise.script.emit import emit_script

    doc = prescribe(PrescribeRequest(param="mfp", optim="adam", width=64, base_width=64, base_lr=1e-2, depth=2,
                                     head_dim=16, context=32, vocab=256, eps=1e-5)).to_dict()
    (tmp_path / "train.py").write_text(emit_script(doc, "scaleadvise emit-train (test)"))
    args = [str(tmp_path / "train.py"), "--steps", "4",
            "--device", "cpu", "--batch-size", "8", "--log-every", "1", "--eval-batches", "1", "--grads-every", "2",
            "--align-every", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master-port",
                          str(port), *args, "--out", str(tmp_path / "fsdp"), "--distributed", "fsdp"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr

    def col(run: str, name: str) -> list[float]:
        with open(tmp_path / run / "grads.csv", newline="") as f:
            return [float(r[name]) for r in csv.DictReader(f)]

    for name in ("decrease", "decrease_no_eps", "sqrt_v_rms"):
        assert col("fsdp", name) == pytest.approx(col("one", name), rel=1e-3, abs=1e-12), name
