"""How fast `scaleadvise prescribe` answers, relative to importing its dependencies.

Prints the median wall time (>= 5 runs each) of

  A: scaleadvise prescribe --param stp --optim adam --width 16384 --json
  B: python -c "import typer, rich, pydantic, numpy, yaml"

and the ratio A / B. Goal: <= 1.5 (prescribe must not import torch, scipy or pandas).

    python benchmarks/cli_startup.py [--runs 9]
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    exe = shutil.which("scaleadvise")
    prescribe = ([exe] if exe else [sys.executable, "-m", "scaleadvise"]) + \
        ["prescribe", "--param", "stp", "--optim", "adam", "--width", "16384", "--json"]
    baseline = [sys.executable, "-c", "import typer, rich, pydantic, numpy, yaml"]
    median_wall(prescribe, 1), median_wall(baseline, 1)  # warm the file cache
    a = median_wall(prescribe, args.runs)
    b = median_wall(baseline, args.runs)
    leaked = subprocess.run(
        [sys.executable, "-c",
         "import sys; from scaleadvise.cli.app import main\n"
         "try: main(['prescribe','--json','--width','16384'])\n"
         "except SystemExit: pass\n"
         "print(','.join(m for m in ('torch','scipy','pandas','matplotlib') if m in sys.modules), file=sys.stderr)"],
        capture_output=True, text=True).stderr.strip()
    print(f"prescribe --json median: {a * 1000:.0f} ms over {args.runs} runs")
    print(f"import typer, rich, pydantic, numpy, yaml median: {b * 1000:.0f} ms")
    print(f"ratio: {a / b:.2f} (goal <= 1.5)")
    print(f"heavy modules imported by prescribe: {leaked or 'none'}")


if __name__ == "__main__":
    main()
