"""`scaleadvise fit` (being written)."""

from scaleadvise.cli.app import app  # noqa: F401
