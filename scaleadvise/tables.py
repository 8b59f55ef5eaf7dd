"""Reading the tables the analysis commands consume (sweeps, gradients, alignment).

One loader for CSV, TSV, JSONL (and Parquet when pyarrow is installed) that
maps common column aliases to the canonical names of DESIGN.md, checks that
numeric columns are numeric, and reports bad input as a UserError naming the
file, the line and the column. pandas is imported lazily: ``prescribe`` never
pays for it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scaleadvise.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


@dataclass(frozen=True)
class Column:
    """A canonical column, the aliases it may appear under, and its kind."""

    name: str
    aliases: tuple[str, ...] = ()
    numeric: bool = True
    required: bool = True
    positive: bool = False  # every non-missing value must be > 0
    allow_nonfinite: bool = False  # NaN/inf are data (diverged runs), not errors

    @property
    def candidates(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass
class Table:
    """A loaded table: canonical columns plus whatever else the file had."""

    path: str
    frame: "pd.DataFrame"
    extra_columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame)


_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "csv", ".jsonl": "jsonl",
            ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def _read_raw(path: Path) -> "pd.DataFrame":
    import pandas as pd

    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv, .jsonl or .parquet")
    try:
        if fmt == "csv":
            return pd.read_csv(path, engine="c", skipinitialspace=True)
        if fmt == "tsv":
            return pd.read_csv(path, sep="\t", engine="c")
        if fmt == "jsonl":
            return pd.read_json(path, lines=True)
        try:
            return pd.read_parquet(path)
        except ImportError as e:
            raise UserError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from e
    except UserError:
        raise
    except pd.errors.EmptyDataError as e:
        raise UserError(f"{path}: the file is empty") from e
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot parse as {fmt}: {' '.join(str(e).split())}") from e


def _line(fmt_is_text: bool, index: int) -> str:
    # Line numbers as an editor shows them: the header is line 1 in CSV/TSV.
    return f"line {index + 2}" if fmt_is_text else f"record {index + 1}"


def read_table(
    path: str | Path,
    columns: Sequence[Column],
    overrides: Mapping[str, str | None] | None = None,
) -> Table:
    """Load ``path`` and return its canonical columns, validated.

    ``overrides`` maps a canonical name to the column the user says holds it
    (``--lr-col learning_rate``). Column matching is case-insensitive.
    """
    import numpy as np
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file")
    if p.is_dir():
        raise UserError(f"{p}: is a directory, expected a table file")
    raw = _read_raw(p)
    if raw.shape[1] == 0 or len(raw) == 0:
        raise UserError(f"{p}: the table has no rows")
    text_format = p.suffix.lower() not in (".jsonl", ".ndjson", ".json", ".parquet", ".pq")
    lower = {str(c).strip().lower(): c for c in raw.columns}
    found = [str(c) for c in raw.columns]
    rename: dict[str, str] = {}
    overrides = dict(overrides or {})
    for col in columns:
        chosen = overrides.get(col.name)
        if chosen:
            if chosen.strip().lower() not in lower:
                raise UserError(f"{p}: column {chosen!r} (given for {col.name}) not found; columns are {found}")
            rename[lower[chosen.strip().lower()]] = col.name
            continue
        hit = next((lower[c.lower()] for c in col.candidates if c.lower() in lower), None)
        if hit is None:
            if col.required:
                raise UserError(
                    f"{p}: missing column {col.name!r} (tried {list(col.candidates)}); "
                    f"columns found: {found}; name it with --{col.name.replace('_', '-')}-col"
                )
            continue
        rename[hit] = col.name
    frame = raw.rename(columns=rename)
    for col in columns:
        if col.name not in frame.columns or not col.numeric:
            continue
        values = pd.to_numeric(frame[col.name], errors="coerce")
        bad = values.isna() & ~_is_nan_token(frame[col.name])
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(
                f"{p}: {_line(text_format, i)}, column {col.name!r}: "
                f"{frame[col.name].iloc[i]!r} is not a number"
            )
        arr = values.to_numpy(dtype=float)
        if not col.allow_nonfinite:
            nonfinite = ~np.isfinite(arr)
            if nonfinite.any():
                i = int(np.flatnonzero(nonfinite)[0])
                raise UserError(f"{p}: {_line(text_format, i)}, column {col.name!r}: {arr[i]} is not finite")
        if col.positive:
            nonpos = np.isfinite(arr) & (arr <= 0)
            if nonpos.any():
                i = int(np.flatnonzero(nonpos)[0])
                raise UserError(f"{p}: {_line(text_format, i)}, column {col.name!r}: {arr[i]:g} must be > 0")
        frame[col.name] = arr
    canonical = {c.name for c in columns}
    extra = [c for c in frame.columns if c not in canonical]
    return Table(path=str(p), frame=frame, extra_columns=[str(c) for c in extra])


def _is_nan_token(series: "pd.Series") -> "pd.Series":
    """True where a cell is missing or spells a non-finite number (nan, inf)."""
    if series.dtype.kind in "fiub":
        return series.isna()
    text = series.astype(str).str.strip().str.lower()
    return series.isna() | text.isin({"nan", "inf", "-inf", "+inf", "infinity", "-infinity", ""})
