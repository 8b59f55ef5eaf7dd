"""Where the shipped presets live: the top-level ``presets/`` folder, installed as the
package ``scaleadvise.presets`` (see pyproject.toml). Found through the import system, so
a source checkout, an editable install and a wheel all resolve the same way."""

from functools import cache
from importlib.util import find_spec
from pathlib import Path


@cache
def preset_dir(kind: str) -> Path:
    """``preset_dir("models")`` or ``preset_dir("constants")``."""
    spec = find_spec("scaleadvise.presets")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a broken install
        raise RuntimeError("scaleadvise.presets is not installed: reinstall with `pip install -e .`")
    return Path(list(spec.submodule_search_locations)[0]) / kind
