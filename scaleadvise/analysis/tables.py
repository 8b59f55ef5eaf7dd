"""Reading the tables the analysis commands consume (sweeps, gradients, alignment).

One loader for CSV, TSV, JSONL (and Parquet when pyarrow is installed) that
maps common column aliases to the canonical names of docs/CONTRACTS.md, checks that
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
    mapping: dict[str, str] = field(default_factory=dict)  # canonical name -> column as found in the file

    def __len__(self) -> int:
        return len(self.frame)

    def where(self, index: int) -> str:
        """Row ``index`` (0-based) as a person finds it in the file: 'line 7' (CSV/TSV, header
        on line 1), 'record 6' (JSON lines), 'row 6' (Parquet)."""
        return _line(_format(Path(self.path)), index)


_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "csv", ".jsonl": "jsonl",
            ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


_COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")


def _format(path: Path) -> str:
    """The table format from the suffix, looking through a compression suffix (sweeps.csv.gz)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise UserError(f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv, .jsonl or .parquet")
    return fmt


def _json_is_array(path: Path) -> bool:
    """A .json file holding one array of records rather than one record per line."""
    if path.suffix.lower() != ".json":
        return False
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"[")


def _read_raw(path: Path) -> "pd.DataFrame":
    import lzma  # these four: already imported by pandas, named here for the except clause
    import zipfile
    import zlib

    import pandas as pd

    fmt = _format(path)
    try:
        if fmt == "csv":
            # No skipinitialspace: the C parser already skips blanks before numbers, and it
            # costs ~20% of the read; text cells are stripped where they matter (grouping).
            return pd.read_csv(path, engine="c")
        if fmt == "tsv":
            return pd.read_csv(path, sep="\t", engine="c")
        if fmt == "jsonl":
            return pd.read_json(path, lines=not _json_is_array(path))
        try:
            return pd.read_parquet(path)
        except ImportError as e:
            raise UserError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from e
    except UserError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError, zlib.error) as e:
        # unreadable, or not the compression its suffix says (gzip's BadGzipFile is an OSError)
        raise UserError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e})") from e
    except ImportError as e:  # .zst without the zstandard package
        raise UserError(f"{path}: {' '.join(str(e).split())}") from e
    except pd.errors.EmptyDataError as e:
        raise UserError(f"{path}: the file is empty") from e
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot parse as {fmt}: {' '.join(str(e).split())}") from e


def _line(fmt: str, index: int) -> str:
    # Line numbers as an editor shows them: the header is line 1 in CSV/TSV.
    if fmt in ("csv", "tsv"):
        return f"line {index + 2}"
    return f"row {index + 1}" if fmt == "parquet" else f"record {index + 1}"


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
    fmt = _format(p)
    lower = {str(c).strip().lower(): c for c in raw.columns}
    found = [str(c) for c in raw.columns]
    rename: dict[str, str] = {}
    overrides = dict(overrides or {})
    for col in columns:
        chosen = overrides.get(col.name)
        if chosen:
            if chosen.strip().lower() not in lower:
                raise UserError(f"{p}: column {chosen!r} (given for {col.name}) not found; columns are {found}")
            hit = lower[chosen.strip().lower()]
            if hit in rename:
                raise UserError(f"{p}: column {hit!r} is given for both {rename[hit]} and {col.name}")
            rename[hit] = col.name
            continue
        hit = next((lower[c.lower()] for c in col.candidates if c.lower() in lower and lower[c.lower()] not in rename), None)
        if hit is None:
            if col.required:
                raise UserError(
                    f"{p}: missing column {col.name!r} (tried {list(col.candidates)}); "
                    f"columns found: {found}; name it with --{col.name.replace('_', '-')}-col"
                )
            continue
        rename[hit] = col.name
    # A column spelled like a canonical name but not chosen for it (--width-col d_model
    # with a stray `width` column) would collide after renaming: drop it.
    canonical = {c.name for c in columns}
    shadowed = [c for c in raw.columns if str(c) in canonical and c not in rename]
    frame = raw.drop(columns=shadowed).rename(columns=rename)
    for col in columns:
        if col.name not in frame.columns or not col.numeric:
            continue
        series = frame[col.name]
        if series.dtype.kind in "fiu":  # the parser already made every cell a number
            arr = series.to_numpy(dtype=float)
        else:
            values = pd.to_numeric(series, errors="coerce")
            bad = values.isna() & ~_is_nan_token(series)
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise UserError(
                    f"{p}: {_line(fmt, i)}, column {col.name!r}: {series.iloc[i]!r} is not a number"
                )
            arr = values.to_numpy(dtype=float)
        if not col.allow_nonfinite:
            nonfinite = ~np.isfinite(arr)
            if nonfinite.any():  # only now pay for locating the first one
                i = int(np.flatnonzero(nonfinite)[0])
                what = "is empty or NaN" if np.isnan(arr[i]) and _is_blank(frame[col.name].iloc[i]) else f"{arr[i]} is not finite"
                raise UserError(f"{p}: {_line(fmt, i)}, column {col.name!r}: {what}")
        if col.positive and not (arr > 0).all():
            nonpos = np.isfinite(arr) & (arr <= 0)
            if nonpos.any():
                i = int(np.flatnonzero(nonpos)[0])
                raise UserError(f"{p}: {_line(fmt, i)}, column {col.name!r}: {arr[i]:g} must be > 0")
        if series.dtype != np.float64:
            frame[col.name] = arr
    extra = [c for c in frame.columns if c not in canonical]
    mapping = {canon: str(orig) for orig, canon in rename.items()}
    return Table(path=str(p), frame=frame, extra_columns=[str(c) for c in extra], mapping=mapping)


def _is_blank(cell: object) -> bool:
    """A missing cell (empty in CSV, null in JSON) as opposed to a spelled-out nan."""
    return cell is None or (isinstance(cell, float) and cell != cell) or str(cell).strip() == ""


def _is_nan_token(series: "pd.Series") -> "pd.Series":
    """True where a cell is missing or spells a non-finite number (nan, inf)."""
    if series.dtype.kind in "fiub":
        return series.isna()
    text = series.astype(str).str.strip().str.lower()
    return series.isna() | text.isin({"nan", "inf", "-inf", "+inf", "infinity", "-infinity", ""})
