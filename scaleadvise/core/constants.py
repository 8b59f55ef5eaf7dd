"""Per-layer learning-rate constants gamma_l (§4.2.1, C.4, Table C3).

    lr_l = base_lr · gamma_l · (n / b)^-c_l

``default``: gamma = 1 for every layer. ``paper``: Table C3 for the optimizer and
parameterization (presets/constants/paper.yaml). A YAML file holds either a flat
``{embedding, hidden, readout}`` mapping or the paper preset's nested
``optimizer -> parameterization -> {...}`` layout, and may say at which base width its
constants were tuned (``base_width:``; Table C3's is 1024, C.4).

A constant set is tied to the base width it was tuned at. At another base width b the
same learning rates need gamma_l · (b / b0)^-c_l, since
base_lr · gamma_l · (n / b0)^-c_l = base_lr · [gamma_l · (b / b0)^-c_l] · (n / b)^-c_l:
otherwise the per-layer LR ratios at a given width would depend on the user's base width.
``convert`` does this; prescribe applies it with the prescription's own c_l and says so.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from scaleadvise.core.classify import LAYER_TYPES, LayerType
from scaleadvise.core.files import layer_numbers, read_yaml
from scaleadvise.core.presets import preset_dir
from scaleadvise.errors import UserError

PRESET_DIR = preset_dir("constants")
_TABLE_ROW = {"adamw": "adam", "adam-atan2": "adam"}  # the paper tuned plain Adam only
FIELD = "constants"  # the field (flag --constants) every error here names


@dataclass(frozen=True)
class ConstantSet:
    gamma: dict[LayerType, float]
    source: str  # a sentence: where the numbers came from
    base_width: int | None = None  # the base width they were tuned at; None: any (all 1)


def list_constant_sets() -> list[str]:
    return ["default", *sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))]


def _base_width(data: dict, path: Path) -> int | None:
    value = data.get("base_width")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"{path}: field 'base_width' = {value!r} must be a positive integer", FIELD)
    return value


def load_constants(spec: str, optim: str, param: str) -> ConstantSet:
    """gamma per layer type, where it came from, and the base width it was tuned at."""
    if spec == "default":
        return ConstantSet({t: 1.0 for t in LAYER_TYPES}, "gamma = 1 for every layer (--constants default)")
    path = PRESET_DIR / f"{spec}.yaml" if (PRESET_DIR / f"{spec}.yaml").exists() else Path(spec)
    if not path.exists():
        if path.suffix in (".yaml", ".yml"):
            raise UserError(f"{path}: no such file", FIELD)
        raise UserError(f"{spec!r} is neither a shipped set ({', '.join(list_constant_sets())}) nor a file", FIELD)
    data = read_yaml(path, FIELD)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of embedding/hidden/readout to numbers", FIELD)
    base_width = _base_width(data, path)
    where = str(path)
    if not set(LAYER_TYPES) & set(data):
        row = _TABLE_ROW.get(optim, optim)
        if row not in data:
            raise UserError(f"{path}: no constants for optimizer {optim!r} "
                            f"(has: {', '.join(k for k in map(str, data) if k != 'base_width')})", FIELD)
        if not isinstance(data[row], dict) or param not in data[row]:
            has = ", ".join(map(str, data[row])) if isinstance(data[row], dict) else "nothing"
            raise UserError(f"{path}: no constants for {row} x {param} (has: {has})", FIELD)
        data, where = data[row][param], f"{path.name}: {row} x {param}"
        if spec == "paper":
            where = f"Table C3 ({row}, {param})"
        if not isinstance(data, dict):
            raise UserError(f"{path}: field '{row}.{param}' must map embedding/hidden/readout to numbers", FIELD)
    out = layer_numbers(data, path, "", FIELD, positive=True)
    return ConstantSet(out, where, base_width)


def convert(constants: ConstantSet, c: Mapping[str, float], base_width: int) -> ConstantSet:
    """The same learning rates at another base width: gamma_l · (b / b0)^-c_l (module doc)."""
    b0 = constants.base_width
    if b0 is None or b0 == base_width:
        note = "" if b0 is None else f", tuned at base width {b0}"
        return ConstantSet(dict(constants.gamma), constants.source + note, b0)
    ratio = base_width / b0
    gamma = {t: constants.gamma[t] * ratio ** -c[t] for t in LAYER_TYPES}
    return ConstantSet(gamma, f"{constants.source}, tuned at base width {b0}, converted to base width "
                              f"{base_width}: gamma_l x ({base_width}/{b0})^-c_l", base_width)
