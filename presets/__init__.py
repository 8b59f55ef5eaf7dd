"""Model descriptions (``models/*.yaml``) and per-layer LR constant sets (``constants/*.yaml``).

This folder sits at the top of the repository so that people find the data next to the
code; ``pyproject.toml`` ships it inside the wheel as the package ``scaleadvise.presets``
(``package-dir``), so ``importlib.resources.files("scaleadvise.presets")`` finds it in a
source checkout, an editable install and a regular install alike.
"""
