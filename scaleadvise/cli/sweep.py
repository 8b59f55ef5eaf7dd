"""`scaleadvise sweep`: a width x depth x LR x seed sweep of a training script, on Ray.

The work is in ``scaleadvise.sweep`` (imported inside the command; Ray only when a run
must start); this module parses flags, draws the progress bar and renders the summary.
"""

import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from scaleadvise.cli.app import app
from scaleadvise.cli.render import console, err_console, print_json

EPILOG = """\b
Examples:
  scaleadvise emit-train --param mup --optim adam --width 256 -o train.py
  scaleadvise sweep train.py --widths 64,128,256 --lrs 2^-10:2^-6:0.5 --seeds 0,1 --steps 300 --out runs/sweep
  scaleadvise fit runs/sweep/sweeps.csv
\b
  scaleadvise sweep train.py --widths 256 --depths 2,4,8 --lrs 2^-10:2^-6:1 --out runs/depth   # fit --scale-by depth
  scaleadvise sweep train.py --widths 128,256 --lrs 1e-3,3e-3 --dry-run                      # the plan, nothing run
  scaleadvise sweep train.py --widths 512,1024 --lrs 2^-12:2^-8:0.5 --gpus-per-run 1 --address auto -- --data tokens.bin
\b
Each run is one process of SCRIPT (a script of `scaleadvise emit-train`, or any script with
the same one-run contract) in OUT/w{W}_d{D}_lr{LR}_s{S}/ (_d{D} when --depths is given),
with its log in run.log there. Rerun the same command after an interruption (Ctrl-C
checkpoints running runs): finished runs are skipped, stopped runs resume from their
checkpoints. Diverged runs are kept (loss NaN); OUT/sweeps.csv holds every finished run.
\b
Ray: by default a local Ray runtime is started for the sweep and stopped after it
(pip install 'scaleadvise\\[sweep]'). With --address the runs go to a Ray cluster: SCRIPT,
--out and the script's data must then be at the same path on every node (a shared
filesystem), and the nodes need Python with torch (not scaleadvise).
\b
Exit status: 0 all runs finished (done or diverged), 1 some runs failed (listed, with
their logs), 2 bad input (including a run that refused its input: it would fail for
every run), 130/143 interrupted by SIGINT/SIGTERM.
"""

_SHOW = {"done": "default", "diverged": "yellow", "failed": "red"}  # the outcomes that get a line, and their colour


class _Bar:
    """On a terminal: a rich progress bar on stderr (runs finished / to run, elapsed, ETA)
    and a line per diverged or failed run. In a log (stderr not a terminal, where no bar
    is drawn): a line per finished run with its count. Stopped and refused runs get no
    line: the sweep's final line speaks for them."""

    def __init__(self, terminal: bool):
        self.terminal = terminal
        self.progress = self.task = self.status = None
        self.total = self.count = 0

    def starting(self) -> None:
        if self.terminal:  # Ray takes seconds to start: say so
            self.status = err_console.status("starting Ray", spinner="dots")
            self.status.start()

    def begin(self, total: int, skipped: int) -> None:
        self._stop_status()
        self.total = total
        if not self.terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        self.progress = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.description}"), console=err_console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task(f"({skipped} already finished)" if skipped else "", total=total)

    def finished(self, name: str, kind: str, row: dict | None, seconds: float, detail: str) -> None:
        if kind not in _SHOW:
            return
        self.count += 1
        if self.progress is not None:
            self.progress.advance(self.task)
            if kind == "done":
                return
        what = f"loss {row['loss']:.4g}" if kind == "done" and row else "loss NaN" if kind == "diverged" else detail
        count = "" if self.terminal else f"  [{self.count}/{self.total}]"
        self._print(f"  [{_SHOW[kind]}]{kind:>8s}[/]  {name}  {what}  ({seconds:.0f} s){count}")

    def stopping(self, signum: int) -> None:
        if self.terminal:
            self._print(f"  {signal.Signals(signum).name}: stopping; running runs save their checkpoints "
                        "(send it again to kill them)")

    def _print(self, text: str) -> None:
        (self.progress.console if self.progress is not None else err_console).print(text, highlight=False,
                                                                                      soft_wrap=True)

    def _stop_status(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def end(self) -> None:
        self._stop_status()
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


@app.command("sweep", epilog=EPILOG)
def sweep_command(
    script: Annotated[Path, typer.Argument(help="Training script: one run per process (scaleadvise emit-train "
                                           "-o train.py).", show_default=False,
                                           metavar="SCRIPT")],
    script_args: Annotated[Optional[list[str]], typer.Argument(
        help="After --: further arguments for every run (e.g. -- --data tokens.bin --batch-size 64).",
        show_default=False, metavar="SCRIPT_ARGS")] = None,
    widths: Annotated[str, typer.Option("--widths", help="Widths, comma-separated: 64,128,256 (2^k accepted).",
                                        show_default=False)] = ...,
    lrs: Annotated[str, typer.Option("--lrs", help="Base LRs: START:STOP:STEP on a log2 lattice (2^-10:2^-6:0.5 = "
                                     "2^-10, 2^-9.5, ..., 2^-6; STEP in octaves) or a list (1e-3,3e-3).",
                                     show_default=False)] = ...,
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds, comma-separated.")] = "0",
    depths: Annotated[Optional[str], typer.Option("--depths", help="Depths, comma-separated (the script's --depth); "
                                                  "default: the script's own, not swept.", show_default=False)] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Training steps of every run (default: "
                                                 "the script's).", show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Sweep folder: a folder per run, sweep.json, sweeps.csv.")]
    = Path("runs/sweep"),
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster: auto (started with `ray start` "
                                                   "here), HOST:PORT or ray://HOST:PORT. Default: a local runtime.",
                                                   show_default=False)] = None,
    gpus_per_run: Annotated[float, typer.Option("--gpus-per-run", help="GPUs per run (fractions share a GPU); "
                                                "0 trains on CPU.")] = 0.0,
    cpus_per_run: Annotated[float, typer.Option("--cpus-per-run", help="CPUs Ray reserves per run.")] = 1.0,
    max_parallel: Annotated[Optional[int], typer.Option("--max-parallel", help="At most this many runs at once "
                                                        "(default: as many as the resources allow).",
                                                        show_default=False)] = None,
    threads_per_run: Annotated[Optional[int], typer.Option("--threads-per-run", help="torch threads per run "
                                                           "(the script's --threads; default: --cpus-per-run).",
                                                           show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (skip / resume / fresh per run, the "
                                          "commands) and start nothing.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary document.")] = False,
) -> None:
    """Sweep widths x depths x learning rates x seeds: one process of SCRIPT per run, on Ray; write sweeps.csv for fit.

    A rerun of the same command skips finished runs and resumes interrupted ones; a
    rerun with a larger grid adds the new runs. A sweep folder refuses runs of another
    script, --steps or script arguments (their results would mix with its runs).
    """
    from scaleadvise.sweep.grid import parse_grid
    from scaleadvise.sweep.runner import SweepConfig, run_sweep

    try:
        cfg = SweepConfig(script=script, grid=parse_grid(widths, lrs, seeds, depths), out=out, steps=steps,
                          script_args=list(script_args or []), address=address, cpus_per_run=cpus_per_run,
                          gpus_per_run=gpus_per_run, max_parallel=max_parallel, threads_per_run=threads_per_run,
                          dry_run=dry_run)
        bar = _Bar(terminal=err_console.is_terminal)
        summary = run_sweep(cfg, reporter=bar)
    except KeyboardInterrupt:  # before the sweep's own handler was in place
        sys.stderr.write("scaleadvise: sweep interrupted before any run started\n")
        raise SystemExit(130)  # not typer.Exit: the app would add its own "interrupted" line
    doc = summary.to_dict()
    if json_out:
        print_json(doc)
    if summary.interrupted is not None:
        sys.stderr.write(f"scaleadvise: sweep interrupted ({doc['signal']}): {summary.done + summary.diverged} runs "
                         f"finished, {summary.stopped} stopped at their checkpoints; rerun the same command to "
                         "resume\n")
        raise SystemExit(summary.exit_code)  # this line is the one the user sees (not the app's own)
    if summary.engine_error is not None:
        sys.stderr.write(f"scaleadvise: error: Ray failed under the sweep ({summary.engine_error}); "
                         f"{summary.done + summary.diverged} runs finished; rerun the same command to resume\n")
        raise typer.Exit(summary.exit_code)
    if not json_out:
        _render(summary, doc)
    raise typer.Exit(summary.exit_code)


def _render(summary, doc: dict) -> None:
    runs = doc["runs"]
    if summary.dry_run:
        console.print(f"plan for {summary.out}: {runs['planned']} runs: {runs['fresh']} to start, "
                      f"{runs['resumed']} to resume, {runs['skipped']} finished", highlight=False)
        for p in summary.plan:
            console.print(f"  {p['action']:6s}  {p['run']}", highlight=False)
        if summary.plan:
            import shlex

            console.print(f"first command: python {shlex.join(summary.plan[0]['args'])}", highlight=False,
                          soft_wrap=True)
        return
    console.print(f"sweep {summary.out}: {runs['planned']} runs: {runs['done']} done, {runs['diverged']} diverged, "
                  f"{runs['failed']} failed, {runs['skipped']} already finished ({runs['resumed']} resumed) "
                  f"in {summary.seconds:.0f} s", highlight=False, soft_wrap=True)
    for f in summary.failures:
        console.print(f"  [red]failed[/red] {f['run']}: {f['error']} (log: {f['log']})", highlight=False,
                      soft_wrap=True)
    if summary.sweeps_csv is not None:
        console.print(f"sweeps.csv: {summary.sweeps_csv} ({summary.rows} runs)  ->  scaleadvise fit "
                      f"{summary.sweeps_csv}", highlight=False, soft_wrap=True)
