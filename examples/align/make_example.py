"""A toy where alpha is high and A is not: an SP MLP trained with Adam at Table 1's exponents.

The model is the paper's chain at its smallest (§3.1): an embedding (input dimension 16,
O(1)), one hidden layer n x n and a readout to 4 outputs, SP initialization (std 1, n^-1/2,
n^-1/2; Table 1) and Adam with the full-alignment LR exponents the theory derives for SP
(embedding c = 0, hidden c = 1, readout c = 1: lr_l = eta (n / 64)^-c_l). It learns a fixed
teacher y = tanh(2 T x) from fresh Gaussian inputs. The training script's alignment probe
(scaleadvise.script.template.probes.AlignmentProbe) logs, on 256 fixed probe inputs, the paper's
log alignment ratio A (Definition 3.1) and the three terms of B.11 against step 0.

What it shows: the hidden layer's Adam update is aligned with its input (alpha close to
1, and closer the wider), yet A, which measures the whole W_t = W_0 + ΔW against z_t,
stays near 1/2 because ||ΔW|| ~ n^-1 is far below ||W_0|| ~ n^-1/2 at c = 1. Reading A as
alpha (what `align` did before) gives c_hidden ≈ A: a hidden LR n^(alpha - A) too large.

    python examples/align/make_example.py            # widths 256, 1024, 4096: ~1.5 min on one core
    python examples/align/make_example.py --quick    # widths 128, 512 (the test)

Writes alignment.csv, align.png (`scaleadvise align --plot`) and results.json here.
"""

import argparse
import csv
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from scaleadvise.script.template.nanodo import Dense
from scaleadvise.script.template.probes import ALIGNMENT_COLUMNS, AlignmentProbe

HERE = Path(__file__).resolve().parent
D_IN, D_OUT, BASE_WIDTH = 16, 4, 64
SP = {"embed": 0.0, "hidden": 0.5, "readout": 0.5}  # init std n^-b (Table 1, standard)


class ToyMLP(torch.nn.Module):
    """embed (16 -> n), ReLU, hidden (n -> n), ReLU, readout (n -> 4); names give the layer types."""

    def __init__(self, width: int):
        super().__init__()
        self.embed, self.hidden, self.readout = Dense(D_IN, width), Dense(width, width), Dense(width, D_OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(F.relu(self.hidden(F.relu(self.embed(x)))))


def lr_exponents() -> dict[str, float]:
    """SP + Adam, full alignment: derived by the theory (Table 1 middle column)."""
    from scaleadvise.analysis.align import lr_exponents as solve
    from scaleadvise.core.alignment import FULL

    c = solve("stp", "adam", FULL, n_hidden=1)["c"]
    return {"embed": c["embedding"], "hidden": c["hidden"], "readout": c["readout"]}


def train(width: int, steps: int = 200, eta: float = 1e-2, every: int = 10, seed: int = 0) -> list[dict]:
    """alignment.csv rows of one run (every `every` steps, step 0 included)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(D_OUT, D_IN, generator=gen) / math.sqrt(D_IN)
    model = ToyMLP(width)
    with torch.no_grad():
        for name, b in SP.items():
            getattr(model, name).weight.normal_(0.0, width ** -b, generator=gen)
    c = lr_exponents()
    opt = torch.optim.Adam([{"params": [getattr(model, n).weight], "lr": eta * (width / BASE_WIDTH) ** -c[n]}
                            for n in c], betas=(0.9, 0.98), eps=1e-9)  # Table C2
    probe = AlignmentProbe(model, torch.randn(256, D_IN, generator=gen), lambda: torch.autocast("cpu", enabled=False))
    rows = []
    for step in range(steps + 1):
        if step % every == 0:
            rows += [{"width": width, "layer": name, "step": step, **v} for name, v in probe.measure(step).items()]
        if step == steps:
            break
        x = torch.randn(64, D_IN, generator=gen)
        loss = F.mse_loss(model(x), torch.tanh(2.0 * x @ teacher.T))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return rows


def summary(rows: list[dict]) -> dict:
    """Per width: the hidden layer's range of A and alpha after step 0, and the hidden LR
    exponent the pre-fix mapping (alpha = u = A, omega = 1/2) gave beside the measured one."""
    from scaleadvise.analysis.align import measured_alignment, lr_exponents as solve
    from scaleadvise.core.alignment import FULL

    out = {}
    for width in sorted({r["width"] for r in rows}):
        hid = [r for r in rows if r["width"] == width and r["layer"] == "hidden" and r["step"] > 0]
        a = [r["log_alignment"] for r in hid]
        alpha = [r["alpha"] for r in hid]
        old, _ = measured_alignment({"alpha": max(a), "omega": 0.5, "u": max(a)}, None, FULL)
        out[str(width)] = {"A": [min(a), max(a)], "alpha": [min(alpha), max(alpha)],
                           "omega": [min(r["omega"] for r in hid), max(r["omega"] for r in hid)],
                           "u": [min(r["u"] for r in hid), max(r["u"] for r in hid)],
                           "c_hidden_from_A_peak": solve("stp", "adam", old, n_hidden=1)["c"]["hidden"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="widths 128, 512, 100 steps (for the test)")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    torch.set_num_threads(1)
    widths, steps = ((128, 512), 100) if args.quick else ((256, 1024, 4096), 200)
    rows = [r for w in widths for r in train(w, steps)]
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "alignment.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ALIGNMENT_COLUMNS)
        w.writeheader()
        w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    from scaleadvise.cli.app import main as cli

    argv = ["align", str(args.out / "alignment.csv"), "--param", "stp", "--optim", "adam", "--n-hidden", "1"]
    try:
        cli([*argv, "--json"] if args.quick else [*argv, "--plot", str(args.out / "align.png")])
    except SystemExit as e:
        if e.code:
            raise
    result = {"widths": list(widths), "steps": steps, "hidden": summary(rows)}
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    for width, s in result["hidden"].items():
        print(f"width {width}: hidden alpha {s['alpha'][0]:.3f}-{s['alpha'][1]:.3f}, A {s['A'][0]:.3f}-{s['A'][1]:.3f}"
              f", omega {s['omega'][0]:.3f}-{s['omega'][1]:.3f}, u {s['u'][0]:.3f}-{s['u'][1]:.3f}; "
              f"reading A as alpha gave c_hidden = {s['c_hidden_from_A_peak']:.3g}")


if __name__ == "__main__":
    main()
