"""How fast `scaleadvise prescribe` answers, relative to importing its dependencies.

Prints the median wall time (--runs runs each, default 15) of

  A: scaleadvise prescribe --param stp --optim adam --width 16384 --json
  B: python -c "import typer, rich, pydantic, numpy, yaml"

and the ratio A / B. Goal: <= 1.5 (prescribe must not import torch, scipy or pandas).

A and B run alternately, so a busy shared machine slows both alike; the median
CPU time (user + sys) of each is printed too, since it moves much less with the
machine's load than wall time does.

Two bytecode settings are measured. "as is": the current environment; when it sets
PYTHONDONTWRITEBYTECODE (this development sandbox does) an editable install
recompiles every scaleadvise module on every run, while the site-packages that B
imports have their bytecode from pip. "bytecode cached": both commands run with a
temporary PYTHONPYCACHEPREFIX, as for a normal install (pip compiles at install).

    python benchmarks/cli_startup.py [--runs 15] [--mode both|as-is|cached]
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(a: list[str], b: list[str], runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Wall and CPU times of a and b, interleaved, after one warm-up run each (file and bytecode caches)."""
    run_once(a, env), run_once(b, env)
    out: dict[str, list[float]] = {"wall_a": [], "cpu_a": [], "wall_b": [], "cpu_b": []}
    for _ in range(runs):
        for key, cmd in (("a", a), ("b", b)):
            wall, cpu = run_once(cmd, env)
            out[f"wall_{key}"].append(wall)
            out[f"cpu_{key}"].append(cpu)
    return out


def report(label: str, t: dict[str, list[float]], runs: int) -> None:
    med = {k: statistics.median(v) for k, v in t.items()}
    print(f"[{label}]")
    print(f"  prescribe --json median: {med['wall_a'] * 1000:.0f} ms over {runs} runs "
          f"(CPU {med['cpu_a'] * 1000:.0f} ms)")
    print(f"  import typer, rich, pydantic, numpy, yaml median: {med['wall_b'] * 1000:.0f} ms "
          f"(CPU {med['cpu_b'] * 1000:.0f} ms)")
    print(f"  ratio: {med['wall_a'] / med['wall_b']:.2f} (goal <= 1.5); CPU-time ratio "
          f"{med['cpu_a'] / med['cpu_b']:.2f}; ratio of fastest runs {min(t['wall_a']) / min(t['wall_b']):.2f}")


def leaked_modules() -> str:
    code = ("import sys; from scaleadvise.cli.app import main\n"
            "try: main(['prescribe','--json','--width','16384'])\n"
            "except SystemExit: pass\n"
            "print(','.join(m for m in ('torch','scipy','pandas','matplotlib') if m in sys.modules), file=sys.stderr)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--mode", choices=("both", "as-is", "cached"), default="both")
    args = ap.parse_args()
    exe = shutil.which("scaleadvise")
    prescribe = ([exe] if exe else [sys.executable, "-m", "scaleadvise"]) + \
        ["prescribe", "--param", "stp", "--optim", "adam", "--width", "16384", "--json"]
    baseline = [sys.executable, "-c", "import typer, rich, pydantic, numpy, yaml"]
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.mode in ("both", "as-is"):
        report("as is" + (", PYTHONDONTWRITEBYTECODE set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""),
               measure(prescribe, baseline, args.runs, dict(os.environ)), args.runs)
    if args.mode in ("both", "cached"):
        with tempfile.TemporaryDirectory() as cache:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = cache
            report("bytecode cached", measure(prescribe, baseline, args.runs, env), args.runs)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"heavy modules imported by prescribe: {leaked_modules() or 'none'}")


if __name__ == "__main__":
    main()
