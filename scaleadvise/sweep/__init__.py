"""Sweeps of widths x depths x learning rates x seeds on Ray (`scaleadvise sweep`).

grid.py     the axes, parsed from the flags (the log2 LR lattice)
plan.py     a folder per run, skip / resume / fresh from what it holds, the sweep's identity
results.py  finished runs -> sweeps.csv (the table `scaleadvise fit` reads), written atomically
task.py     one run: a process of the training script (stdlib only; shipped to Ray workers)
runner.py   the scheduling loop: outcomes, interruption, the summary
ray_engine.py  the Ray edge: a local runtime or a cluster, one task per run

Only ray_engine imports Ray, and only when a run must start.
"""
