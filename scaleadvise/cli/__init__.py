"""Command-line interface: a thin edge that parses, calls the core, renders.

Each command lives in its own module and registers on ``app`` when imported.
Command modules import only typer/rich at module level; numpy, pandas, scipy,
matplotlib and torch are imported inside the command that needs them, so that
``scaleadvise prescribe`` starts as fast as its dependencies allow
(benchmarks/cli_startup.py).
"""

from scaleadvise.cli.app import app, main
from scaleadvise.cli import prescribe, check, presets, fit, epsilon, align, emit_train  # noqa: F401,E402

__all__ = ["app", "main"]
