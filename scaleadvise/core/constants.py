"""Per-layer learning-rate constants gamma_l (§4.2, C.4, Table C3).

``default``: gamma = 1 for every layer. ``paper``: Table C3 for the optimizer and
parameterization (shipped as presets/constants/paper.yaml). A YAML file may hold
either a flat ``{embedding, hidden, readout}`` mapping or the same nested
``optimizer -> parameterization -> {...}`` layout as the paper preset.
"""

from pathlib import Path

from scaleadvise.core.presets import preset_dir
from scaleadvise.errors import UserError
from scaleadvise.core.theory import LAYER_TYPES, LayerType

PRESET_DIR = preset_dir("constants")
_TABLE_ROW = {"adamw": "adam", "adam-atan2": "adam"}  # the paper tuned plain Adam only


def list_constant_sets() -> list[str]:
    return ["default", *sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))]


def load_constants(spec: str, optim: str, param: str) -> tuple[dict[LayerType, float], str]:
    """gamma per layer type and a sentence saying where it came from."""
    import yaml

    if spec == "default":
        return {t: 1.0 for t in LAYER_TYPES}, "gamma = 1 for every layer (--constants default)"
    path = PRESET_DIR / f"{spec}.yaml" if (PRESET_DIR / f"{spec}.yaml").exists() else Path(spec)
    if not path.exists():
        raise UserError(f"--constants: {spec!r} is neither a shipped set ({', '.join(list_constant_sets())}) nor a file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of embedding/hidden/readout to numbers")
    where = str(path)
    if not set(LAYER_TYPES) & set(data):
        row = _TABLE_ROW.get(optim, optim)
        if row not in data:
            raise UserError(f"{path}: no constants for optimizer {optim!r} (has: {', '.join(map(str, data))})")
        if param not in data[row]:
            raise UserError(f"{path}: no constants for {row} x {param} (has: {', '.join(map(str, data[row]))})")
        data, where = data[row][param], f"{path.name}: {row} x {param}"
        if spec == "paper":
            where = f"Table C3 ({row}, {param}), tuned at base width 1024"
    out: dict[LayerType, float] = {}
    for t in LAYER_TYPES:
        if t not in data:
            raise UserError(f"{path}: field '{t}' is missing")
        try:
            out[t] = float(data[t])
        except (TypeError, ValueError):
            raise UserError(f"{path}: field '{t}' = {data[t]!r} is not a number") from None
        if not out[t] > 0:
            raise UserError(f"{path}: field '{t}' = {out[t]:g} must be > 0")
    return out, where
