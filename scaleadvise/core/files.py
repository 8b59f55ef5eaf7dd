"""The files users name: the YAML they hand us (models, constants, custom parameterizations)
and the outputs they ask for (equiv's constants and prescription, every plot).

Every way a path can be wrong becomes one UserError naming the field (the flag, on the
command line), the file and the problem. Outputs are checked before any work is done and
written atomically: a temp file beside the target, renamed over it only when complete, so
a failure or an interrupt (SIGINT, SIGTERM as KeyboardInterrupt/SystemExit) never leaves a
half-written file or a temp file behind. They get the mode a plain ``open(path, "w")``
would give, 0666 less the user's umask (mkstemp alone gives 0600).
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
import math
from pathlib import Path
from typing import Any

from scaleadvise.errors import UserError


def read_yaml(path: str | Path, field: str) -> Any:
    """The parsed document at ``path``; UserError for a missing, directory, unreadable,
    non-UTF-8 or invalid file."""
    import yaml

    p = Path(path)
    try:
        if not p.exists():
            raise UserError(f"{p}: no such file", field)
        if p.is_dir():
            raise UserError(f"{p}: is a directory, not a YAML file", field)
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{p}: cannot read it ({e.strerror})", field) from None
    except UnicodeDecodeError:
        raise UserError(f"{p}: not a text file (not UTF-8)", field) from None
    if "\x00" in text:
        raise UserError(f"{p}: not a text file (it holds NUL bytes)", field)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML: {' '.join(str(e).split())}", field) from None
    if data is None:
        raise UserError(f"{p}: the file is empty", field)
    return data


def check_output_path(path: str | Path, field: str) -> Path:
    """Fail now, before any work, when ``path`` cannot be written as a file.

    Writability is tried (a probe file created and removed), not guessed from permission
    bits: root ignores those, but not a read-only file system.
    """
    p = Path(path)
    if str(path).strip() == "":
        raise UserError("an empty path is not a file name", field)
    parent = p.absolute().parent
    try:
        if p.is_dir():
            raise UserError(f"{p}: is a directory, expected a file name", field)
        if not parent.exists():
            raise UserError(f"{p}: directory {parent} does not exist", field)
        if not parent.is_dir():
            raise UserError(f"{p}: {parent} is not a directory", field)
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{p.name}.", suffix=".probe")
    except OSError as e:  # a directory on the way that may not be searched, a read-only file system, ...
        raise UserError(f"{p}: cannot write in {parent} ({e.strerror})", field) from None
    os.close(fd)
    os.unlink(probe)
    return p


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | Path, field: str) -> Iterator[str]:
    """Yield a temp file name beside ``path``; on success it becomes ``path`` (mode 0666 &
    ~umask), on any failure or interrupt it is removed and ``path`` is left as it was."""
    p = Path(path)
    parent = p.absolute().parent
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"{p}: cannot write in {parent} ({e.strerror})", field) from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except OSError as e:  # disk full, the target became a directory, ...
        raise UserError(f"{p}: cannot write it ({e.strerror or e})", field) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | Path, text: str, field: str) -> None:
    """Write ``text`` to ``path`` atomically (``atomic_output``)."""
    with atomic_output(path, field) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def layer_numbers(block: Any, path: Path | str, prefix: str, field: str, positive: bool = False) -> dict[str, float]:
    """``{embedding, hidden, readout}`` -> finite numbers (> 0 with ``positive``) from a YAML
    mapping; the error names the file and the field (``prefix`` + layer type)."""
    from scaleadvise.core.classify import LAYER_TYPES

    if not isinstance(block, dict):
        raise UserError(f"{path}: field '{prefix or '(top level)'}' must map embedding/hidden/readout to numbers",
                        field)
    out: dict[str, float] = {}
    for t in LAYER_TYPES:
        name = f"{prefix}.{t}" if prefix else t
        if t not in block:
            raise UserError(f"{path}: field '{name}' is missing", field)
        value = block[t]
        try:
            if isinstance(value, bool):  # YAML's yes/no/true: not a number
                raise TypeError
            out[t] = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{path}: field '{name}' = {value!r} is not a number", field) from None
        if not math.isfinite(out[t]) or (positive and not out[t] > 0):
            need = "a positive finite number" if positive else "a finite number"
            raise UserError(f"{path}: field '{name}' = {value!r} must be {need}", field)
    return out
