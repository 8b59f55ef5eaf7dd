"""Coverage of `scaleadvise fit`'s 95% intervals over families of synthetic sweeps.

Each family (scaleadvise/fit_coverage.py: widths, seeds, noise, bowl shape, LR grid,
divergence) is drawn --reps times from a known law and fitted as the CLI fits it;
the table gives how often the intervals for the exponent k and for predicted_lr at
width 16384 contain the truth, and the mean errors of the estimates.

    python examples/fit/coverage.py --reps 200                 # every family
    python examples/fit/coverage.py --reps 400 --only "base;widths=2" --json out.json
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scaleadvise.analysis.fit import FitOptions  # noqa: E402
from scaleadvise.analysis.fit_coverage import FAMILIES, coverage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=FitOptions().bootstrap)
    ap.add_argument("--only", default=None, help="family names separated by semicolons")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args()
    fams = FAMILIES if args.only is None else [f for f in FAMILIES if f.name in args.only.split(";")]
    opts = replace(FitOptions(), bootstrap=args.bootstrap)
    rows = []
    print(f"{'family':28s} {'reps':>5s} {'cover k':>8s} {'cover lr':>9s} {'no CI':>6s} {'bias k':>8s} "
          f"{'bias lr':>8s} {'bias opt':>9s} {'CI k':>7s} {'CI lr':>7s} {'s':>6s}")
    for fam in fams:
        t0 = time.perf_counter()
        row = coverage(fam, args.reps, args.seed, options=opts).row()
        rows.append(row)
        print(f"{fam.name:28s} {row['reps']:5d} {row['k_coverage']:8.3f} {row['predicted_lr_coverage']:9.3f} "
              f"{row['k_missing']:6d} {row['k_bias']:+8.3f} {row['log2_predicted_lr_bias']:+8.3f} "
              f"{row['log2_optimum_bias']:+9.3f} {row['k_ci_mean_width']:7.3f} "
              f"{row['log2_predicted_lr_ci_mean_width']:7.3f} {time.perf_counter() - t0:6.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
