"""Reading the YAML files users hand us (models, constants, custom parameterizations):
every way a path can be wrong becomes one line naming the flag, the file and the problem."""

from pathlib import Path
from typing import Any

from scaleadvise.errors import UserError


def read_yaml(path: str | Path, flag: str) -> Any:
    """The parsed document at ``path``; UserError for a missing, directory, unreadable,
    non-UTF-8 or invalid file."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise UserError(f"{flag} {p}: no such file")
    if p.is_dir():
        raise UserError(f"{flag} {p}: is a directory, not a YAML file")
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{flag} {p}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{flag} {p}: not a text file (not UTF-8)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{flag} {p}: not valid YAML: {' '.join(str(e).split())}") from None
