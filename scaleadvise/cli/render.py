"""Shared rendering helpers: JSON/YAML output and the rich console.

``--json`` output is exactly one JSON document on stdout and nothing else, so
scripts can pipe it; human output goes through rich.
"""

import json
import math
import sys
from typing import Any


def __getattr__(name: str) -> Any:
    """``console`` and ``err_console``, made on first use (PEP 562): importing
    rich.console is ~8% of `scaleadvise prescribe --json`, which never prints with it.
    ``from scaleadvise.cli.render import console`` still works and makes them."""
    if name not in ("console", "err_console"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    # Piped output (files, CI logs, `less`) gets a wide fixed width instead of rich's 80
    # columns, so tables of per-tensor values are not truncated.
    globals()["console"] = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    globals()["err_console"] = Console(stderr=True, highlight=False)
    return globals()[name]


def _clean(obj: Any) -> Any:
    """Make an object JSON-safe: numpy scalars to Python, non-finite floats to null."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "model_dump"):
        return _clean(obj.model_dump())
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _clean(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(_clean(obj), indent=2) + "\n")


def print_yaml(obj: Any) -> None:
    import yaml

    sys.stdout.write(yaml.safe_dump(_clean(obj), sort_keys=False))
