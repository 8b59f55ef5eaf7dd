"""Make a synthetic LR sweep like the paper's (Figure 4, Table I1) and fit it.

Three sweeps of Adam at widths 128..4096, three seeds each, loss steeper above the
optimum than below and NaN (diverged) 2.5 octaves above it:

  stp, global LR           lr* ∝ n^-0.95  (Table I1, fixed step: -0.95)
  stp, per-layer-full      lr* ∝ n^-0.05  (Figure 4: -0.05, transfers)
  mfp, per-layer-full      lr* ∝ n^+0.26  (Figure 4: 0.26, outside the theory)

    python examples/fit/make_sweep.py        # writes sweeps.csv and fit.png here
"""

from pathlib import Path

import numpy as np
import pandas as pd

from scaleadvise.cli import main
from scaleadvise.analysis.fit_synth import synthetic_sweep

HERE = Path(__file__).parent
WIDTHS = [128, 256, 512, 1024, 2048, 4096]
LRS = 2.0 ** np.arange(-16.0, -1.0, 0.5)
SWEEPS = [  # (param, setting, k, lr* at width 128)
    ("stp", "global", -0.95, 2.0**-6.3),
    ("stp", "per-layer-full", -0.05, 2.0**-8.6),
    ("mfp", "per-layer-full", 0.26, 2.0**-11.2),
]


def make() -> pd.DataFrame:
    parts = [
        synthetic_sweep(WIDTHS, LRS, k=k, lr0=lr0, E=2.1, A=18.0, alpha=0.45, kappa=0.04, skew=1.0,
                        diverge_octaves=2.5, noise=0.004, seeds=3, rng=i)
        .assign(param=param, optim="adam", setting=setting)
        for i, (param, setting, k, lr0) in enumerate(SWEEPS)
    ]
    df = pd.concat(parts, ignore_index=True)
    df["width"] = df["width"].astype(int)
    return df[["param", "optim", "setting", "width", "lr", "seed", "loss"]]


if __name__ == "__main__":
    csv = HERE / "sweeps.csv"
    make().to_csv(csv, index=False, float_format="%.6g")
    try:
        main(["fit", str(csv), "--target-width", "16384", "--plot", str(HERE / "fit.png")])
    except SystemExit as e:
        if e.code:
            raise
