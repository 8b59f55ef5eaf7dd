"""`scaleadvise align` (being written)."""

from scaleadvise.cli.app import app  # noqa: F401
