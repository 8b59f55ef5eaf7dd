"""The optimum and the largest stable LR of each width's sweep, vectorized.

A group's runs are laid out on a dense grid: one row per width, one column per
learning rate (the union of LRs swept at any width), each cell the mean loss of
the seeds run there. Everything below works on arrays of shape (..., W, L) so
the same code serves the one observed grid and thousands of bootstrap
replicates at once (no Python loop over rows, widths or replicates).

Per width (paper §4.2 and C.1):

* the best observed LR: the paper's method, the argmin over the sweep;
* a first refinement: the vertex of a least-squares parabola of loss against
  log2(lr) through the minimum and its finite neighbours within a factor of 2
  (always at least one neighbour on each side, never past the first unstable
  LR). It is where ``fit_bowl`` starts: a symmetric parabola's vertex sits below
  the optimum of a bowl steeper above it, and ``fit_bowl`` corrects for that;
* the largest stable LR, by the C.1 heuristic: an LR above the optimum is
  unstable when its loss is NaN/inf or more than 20% above the minimum; the
  largest stable LR is the last finite LR below the first unstable one.

Before the grid, rows become runs: ``dense_codes`` codes a column and
``final_steps`` keeps each run's last logged step, with a run-length shortcut for
the usual file layout (each run's rows together) that gives the same answer.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from scaleadvise.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from scaleadvise.analysis.tables import Table

INSTABILITY_RATIO = 0.2  # paper C.1: "exceeds the minimum eval loss by more than 20%"
REFINE_WINDOW = 1.0  # log2 units either side of the best LR used by the parabola


@dataclass(frozen=True)
class Grid:
    """One group's sweep as a dense (width x lr) grid of seed-averaged losses."""

    widths: np.ndarray  # (W,) sorted
    lrs: np.ndarray  # (L,) sorted union of swept LRs
    loss: np.ndarray  # (W, L) mean over finite seeds; NaN where absent or any seed diverged
    std: np.ndarray  # (W, L) seed standard deviation (NaN below two finite seeds)
    runs: np.ndarray  # (W, L) number of runs (seeds) in the cell
    diverged: np.ndarray  # (W, L) number of runs with NaN/inf loss
    run_cell: np.ndarray  # (N,) flat cell index of each run, for resampling
    run_loss: np.ndarray  # (N,) loss of each run

    @property
    def present(self) -> np.ndarray:
        return self.runs > 0

    @property
    def log2_lr(self) -> np.ndarray:
        return np.log2(self.lrs)


def dense_codes(values) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique values, code of each row): np.unique's answer by hashing, not sorting 1e6 rows."""
    import pandas as pd

    blocks = _blocks(values)
    if blocks is not None:
        return blocks
    try:
        codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=False)
    except TypeError:  # mixed types in a grouping column: keep first-seen order
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.asarray(uniques), codes.astype(np.int64, copy=False)


def _blocks(values) -> tuple[np.ndarray, np.ndarray] | None:
    """dense_codes of a numeric column whose rows come in long runs of one value, or None.

    Sweep files list each run's rows together, so width and LR change every few
    hundred rows: coding one row per change (and repeating) is ~4x faster than
    hashing every row. Same answer; None when the column changes too often, or
    holds NaN (left to pandas, which gives NaN one code).
    """
    v = np.asarray(values)
    if v.ndim != 1 or v.size < 2 or v.dtype.kind not in "iuf":
        return None
    starts = np.flatnonzero(v[1:] != v[:-1]) + 1
    if starts.size > v.size // 16:
        return None
    heads = v[np.concatenate(([0], starts))]
    uniques = np.unique(heads)
    if v.dtype.kind == "f" and np.isnan(uniques[-1]):
        return None
    lengths = np.diff(np.concatenate(([0], starts, [v.size])))
    return uniques, np.repeat(np.searchsorted(uniques, heads), lengths)


def combine_codes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Codes of the pairs (a, b), kept small enough to index an array of one slot per code."""
    c = a * (int(b.max(initial=0)) + 1) + b
    return c if c.max(initial=0) < max(4 * c.size, 1 << 20) else dense_codes(c)[1]


def max_per(code: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The maximum of ``values`` within each code, broadcast back to the rows."""
    m = np.full(int(code.max(initial=-1)) + 1, -np.inf)
    np.maximum.at(m, code, values)
    return m[code]


@dataclass(frozen=True)
class Blocks:
    """Where the codes naming a run (or a cell) change from one row to the next."""

    change: np.ndarray  # (rows - 1,) bool: row i + 1 starts a new block
    starts: np.ndarray  # first row of each block
    contiguous: bool  # every run is one block (its rows are not split over the file)


def run_blocks(parts: list[np.ndarray]) -> Blocks:
    """Blocks of rows sharing the codes in ``parts``: O(rows), no sort."""
    change = parts[0][1:] != parts[0][:-1]
    for p in parts[1:]:
        change |= p[1:] != p[:-1]
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    run = parts[0][starts]
    for p in parts[1:]:
        run = combine_codes(run, p[starts])
    return Blocks(change=change, starts=starts, contiguous=np.unique(run).size == run.size)


def _run_starts(parts: list[np.ndarray], blocks: Blocks | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(first row, row count) of each run when every run's rows are contiguous, else None.

    ``parts`` are the codes that together name a run (width, LR, seed); loggers write
    a run's steps together, which lets the last step of each run come from one
    reduceat over blocks instead of scattering a million rows.
    """
    n = parts[0].size
    blocks = blocks or run_blocks(parts)
    if blocks.starts.size > n // 4 or not blocks.contiguous:
        return None
    return blocks.starts, np.diff(np.append(blocks.starts, n))


def final_steps(parts: list[np.ndarray], step: np.ndarray,
                blocks: Blocks | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows at their run's last step, and those of them whose run stops before the last
    step of the others at its width (``parts[0]`` codes the width). ``step`` is -inf
    on rows after --step."""
    blocks = _run_starts(parts, blocks)
    if blocks is None:
        run = parts[0]
        for p in parts[1:]:
            run = combine_codes(run, p)
        final = step == max_per(run, step)
        last = np.where(final, step, -np.inf)
        return final, final & (last < max_per(parts[0], last))
    starts, lengths = blocks
    top = np.maximum.reduceat(step, starts)  # each run's last step
    width = parts[0][starts]
    width_top = np.full(int(width.max()) + 1, -np.inf)
    np.maximum.at(width_top, width, top)
    final = step == np.repeat(top, lengths)
    return final, final & np.repeat(top < width_top[width], lengths)


def _contiguous_increasing(parts: list[np.ndarray], inner: np.ndarray, blocks: Blocks | None = None) -> bool:
    """Whether rows sharing the codes in ``parts`` form one block each, with ``inner``
    strictly increasing within it: then no two rows share (parts, inner). O(rows), no sort;
    it holds for files written run by run (steps in order) or cell by cell (seeds in order)."""
    blocks = blocks or run_blocks(parts)
    return blocks.contiguous and not (~blocks.change & (inner[1:] <= inner[:-1])).any()


def repeated_rows(parts: list[np.ndarray], inner: np.ndarray,
                  blocks: Blocks | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of rows with the same identity (the codes in ``parts`` and the values of
    ``inner``): (earlier, later) row indices, each later row paired with the previous
    row of its identity in file order; empty when every identity occurs once."""
    if inner.size < 2 or _contiguous_increasing(parts, inner, blocks):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    keys = [*parts, inner]
    order = np.lexsort(keys[::-1])  # stable: ties stay in file order
    same = np.ones(order.size - 1, dtype=bool)
    for k in keys:
        ks = k[order]
        same &= ks[1:] == ks[:-1]
    at = np.flatnonzero(same)
    return order[at], order[at + 1]


def drop_duplicates(table: "Table", parts: list[np.ndarray], step: np.ndarray | None, loss: np.ndarray, policy: str,
                    warnings: list[str], blocks: Blocks | None = None) -> np.ndarray:
    """Rows to keep: the same run (grouping keys, width, lr, seed, step) twice is an error naming
    both lines, or with --duplicates last only the last of each is kept; never counted twice.

    Without a seed column, rows at the same (width, lr, step) may be unnamed seeds: only rows
    identical in (finite) loss as well count as the same run.
    """
    if policy not in ("error", "last"):
        raise UserError(f"--duplicates: {policy!r} is not 'error' or 'last'")
    has_seed = "seed" in table.frame.columns
    if has_seed:
        ident = list(parts)
    else:  # the loss joins the identity; diverged (NaN) runs are all distinct, one NaN is like another
        same_loss = dense_codes(np.ascontiguousarray(loss).view(np.int64))[1]
        bad = ~np.isfinite(loss)
        same_loss[bad] = same_loss.max(initial=0) + 1 + np.arange(int(bad.sum()))
        ident = [*parts, same_loss]
    if step is not None:  # ``blocks`` (of ``parts``) serve when the identity is just ``parts``
        earlier, later = repeated_rows(ident, step, blocks if has_seed else None)
    else:  # one row per run: the seed (or the loss) is the innermost key
        earlier, later = repeated_rows(ident[:-1], ident[-1])
    keep = np.ones(len(table.frame), dtype=bool)
    if later.size == 0:
        return keep
    first = int(np.argmin(later))
    a, b = int(earlier[first]), int(later[first])
    if policy == "error":
        names = [c for c in ("width", "lr", "seed", "step") if c in table.frame.columns]
        shown = ", ".join(f"{c}={_fmt_cell(table.frame[c].iloc[b])}" for c in names)
        unnamed = "" if has_seed else " (and the same loss; if they are different seeds, add a seed column)"
        raise UserError(f"{table.path}: {table.where(a)} and {table.where(b)} are the same run ({shown}){unnamed}; "
                        f"{later.size} row(s) repeat an earlier one: remove them, or pass --duplicates last "
                        "to keep the last of each")
    keep[earlier] = False  # every row with a later twin
    warnings.append(f"{later.size} row(s) repeat an earlier run ({table.where(a)} and {table.where(b)} first): "
                    "kept the last of each (--duplicates last)")
    return keep


def _fmt_cell(v) -> str:
    v = v.item() if hasattr(v, "item") else v
    return f"{v:g}" if isinstance(v, float) else str(v)


def _codes(values) -> tuple[np.ndarray, np.ndarray]:
    """Sorted uniques and codes from raw values, or compacted from (uniques, codes[, complete])
    computed for a larger table."""
    if not isinstance(values, tuple):
        return dense_codes(np.asarray(values, dtype=float))
    uniques, codes, *complete = values
    if complete and complete[0]:  # the caller knows every unique value occurs
        return uniques, codes
    used = np.bincount(codes, minlength=uniques.size) > 0
    return uniques[used], (np.cumsum(used) - 1)[codes]


def _cell_sums(cell: np.ndarray, x: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs, sum and sum of squares of ``x`` per cell. Files list a cell's runs together,
    and summing contiguous blocks (reduceat) is ~20x faster than a weighted bincount; the
    bincount serves any other order (same answer up to summation order)."""
    change = np.flatnonzero(cell[1:] != cell[:-1]) + 1
    if change.size < cell.size // 4:
        starts = np.concatenate(([0], change))
        heads = cell[starts]
        if np.unique(heads).size == heads.size:  # each cell is one block
            runs, s1, s2 = np.zeros(n_cells, dtype=np.int64), np.zeros(n_cells), np.zeros(n_cells)
            runs[heads] = np.diff(np.append(starts, cell.size))
            s1[heads] = np.add.reduceat(x, starts)
            s2[heads] = np.add.reduceat(x * x, starts)
            return runs, s1, s2
    return (np.bincount(cell, minlength=n_cells), np.bincount(cell, weights=x, minlength=n_cells),
            np.bincount(cell, weights=x * x, minlength=n_cells))


def build_grid(width, lr, loss: np.ndarray) -> Grid:
    """Aggregate runs (one final loss each) into the grid; seeds averaged, spread kept.

    ``width`` and ``lr`` are per-run values or (sorted uniques, code per run) pairs.

    A cell with any diverged seed counts as diverged (NaN): C.1 treats NaNs as
    instability, and an LR that diverges for some seeds is not one to launch at.
    """
    widths, wi = _codes(width)
    lrs, li = _codes(lr)
    n_cells = widths.size * lrs.size
    cell = wi * lrs.size + li
    loss = np.asarray(loss, dtype=float)
    finite = np.isfinite(loss)
    all_finite = bool(finite.all())
    # One pass for the sums: the spread comes from the sum of squares about a shift
    # (any one loss), which keeps the cancellation harmless for losses O(1) apart.
    shift = float(loss[np.argmax(finite)]) if finite.any() else 0.0
    x = loss - shift if all_finite else np.where(finite, loss - shift, 0.0)
    runs, s1, s2 = _cell_sums(cell, x, n_cells)
    # Finite runs per cell: all runs less the (few) diverged ones, counted alone.
    n_ok = (runs if all_finite else runs - np.bincount(cell[~finite], minlength=n_cells)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_ok = s1 / n_ok + shift
        var = np.maximum(s2 - s1 * s1 / n_ok, 0.0) / (n_ok - 1)
    diverged = runs - n_ok.astype(np.int64)
    mean = np.where((runs > 0) & (diverged == 0), mean_ok, np.nan)
    std = np.where(n_ok >= 2, np.sqrt(var), np.nan)
    shape = (widths.size, lrs.size)
    return Grid(widths=widths, lrs=lrs, loss=mean.reshape(shape), std=std.reshape(shape),
                runs=runs.reshape(shape), diverged=diverged.reshape(shape),
                run_cell=cell, run_loss=loss)


@dataclass(frozen=True)
class Optima:
    """Per-width results; every array has the grid's leading shape (..., W)."""

    found: np.ndarray  # bool: some finite LR exists at this width
    best: np.ndarray  # int index of the best observed LR
    min_loss: np.ndarray
    refined: np.ndarray  # bool: the parabola gave a vertex
    log2_lr_refined: np.ndarray  # vertex, or the best observed log2 lr where not refined
    loss_refined: np.ndarray
    coef: np.ndarray  # (..., W, 3) parabola a + b d + c d^2 in d = log2 lr - log2 lr_best
    window: np.ndarray  # (..., W, L) bool: the points the parabola used
    max_stable: np.ndarray  # int index of the largest stable LR
    censored: np.ndarray  # bool: no unstable LR above the optimum, so max_stable is a lower bound
    usable: np.ndarray  # (..., W, L) bool: finite and not past the first unstable LR (what a bowl may fit)


def _last_true(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the last True along the last axis, and whether there is one."""
    last = mask.shape[-1] - 1 - np.argmax(mask[..., ::-1], axis=-1)
    return last, mask.any(-1)


def locate_optima(log2_lr: np.ndarray, loss: np.ndarray, present: np.ndarray,
                  instability: float = INSTABILITY_RATIO, window: float = REFINE_WINDOW) -> Optima:
    """Best, refined and largest stable LR for every width of every grid in ``loss``."""
    finite = np.isfinite(loss)
    present = np.broadcast_to(present, loss.shape)
    L = loss.shape[-1]
    idx = np.arange(L)
    found = finite.any(-1)
    best = np.argmin(np.where(finite, loss, np.inf), axis=-1)
    min_loss = np.where(found, np.take_along_axis(loss, best[..., None], -1)[..., 0], np.nan)

    # C.1: above the optimum, NaN/inf or > (1 + 20%) x minimum is unstable.
    threshold = min_loss + instability * np.abs(min_loss)
    above = idx > best[..., None]
    with np.errstate(invalid="ignore"):
        unstable = present & above & (~finite | (loss > threshold[..., None])) & found[..., None]
    censored = ~unstable.any(-1)
    first_unstable = np.where(censored, L, np.argmax(unstable, axis=-1))
    stable = finite & (idx < first_unstable[..., None])
    max_stable, _ = _last_true(stable)

    # The parabola's window: finite points within `window` octaves of the best, plus
    # the nearest finite neighbour on each side however far it is. The first unstable
    # LR may serve (on a steep, coarse sweep it is the only neighbour above), nothing
    # beyond it: past the threshold the loss leaves the parabola.
    usable = finite & (idx <= first_unstable[..., None])
    left, has_left = _last_true(usable & (idx < best[..., None]))
    right = np.argmax(usable & above, axis=-1)
    has_right = (usable & above).any(-1)
    d = log2_lr - np.take(log2_lr, best)[..., None]
    nearest = ((idx == left[..., None]) & has_left[..., None]) | ((idx == right[..., None]) & has_right[..., None])
    win = usable & ((np.abs(d) <= window) | nearest)
    can = found & has_left & has_right

    w = win.astype(float)
    y = np.where(win, loss, 0.0)
    s = [(w * d**p).sum(-1) for p in range(5)]
    t = [(y * d**p).sum(-1) for p in range(3)]
    normal = np.stack([np.stack(s[0:3], -1), np.stack(s[1:4], -1), np.stack(s[2:5], -1)], -2)
    normal = np.where(can[..., None, None], normal, np.eye(3))
    coef = np.linalg.solve(normal, np.stack(t, -1)[..., None])[..., 0]
    a, b, c = coef[..., 0], coef[..., 1], coef[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        vertex = -b / (2.0 * c)
    refined = can & (c > 0) & np.isfinite(vertex)
    lo = np.where(win, d, np.inf).min(-1)
    hi = np.where(win, d, -np.inf).max(-1)
    vertex = np.clip(np.where(refined, vertex, 0.0), np.minimum(lo, 0.0), np.maximum(hi, 0.0))
    best_log2 = np.take(log2_lr, best)
    return Optima(
        found=found, best=best, min_loss=min_loss, refined=refined,
        log2_lr_refined=np.where(found, best_log2 + vertex, np.nan),
        loss_refined=np.where(refined, a + b * vertex + c * vertex**2, min_loss),
        coef=coef, window=win, max_stable=max_stable, censored=censored, usable=usable,
    )


@lru_cache(maxsize=256)
def _quantile(level: float, dof: float | None) -> float:
    """Two-sided normal (dof None or inf) or Student-t quantile (any dof > 0, fractional from
    Satterthwaite); cached, scipy's ppf is slow per call."""
    from scipy.special import ndtri, stdtrit  # the ufuncs behind scipy.stats' norm.ppf and t.ppf

    if dof is None or not np.isfinite(dof) or dof > 1e6:
        return float(ndtri(0.5 + level / 2))
    return float(stdtrit(dof, 0.5 + level / 2))


def has_repeats(grid: Grid) -> bool:
    """Whether any cell has two or more runs: only then can seeds be resampled."""
    return bool((grid.runs >= 2).any())


EXACT_RESAMPLE_MAX = 30  # cells with more runs use the normal limit of the resampled mean


def bootstrap_grids(grid: Grid, reps: int, rng: np.random.Generator,
                    on_chunk: Callable[[int], None] | None = None, chunk_elems: int = 2_000_000):
    """Yield (b, W, L) grids of losses with each cell's runs resampled with replacement.

    Runs are resampled within their (width, lr) cell, so each replicate is the
    sweep one would have seen with other draws of the same seeds. A cell with
    many runs (more than EXACT_RESAMPLE_MAX) is drawn from the limit of its
    resampled mean instead, which costs O(cells) rather than O(runs) per
    replicate: diverged if a Binomial(m, fraction diverged) draw is non-zero,
    else Normal(mean, sd / sqrt(m)) with the cell's own finite runs' mean and
    (population) sd. Chunks keep memory bounded; ``on_chunk(b)`` reports progress.
    """
    counts = grid.runs.ravel()
    n_cells = counts.size
    exact = counts <= EXACT_RESAMPLE_MAX
    rows = exact[grid.run_cell]
    order = np.argsort(grid.run_cell[rows], kind="stable")
    cell = grid.run_cell[rows][order]
    loss = grid.run_loss[rows][order]
    starts = np.cumsum(np.where(exact, counts, 0)) - np.where(exact, counts, 0)
    row_start, row_count = starts[cell], counts[cell]
    finite = np.isfinite(loss)
    lf = np.where(finite, loss, 0.0)
    # The large cells' limit: fraction diverged, and mean/sd of the finite runs.
    n_bad = grid.diverged.ravel()
    n_ok = counts - n_bad
    mean_ok = np.where(n_ok > 0, np.nan_to_num(grid.loss.ravel()), 0.0)
    if (~exact).any():  # grid.loss is NaN where any run diverged: recompute from the runs
        big = ~exact[grid.run_cell] & np.isfinite(grid.run_loss)
        c_big, l_big = grid.run_cell[big], grid.run_loss[big]
        s1 = np.bincount(c_big, weights=l_big, minlength=n_cells)
        s2 = np.bincount(c_big, weights=(l_big - (s1 / np.maximum(n_ok, 1))[c_big]) ** 2, minlength=n_cells)
        mean_ok = np.where(exact, mean_ok, s1 / np.maximum(n_ok, 1))
        se = np.sqrt(s2 / np.maximum(n_ok, 1)) / np.sqrt(np.maximum(counts, 1))
    n = cell.size
    chunk = max(1, chunk_elems // max(n, n_cells, 1))
    done = 0
    while done < reps:
        b = min(chunk, reps - done)
        flat = (np.arange(b)[:, None] * n_cells + cell).ravel()
        pick = row_start + (rng.random((b, n)) * row_count).astype(np.int64)
        total = np.bincount(flat, weights=lf[pick].ravel(), minlength=b * n_cells).reshape(b, n_cells)
        bad = np.bincount(flat, weights=(~finite[pick]).ravel(), minlength=b * n_cells).reshape(b, n_cells)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / (counts - bad)
        if (~exact).any():
            frac = np.where(counts > 0, n_bad / np.maximum(counts, 1), 0.0)
            bad_big = rng.binomial(np.where(exact, 0, counts), frac, size=(b, n_cells))
            draw = mean_ok + se * rng.standard_normal((b, n_cells))
            mean = np.where(exact, mean, draw)
            bad = np.where(exact, bad, bad_big)
        mean = np.where((bad == 0) & (counts > 0), mean, np.nan)
        done += b
        if on_chunk is not None:
            on_chunk(b)
        yield mean.reshape(b, *grid.runs.shape)
