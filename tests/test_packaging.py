"""The wheel ships every package and the presets (pyproject.toml lists packages by hand)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _listed() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def test_every_package_is_listed():
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "scaleadvise").rglob("__init__.py")}
    missing = found - _listed()
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_presets_resolve_through_the_import_system():
    from scaleadvise.core.constants import list_constant_sets
    from scaleadvise.core.model import list_presets
    from scaleadvise.core.presets import preset_dir

    # an editable install (the tests' setup) resolves to the top-level folder itself
    assert preset_dir("models").resolve() == (ROOT / "presets" / "models").resolve()
    assert {"nanodo", "gpt2", "llama", "mlp"} <= set(list_presets())
    assert "paper" in list_constant_sets()
