"""The sweep grid: widths x depths x learning rates x seeds, parsed from the flags.

Pure and stdlib-only. Every way a flag can be wrong is a UserError naming the flag
and the value, so `scaleadvise sweep` refuses a bad grid before it starts anything.

Learning rates are swept on a lattice in log2 units, as in the paper's sweeps
(Everett et al. 2024, §4.2 and C.4: base LRs in steps of 2^0.5 or 2^1):

    --lrs 2^-10:2^-6:0.5   ->  2^-10, 2^-9.5, ..., 2^-6     (START:STOP:STEP, STOP included)
    --lrs 1e-3:1e-2:1      ->  0.001, 0.002, 0.004, 0.008  (STOP off the lattice: the grid stays below it)
    --lrs 3e-4,1e-3        ->  exactly these
"""

import itertools
import math
from dataclasses import dataclass

from scaleadvise.errors import UserError

MAX_LRS = 1000  # a finer grid is a typo (a STEP of 0.0005 instead of 0.5), not a sweep
MAX_RUNS = 100_000
_ON_LATTICE = 1e-9  # octaves: log2 of decimal values (1e-3) is inexact, STOP is still on the lattice


@dataclass(frozen=True)
class Grid:
    """The axes of a sweep. ``depths`` is None when depth is not swept (the script's own)."""

    widths: tuple[int, ...]
    depths: tuple[int, ...] | None
    lrs: tuple[float, ...]
    seeds: tuple[int, ...]

    def points(self) -> list[tuple[int, int | None, float, int]]:
        """(width, depth, lr, seed) for every run, widths outermost: the order runs are started in."""
        return list(itertools.product(self.widths, self.depths or (None,), self.lrs, self.seeds))

    def __len__(self) -> int:
        return len(self.widths) * len(self.depths or (None,)) * len(self.lrs) * len(self.seeds)


def parse_number(text: str, flag: str) -> float:
    """A positive finite number written as 3e-4, 0.001 or 2^-12."""
    t = text.strip()
    try:
        value = 2.0 ** float(t[2:]) if t.startswith("2^") else float(t)
    except ValueError:
        raise UserError(f"{flag} {text!r}: not a number (write e.g. 3e-4 or 2^-12)") from None
    except OverflowError:
        value = math.inf
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{flag} {text!r}: must be a positive finite number")
    return value


def lr_lattice(start: float, stop: float, step_octaves: float) -> list[float]:
    """start * 2^(k * step) for k = 0, 1, ... while it stays <= stop (a STOP on the lattice,
    up to rounding, is included and returned exactly)."""
    lo, hi = math.log2(start), math.log2(stop)
    n = math.floor((hi - lo) / step_octaves + _ON_LATTICE)
    values = [start * 2.0 ** (k * step_octaves) for k in range(n + 1)]
    if n > 0 and abs(lo + n * step_octaves - hi) <= _ON_LATTICE * max(1.0, n * step_octaves):
        values[-1] = stop  # 2^-10 * 2^(8*0.5) is 2^-6 up to an ulp: keep the value the user wrote
    return values


def parse_lrs(text: str, flag: str = "--lrs") -> tuple[float, ...]:
    """START:STOP:STEP (STEP in octaves, or 2^x for a factor of 2^x) or a comma-separated list."""
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise UserError(f"{flag} {text!r}: expected START:STOP:STEP (e.g. 2^-10:2^-6:0.5) or a list")
        start, stop = parse_number(parts[0], flag), parse_number(parts[1], flag)
        step = _parse_step(parts[2], text, flag)
        if stop < start:
            raise UserError(f"{flag} {text!r}: STOP is below START")
        n = (math.log2(stop) - math.log2(start)) / step
        if n + 1 > MAX_LRS:
            raise UserError(f"{flag} {text!r}: {math.floor(n) + 1} learning rates (at most {MAX_LRS}); "
                            "STEP is in octaves (0.5 = a factor 2^0.5)")
        return tuple(lr_lattice(start, stop, step))
    items = [x for x in text.split(",")]
    if not text or any(not x.strip() for x in items):
        raise UserError(f"{flag} {text!r}: empty entry (expected e.g. 1e-3,3e-3 or START:STOP:STEP)")
    values = tuple(parse_number(x, flag) for x in items)
    _no_repeats(values, flag, text, lambda v: f"{v:.6g}")  # run folders name the LR with 6 digits
    return values


def _parse_step(text: str, whole: str, flag: str) -> float:
    """STEP in octaves: 0.5, or 2^0.5 (the factor between neighbours)."""
    t = text.strip()
    try:
        step = float(t[2:]) if t.startswith("2^") else float(t)
    except ValueError:
        raise UserError(f"{flag} {whole!r}: STEP {text!r} is not a number (octaves, e.g. 0.5)") from None
    if not math.isfinite(step) or step <= 0:
        raise UserError(f"{flag} {whole!r}: STEP must be a positive number of octaves (e.g. 0.5)")
    return step


def parse_ints(text: str, flag: str, minimum: int) -> tuple[int, ...]:
    """A comma-separated list of distinct integers >= minimum (2^k accepted)."""
    items = text.split(",")
    if not text.strip() or any(not x.strip() for x in items):
        raise UserError(f"{flag} {text!r}: empty entry (expected comma-separated integers, e.g. 64,128,256)")
    values = []
    for x in items:
        t = x.strip()
        try:
            v = int(t) if not t.startswith("2^") else 2 ** int(t[2:]) if 0 <= int(t[2:]) <= 62 else None
        except ValueError:
            v = None
        if v is None:
            raise UserError(f"{flag} {text!r}: {t!r} is not an integer (or 2^k, 0 <= k <= 62)")
        if v < minimum:
            raise UserError(f"{flag} {text!r}: {v} is below {minimum}")
        values.append(v)
    _no_repeats(values, flag, text, str)
    return tuple(values)


def _no_repeats(values, flag: str, text: str, key) -> None:
    seen: dict[str, object] = {}
    for v in values:
        k = key(v)
        if k in seen:
            same = "is listed twice" if seen[k] == v else f"and {seen[k]} are the same run to 6 digits"
            raise UserError(f"{flag} {text!r}: {v} {same}")
        seen[k] = v


def parse_grid(widths: str, lrs: str, seeds: str = "0", depths: str | None = None) -> Grid:
    """The sweep's grid from the flags' text; UserError naming the flag for anything wrong."""
    grid = Grid(widths=parse_ints(widths, "--widths", 1),
                depths=None if depths is None else parse_ints(depths, "--depths", 1),
                lrs=parse_lrs(lrs), seeds=parse_ints(seeds, "--seeds", 0))
    if len(grid) > MAX_RUNS:
        raise UserError(f"the grid has {len(grid)} runs (at most {MAX_RUNS}): split the sweep")
    return grid
