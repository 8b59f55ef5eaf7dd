"""Write a synthetic grads.csv with known exponents and plot where eps meets sqrt(v).

The gradient RMS of each tensor follows the mean-field parameterization's Table 1
exponents (embedding-type n^-1, hidden n^-1.5, readout n^-1) with 5% log-normal
noise over three logged steps, at widths 128..1024, as the emitted training
script's grads.csv would record it. Run from the repository root:
    python examples/epsilon/make_example.py
"""

import csv
import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
# tensor -> (g, grad RMS at width 1024): MFP exponents (Table 1), plausible magnitudes.
TENSORS = {
    "embed.tokens": (1.0, 2e-6),
    "blocks.0.attn_norm": (1.0, 5e-6),
    "blocks.0.attn.q": (1.5, 2e-7),
    "blocks.0.mlp.up": (1.5, 4e-7),
    "blocks.1.mlp.down": (1.5, 3e-7),
    "readout": (1.0, 1e-5),
}


def main() -> None:
    rng = random.Random(0)
    out = HERE / "grads.csv"
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["width", "layer", "step", "grad_rms", "sqrt_v_rms"])
        for width in (128, 256, 512, 1024):
            for step in (1000, 2000, 3000):
                for name, (g, at_1024) in TENSORS.items():
                    grad = at_1024 * (width / 1024) ** -g * math.exp(rng.gauss(0, 0.05))
                    w.writerow([width, name, step, f"{grad:.6e}", f"{grad * 1.05:.6e}"])
    print(f"wrote {out}")
    from scaleadvise.cli.app import main as cli

    for args in (
        ["epsilon", str(out), "--eps", "1e-8", "--param", "mfp", "--target-width", "16384",
         "--plot", str(HERE / "eps.png")],
        ["epsilon", "--param", "mfp", "--width", "16384", "--grad-rms", "hidden=3e-7@1024", "--eps", "1e-8",
         "--plot", str(HERE / "eps_single.png")],
    ):
        try:
            cli(args)
        except SystemExit as e:
            if e.code:
                raise


if __name__ == "__main__":
    main()
