"""Write a synthetic alignment.csv shaped like the paper's Figure 2 and plot it.

Hidden (MLP, attention) layers start at A = 0.5 (random init, §4.1), rise to a
moderate 0.6-0.75 and relax; the readout rises fast to a high early peak (> 0.9,
as muP/MFP do in Fig. 2) and decays to a moderate level as updates accumulate.
Run from the repository root:  python examples/align/make_example.py
"""

import csv
import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = sorted({int(round(10 ** (k / 8))) for k in range(0, 33)})  # 1 .. 10,000, log-spaced


def bump(step: float, peak: float, at: float, width: float) -> float:
    """0.5 + (peak - 0.5) * a log-normal bump in step: rises, peaks at `at`, relaxes."""
    z = (math.log10(step) - math.log10(at)) / width
    return 0.5 + (peak - 0.5) * math.exp(-0.5 * z * z)


def main() -> None:
    rng = random.Random(0)
    rows = []
    for width in (1024, 2048):
        for block in range(4):
            for role, peak, at in (("mlp.up", 0.74, 800), ("mlp.down", 0.68, 1500), ("attn.q", 0.62, 400),
                                   ("attn.o", 0.66, 1200)):
                p = peak - 0.02 * block
                for s in STEPS:
                    a = bump(s, p, at, 1.1) + 0.05 * (1 - math.exp(-s / 3000)) + rng.gauss(0, 0.006)
                    rows.append((width, f"blocks.{block}.{role}", s, round(a, 5)))
        for s in STEPS:
            a = bump(s, 0.95, 60, 0.6) + 0.22 * (1 - math.exp(-s / 400)) * (s > 60) + rng.gauss(0, 0.006)
            rows.append((width, "readout", s, round(min(a, 0.99), 5)))
    out = HERE / "alignment.csv"
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["width", "layer", "step", "log_alignment"])
        w.writerows(rows)
    print(f"wrote {out} ({len(rows)} rows)")
    from scaleadvise.cli.app import main as cli

    try:
        cli(["align", str(out), "--param", "mup", "--optim", "adam", "--plot", str(HERE / "align.png")])
    except SystemExit as e:
        if e.code:
            raise


if __name__ == "__main__":
    main()
