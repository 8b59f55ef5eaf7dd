"""Command-line interface: a thin edge that parses, calls the core, renders.

Each command lives in its own module and registers on ``app`` when imported;
``app.COMMANDS`` names the module of every command, and ``app.LazyGroup``
imports a command's module only when that command runs (or for ``--help``).
Command modules import only typer/rich at module level; numpy, pandas, scipy,
matplotlib and torch are imported inside the command that needs them, so that
``scaleadvise prescribe`` starts as fast as its dependencies allow
(benchmarks/cli_startup.py).
"""

from scaleadvise.cli.app import app, main

__all__ = ["app", "main"]
