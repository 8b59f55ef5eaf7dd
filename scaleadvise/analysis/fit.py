"""Sweeps -> optimum per width -> power laws -> transfer verdict (paper §4.2, C.1, E, I).

``fit_sweep(path, FitOptions(...))`` reads a sweep table (one row per run, or
per logged step of each run), refuses (or with --duplicates last, drops) the
same run logged twice, keeps each run's final step, averages seeds per
(width, lr), finds each width's best and largest stable LR (``fit_optima``)
and its optimum from a bowl shape shared by all widths (``fit_bowl``), fits
lr*(n) = C n^k and L(n) = E + A n^-alpha (``powerlaw``) with small-sample
intervals (the optima's own error plus their scatter about the law), checks
them against a bootstrap over seeds, and returns the JSON document of
``scaleadvise fit --json``. No Python loop touches rows.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from scaleadvise.errors import UserError
from scaleadvise.analysis.fit_bowl import WINDOW, Averaged, estimate_optima, resample_optima
from scaleadvise.analysis.fit_interpret import check_theory_flags, interpretation_for
from scaleadvise.analysis.fit_optima import (INSTABILITY_RATIO, Grid, Optima, _quantile, bootstrap_grids, build_grid,
                                    combine_codes, dense_codes, drop_duplicates, final_steps, has_repeats,
                                    locate_optima, run_blocks)
from scaleadvise.analysis.powerlaw import (LawBand, PowerLaw, batched_slopes, fit_loss_law, fit_power_law, grid_offsets,
                                  law_intervals)
from scaleadvise.analysis.tables import Column, read_table

SWEEP_COLUMNS = (
    # Short names such as "d", "n" or "beta" are left out on purpose: they too often mean
    # something else (a count, Adam's beta); --width-col/--lr-col name them.
    Column("width", ("d_model", "n_embd", "model_dim", "hidden_size", "embed_dim", "emb_dim", "dim"), positive=True),
    Column("lr", ("learning_rate", "base_lr", "peak_lr", "max_lr", "lr_base", "eta"), positive=True),
    Column("loss", ("eval_loss", "val_loss", "valid_loss", "validation_loss", "test_loss", "final_loss",
                    "eval/loss", "val/loss", "loss_eval"), allow_nonfinite=True),
    Column("seed", ("random_seed", "run_seed", "rng_seed", "replicate"), numeric=False, required=False),
    Column("step", ("steps", "global_step", "train_step", "iteration", "iter", "_step"), required=False),
)
# --scale-by depth (issue 12): the same machinery with the depth column as the scale axis
# (called "width" inside, and in the per-group records); the width, if it varies, names sweeps.
DEPTH_COLUMN = Column("depth", ("n_layer", "n_layers", "num_layers", "layers", "num_hidden_layers"), positive=True)
SCALE_AXES = ("width", "depth")
# Columns that name a distinct sweep; grouped by automatically when they vary.
AUTO_GROUP_COLUMNS = ("param", "parameterization", "optim", "optimizer", "setting", "alignment",
                      "constants", "eps_mode", "horizon")

Progress = Callable[[str, int], Callable[[int], None]]  # (label, total) -> advance(n)


@dataclass(frozen=True)
class FitOptions:
    target_width: float | None = None
    group_by: tuple[str, ...] | None = None  # None: AUTO_GROUP_COLUMNS that vary
    step: int | None = None  # compare runs at this step (last logged step <= it)
    transfer_tol: float = 0.1
    bootstrap: int = 1000
    seed: int = 0
    optimum: str = "refined"  # or "observed" (the paper's best-of-sweep)
    instability: float = INSTABILITY_RATIO
    level: float = 0.95
    duplicates: str = "error"  # the same run twice: "error", or "last" (keep the last of each)
    param: str | None = None
    optim: str | None = None
    setting: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)  # --width-col etc.
    scale_by: str = "width"  # or "depth": fit the LR's depth exponent from the depth column


# --------------------------------------------------------------------------- loading


@dataclass
class Runs:
    """One row per run (its final step), as arrays; ``group`` indexes ``keys``."""

    width: np.ndarray  # (unique widths, code per run)
    lr: np.ndarray  # (unique LRs, code per run)
    loss: np.ndarray
    group: np.ndarray
    keys: list[dict]
    widths: np.ndarray
    lrs: np.ndarray
    complete: bool = False  # one group and no row dropped: codes are already dense


def _text_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dense_codes of a grouping column, with text stripped (' stp' and 'stp' are one sweep)."""
    uniq, code = dense_codes(values)
    if uniq.dtype.kind in "OUS":
        uniq, remap = dense_codes(np.array([str(u).strip() for u in uniq], dtype=object))
        code = remap[code]
    return uniq, code


def load_runs(path: str, opts: FitOptions) -> tuple[Runs, list[str], list[str], dict]:
    """Read the table and keep one row per run: its final step (or the last <= --step)."""
    if opts.scale_by not in SCALE_AXES:
        raise UserError(f"--scale-by: {opts.scale_by!r} is not 'width' or 'depth'")
    depth = opts.scale_by == "depth"
    table = read_table(path, (DEPTH_COLUMN, *SWEEP_COLUMNS[1:]) if depth else SWEEP_COLUMNS, opts.columns)
    frame = table.frame
    warnings: list[str] = []
    # The other size axis, where it varies, splits the table: each depth is its own width
    # sweep (and each width its own depth sweep).
    groups = _group_columns(table, opts.group_by, ("width",) if depth else ("depth",))
    warnings += _mixed_columns(table, groups)
    info = {"rows": len(frame), "columns": table.mapping, "scale_by": opts.scale_by}
    width, lr, loss = (frame[c].to_numpy(float) for c in (opts.scale_by, "lr", "loss"))
    gcode = np.zeros(len(frame), dtype=np.int64)
    key_values = []
    for col in groups:
        uniq, code = _text_codes(frame[col].to_numpy())
        gcode, key_values = combine_codes(gcode, code), key_values + [(col, uniq, code)]
    widths, wi = dense_codes(width)
    lrs, li = dense_codes(lr)
    wcode = combine_codes(gcode, wi) if groups else wi
    parts = [wcode, li]
    if "seed" in frame.columns:
        seed = frame["seed"].to_numpy()
        # Integer seeds in a compact range are their own codes; anything else is hashed.
        small = seed.dtype.kind in "iu" and seed.size and 0 <= seed.min() and seed.max() < 4 * seed.size
        parts.append(seed.astype(np.int64, copy=False) if small else dense_codes(seed)[1])
    step = frame["step"].to_numpy(float) if "step" in frame.columns else None
    # Runs of different experiments pooled by an explicit --group-by are still different runs.
    named = [c for c in table.extra_columns if c.lower() in AUTO_GROUP_COLUMNS and c not in groups]
    ident = [combine_codes(parts[0], _text_codes(frame[c].to_numpy())[1]) for c in named[:1]] or parts[:1]
    for c in named[1:]:
        ident[0] = combine_codes(ident[0], _text_codes(frame[c].to_numpy())[1])
    blocks = run_blocks(parts) if step is not None and len(parts) > 2 else None  # runs named by a seed
    keep = drop_duplicates(table, ident + parts[1:], step, loss, opts.duplicates, warnings,
                           blocks if not named else None)
    if step is not None:
        if opts.step is not None:
            keep &= step <= opts.step
            if not keep.any():
                raise UserError(f"{path}: --step {opts.step}: no rows at or before it "
                                f"(steps run {step.min():g}..{step.max():g})")
        masked = step if keep.all() else np.where(keep, step, -np.inf)
        final, short = final_steps(parts, masked, blocks)
        keep &= final
        # A run that stops before the others at its width crashed or is still running:
        # leave it out rather than compare losses from different points in training.
        short &= keep
        if short.any():
            ws, counts = np.unique(width[short], return_counts=True)
            listed = ", ".join(f"{w:g} ({c})" for w, c in zip(ws, counts))
            warnings.append(f"runs that stop before the last step at their width were left out, by width: {listed}; "
                            "use --step to compare all runs at an earlier step")
            keep &= ~short
    elif opts.step is not None:
        raise UserError(f"{path}: --step given but the table has no step column "
                        f"(tried {list(SWEEP_COLUMNS[4].candidates)}); name it with --step-col")
    # One key per group code, read off the first row of each group.
    if groups:
        _, group = dense_codes(gcode)  # groups in sorted key order
        first = np.full(int(group.max(initial=0)) + 1, group.size)
        np.minimum.at(first, group, np.arange(group.size))
    else:
        group, first = gcode, np.zeros(1, dtype=np.int64)
    keys = [{col: _py(uniq[code[i]]) for col, uniq, code in key_values} for i in first]
    # Known columns with one value throughout (optim=adam) still tell the theory what was run.
    lower = {c.lower(): c for c in table.extra_columns}
    info["context"] = {c: _py(frame[lower[c]].iloc[0]).strip() if isinstance(frame[lower[c]].iloc[0], str)
                       else _py(frame[lower[c]].iloc[0])
                       for c in AUTO_GROUP_COLUMNS if c in lower and lower[c] not in groups
                       and frame[lower[c]].nunique(dropna=False) == 1}
    if keep.all():  # nothing dropped: no copies, and every width and LR occurs
        runs = Runs(width=wi, lr=li, loss=loss, group=group, keys=keys, widths=widths, lrs=lrs, complete=not groups)
    else:
        runs = Runs(width=wi[keep], lr=li[keep], loss=loss[keep], group=group[keep], keys=keys, widths=widths,
                    lrs=lrs)
    info["runs"] = int(keep.sum())
    return runs, groups, warnings, info


def _py(v):
    return v.item() if hasattr(v, "item") else v


def _group_columns(table, group_by: tuple[str, ...] | None, other_axes: tuple[str, ...] = ()) -> list[str]:
    lower = {c.lower(): c for c in table.extra_columns}
    if group_by is None:
        return [lower[c] for c in (*other_axes, *AUTO_GROUP_COLUMNS)
                if c in lower and table.frame[lower[c]].nunique(dropna=False) > 1]
    out = []
    for name in group_by:
        key = name.strip().lower()
        if key in ("width", "depth", "lr", "loss", "step", "seed") and key not in other_axes:
            raise UserError(f"--group-by: {name!r} is a sweep column, not a grouping column")
        if key not in lower:
            raise UserError(f"--group-by: column {name!r} not in {table.path}; columns found: {list(table.frame.columns)}")
        out.append(lower[key])
    return out


def _mixed_columns(table, groups: list[str]) -> list[str]:
    """A naming column (param, optim, ...) that varies but is left out of an explicit
    --group-by pools different experiments into one sweep: say so, it is rarely meant."""
    out = []
    for col in table.extra_columns:
        values = table.frame[col]
        if col.lower() in AUTO_GROUP_COLUMNS and col not in groups and values.nunique(dropna=False) > 1:
            shown = ", ".join(sorted(map(str, values.unique()))[:5])
            out.append(f"column {col!r} takes {values.nunique(dropna=False)} values ({shown}) but is not in "
                       f"--group-by: their runs are fitted as one sweep; add it to --group-by to separate them")
    return out


# --------------------------------------------------------------------------- one group


def _envelope(*intervals) -> tuple[float, float] | None:
    """The smallest interval containing every given one (None entries ignored)."""
    iv = [i for i in intervals if i is not None]
    return (min(i[0] for i in iv), max(i[1] for i in iv)) if iv else None


def _percentile_ci(samples: np.ndarray, level: float) -> tuple[float, float] | None:
    s = samples[np.isfinite(samples)]
    if s.size < max(20, 0.9 * samples.size):  # too many replicates without a fit
        return None
    q = 50.0 * (1.0 - level)
    return (float(np.percentile(s, q)), float(np.percentile(s, 100.0 - q)))


def transfer_verdict(k: float | None, ci: tuple[float, float] | None, tol: float,
                     why_no_ci: str = "no noise level to measure") -> tuple[bool | None, str]:
    """Does the base LR transfer across width? (paper §4.2: exponents near zero)."""
    if k is None:
        return None, "no exponent: the optimum was found at fewer than two widths"
    move = f"move the base LR by x{2.0 ** k:.3g} per doubling of width (lr* ∝ n^{k:.2f})"
    if ci is None:
        return None, f"k = {k:.3f} has no interval ({why_no_ci}): cannot judge transfer; {move}"
    lo, hi = ci
    if -tol <= lo and hi <= tol:
        return True, f"the base LR transfers: k = {k:.3f} [{lo:.3f}, {hi:.3f}] lies within ±{tol:g}"
    if lo > tol or hi < -tol:
        return False, f"the base LR does not transfer: k = {k:.3f} [{lo:.3f}, {hi:.3f}]; {move}"
    return None, (f"inconclusive: k = {k:.3f} [{lo:.3f}, {hi:.3f}] straddles ±{tol:g}; "
                  "add seeds, widths or a finer LR grid")


def _exp2_interval(lo: float, hi: float) -> list[float] | None:
    """[2^lo, 2^hi], or None when the interval is not finite (an optimum the data cannot place)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.exp2([lo, hi])
    return [float(out[0]), float(out[1])] if np.isfinite(out).all() and out[0] > 0 else None


def _width_records(grid: Grid, opt: Optima, avg: Averaged, level: float, notes: dict[str, list[int]]) -> list[dict]:
    """One JSON record per width (a loop over widths, never over rows)."""
    x = grid.log2_lr
    pos = {int(r): i for i, r in enumerate(avg.rows)}
    values, ses, dofs = avg.widths()
    records = []
    for i, width in enumerate(grid.widths):
        w = int(width) if float(width).is_integer() else float(width)
        present = np.flatnonzero(grid.present[i])
        rec = {"width": w, "n_lrs": int(present.size), "runs": int(grid.runs[i].sum()),
               "diverged_runs": int(grid.diverged[i].sum())}
        if not opt.found[i]:
            notes["all_diverged"].append(w)
            records.append(rec | {"lr": None, "loss": None})
            continue
        b = int(opt.best[i])
        rec.update(lr=float(grid.lrs[b]), loss=float(grid.loss[i, b]), loss_std=float(grid.std[i, b]),
                   seeds=int(grid.runs[i, b]), edge=None)
        if b == present[0]:
            rec["edge"] = "low"
            notes["edge_low"].append(w)
        elif b == present[-1]:
            rec["edge"] = "high"
            notes["edge_high"].append(w)
        if present.size < 3:
            notes["few_lrs"].append(w)
        j = pos[i]
        value, se = float(values[j]), float(ses[j])
        h = _quantile(level, round(float(dofs[j]), 1)) * se
        if avg.fitted[j]:
            rec.update(lr_refined=float(2.0 ** value), loss_refined=float(avg.loss[j]),
                       lr_refined_ci=_exp2_interval(value - h, value + h),
                       lr_refined_ci_from=avg.noise_from, lr_refined_se_log2=se, refined=True)
        else:
            if present.size >= 3:
                notes["not_refined"].append(w)
            # Not located: the grid spacing is the resolution, halfway to each neighbour.
            lo = x[present[present < b][-1]] if (present < b).any() else x[b]
            hi = x[present[present > b][0]] if (present > b).any() else x[b]
            rec.update(lr_refined=float(grid.lrs[b]), loss_refined=float(grid.loss[i, b]),
                       lr_refined_ci=[float(2.0 ** ((lo + x[b]) / 2)), float(2.0 ** ((hi + x[b]) / 2))],
                       lr_refined_ci_from="grid", lr_refined_se_log2=se, refined=False)
        rec.update(max_stable_lr=float(grid.lrs[opt.max_stable[i]]), max_stable_censored=bool(opt.censored[i]))
        if opt.censored[i]:
            notes["censored"].append(w)
        records.append(rec)
    return records


_NOTE_TEXT = {
    "all_diverged": "every run diverged (NaN/inf) at width {w}; left out of the fits: extend the sweep downward",
    "edge_low": "the optimum is the smallest LR swept at width {w}: extend the sweep downward",
    "edge_high": "the optimum is the largest LR swept at width {w}: extend the sweep upward",
    "few_lrs": "fewer than three LRs at width {w}: no refinement, the best observed LR is used",
    "not_refined": "the optimum could not be located at width {w} (fewer than four usable LRs near it, no stable "
                   "LR on one side, or no convex bowl); the best observed LR is used, the grid spacing its error",
    "censored": "no unstable LR above the optimum at width {w}: the largest stable LR is only a lower bound "
                "(C.1); extend the sweep upward to find the threshold",
}


def _grid_gaps(grid: Grid, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Octaves from the LR at ``index`` down to the previous and up to the next LR swept (0 at an end)."""
    x = grid.log2_lr
    below, above = np.zeros(grid.widths.size), np.zeros(grid.widths.size)
    for i, j in enumerate(index):  # a loop over widths
        present = np.flatnonzero(grid.present[i])
        lower, upper = present[present < j], present[present > j]
        below[i] = x[j] - x[lower[-1]] if lower.size else 0.0
        above[i] = x[upper[0]] - x[j] if upper.size else 0.0
    return below, above


def _bootstrap(grid: Grid, avg: Averaged, use_ms: np.ndarray, opts: FitOptions, rng: np.random.Generator,
               advance: Callable[[int], None] | None) -> dict[str, np.ndarray]:
    """Exponents (and predictions) of every replicate with seeds resampled per cell."""
    lx = np.log2(grid.widths)
    target = None if opts.target_width is None else float(np.log2(opts.target_width))
    out = {"k": [], "pred": [], "k_ms": [], "pred_ms": []}
    for y in bootstrap_grids(grid, opts.bootstrap, rng, advance):
        ob = locate_optima(grid.log2_lr, y, grid.present, opts.instability)
        if opts.optimum == "refined":
            opt_b = resample_optima(avg, grid.log2_lr, y, grid.runs)
        else:
            opt_b = np.where(ob.found, np.take(grid.log2_lr, ob.best), np.nan)[:, avg.rows]
        k, pred = batched_slopes(lx[avg.rows], opt_b, target)
        ms = np.where(use_ms & ob.found & ~ob.censored, np.take(grid.log2_lr, ob.max_stable), np.nan)
        k_ms, pred_ms = batched_slopes(lx, ms, target)
        for name, v in (("k", k), ("pred", pred), ("k_ms", k_ms), ("pred_ms", pred_ms)):
            if v is not None:
                out[name].append(v)
    return {k: np.concatenate(v) for k, v in out.items() if v}


def analyze_group(key: dict, width, lr, loss: np.ndarray, opts: FitOptions, rng: np.random.Generator,
                  progress: Progress | None = None, context: dict | None = None) -> tuple[dict, Grid, LawBand | None]:
    """Everything ``fit --json`` reports for one sweep (one parameterization x optimizer x setting).

    ``width`` and ``lr`` are per-run values, or (sorted uniques, code per run) pairs;
    ``context`` holds single-valued columns (optim=adam) the theory comparison may use.
    """
    grid = build_grid(width, lr, loss)
    opt = locate_optima(grid.log2_lr, grid.loss, grid.present, opts.instability)
    avg = estimate_optima(grid.log2_lr, grid.loss, grid.std, grid.runs, opt.usable, grid.present, opt.found,
                          opt.best, opt.log2_lr_refined)
    notes: dict[str, list] = {k: [] for k in _NOTE_TEXT}
    records = _width_records(grid, opt, avg, opts.level, notes)
    warnings = [text.format(w=", ".join(str(v) for v in ws)).replace("width ", "widths " if len(ws) > 1 else "width ")
                for kind, text in _NOTE_TEXT.items() if (ws := notes[kind])]

    use = opt.found
    log2_opt = np.full(grid.widths.size, np.nan)
    log2_opt[avg.rows] = avg.v if opts.optimum == "refined" else np.take(grid.log2_lr, opt.best[avg.rows])
    pl = fit_power_law(grid.widths[use], 2.0 ** log2_opt[use])
    pl_obs = fit_power_law(grid.widths[use], grid.lrs[opt.best[use]])
    use_ms = use & ~opt.censored
    pl_ms = fit_power_law(grid.widths[use_ms], grid.lrs[opt.max_stable[use_ms]])
    if pl is None:
        warnings.append(f"the optimum was found at {int(use.sum())} width(s): no exponent can be fitted "
                        "(need two widths); the per-width optima are reported")

    boot = {}
    resampled = opts.bootstrap > 0 and pl is not None and has_repeats(grid)
    if resampled:
        advance = None if progress is None else progress(_label(key), opts.bootstrap)
        boot = _bootstrap(grid, avg, use_ms, opts, rng, advance)

    target = None if opts.target_width is None else float(np.log2(opts.target_width))
    line = law_intervals(avg, np.log2(grid.widths), target, opts.level) if pl is not None and opts.optimum == "refined" \
        else None

    def summary(fit: PowerLaw | None, kb: str, pb: str, mask: np.ndarray, gaps: tuple | None) -> dict:
        if fit is None:
            return {"exponent": None, "se": None, "ci": None, "ci_t": None, "ci_bootstrap": None, "ci_grid": None,
                    "constant": None, "predicted": None, "predicted_ci": None}
        ci_t, ci_b = fit.k_interval(opts.level), _percentile_ci(boot[kb], opts.level) if kb in boot else None
        ci_g = pi_g = None
        if gaps is not None:  # the LR grid's resolution (best-of-sweep and max stable LR)
            k_off, p_off = grid_offsets(np.log2(grid.widths[mask]), gaps[0][mask], gaps[1][mask], target)
            ci_g = (fit.k + k_off[0], fit.k + k_off[1])
            if p_off is not None:
                mid = fit.log2_c + fit.k * target
                pi_g = (2.0 ** (mid + p_off[0]), 2.0 ** (mid + p_off[1]))
        res = {"exponent": fit.k, "se": fit.k_se if np.isfinite(fit.k_se) else None,
               "ci": _envelope(ci_t, ci_b, ci_g), "ci_t": ci_t, "ci_bootstrap": ci_b, "ci_grid": ci_g,
               "constant": fit.c, "predicted": None, "predicted_ci": None}
        if opts.target_width is not None:
            pi_b = _percentile_ci(boot[pb], opts.level) if pb in boot else None
            pi_b = None if pi_b is None else (2.0 ** pi_b[0], 2.0 ** pi_b[1])
            res["predicted"] = fit.predict(opts.target_width)
            res["predicted_ci"] = _envelope(fit.predict_interval(opts.target_width, opts.level), pi_b, pi_g)
        return res

    below, above = _grid_gaps(grid, opt.best)
    _, ms_above = _grid_gaps(grid, opt.max_stable)
    observed_gaps = (-below / 2.0, above / 2.0) if opts.optimum == "observed" else None
    lr_fit = summary(pl, "k", "pred", use, observed_gaps)
    edges = [r["width"] for r in records if r.get("edge")]
    why_no_ci = "no noise level to measure"
    if line is not None:  # the refined optima: the small-sample interval replaces the envelope
        (k_est, k_ci), pred = line["k"], line["pred"]
        lr_fit.update(se=k_est.se, ci=k_ci if np.isfinite(k_ci).all() else None, dof=k_est.dof)
        if pred is not None:
            ci = _exp2_interval(*pred[1])
            lr_fit.update(predicted_ci=None if ci is None else tuple(ci), predicted_se_log2=pred[0].se)
        if edges:  # an optimum at the end of its sweep may lie anywhere beyond it: no honest interval
            why_no_ci = f"the optimum is at the edge of the sweep at width {', '.join(map(str, edges))}"
            lr_fit.update(se=None, ci=None, dof=None, predicted_ci=None, predicted_se_log2=None)
            warnings.append(f"no interval for k or the predicted LR: {why_no_ci}; extend the sweep there")
        elif avg.rows.size == 2:
            warnings.append("two widths: the interval for k assumes their optima lie on the power law "
                            "(a third width would test it)")
    ms_fit = summary(pl_ms, "k_ms", "pred_ms", use_ms, (np.zeros_like(ms_above), ms_above))
    transfer, verdict = transfer_verdict(lr_fit["exponent"], lr_fit["ci"], opts.transfer_tol, why_no_ci)
    if opts.scale_by == "depth":  # the same verdict about the depth axis (lr* ∝ L^k)
        verdict = verdict.replace("widths", "depths").replace("width", "depth").replace("n^", "L^")
        warnings = [w.replace("widths", "depths").replace("width", "depth") for w in warnings]
    law = fit_loss_law(grid.widths[use], opt.min_loss[use])
    interpretation, why_not = interpretation_for({**(context or {}), **key}, opts, lr_fit["exponent"], lr_fit["ci"])
    if why_not:
        warnings.append(why_not)
    return {
        "key": key, "label": _label(key), "runs": int(grid.runs.sum()),
        "widths": [r["width"] for r in records], "optima": records,
        "lr_exponent": lr_fit["exponent"], "lr_exponent_se": lr_fit["se"], "lr_exponent_ci": lr_fit["ci"],
        "lr_exponent_dof": lr_fit.get("dof"),
        "lr_exponent_ci_t": lr_fit["ci_t"], "lr_exponent_ci_bootstrap": lr_fit["ci_bootstrap"],
        "lr_exponent_ci_grid": lr_fit.get("ci_grid"),
        "lr_constant": lr_fit["constant"], "lr_exponent_observed": None if pl_obs is None else pl_obs.k,
        "optimum_method": opts.optimum, "optimum_model": _model_doc(avg, line),
        "max_stable_lr_exponent": ms_fit["exponent"], "max_stable_lr_exponent_ci": ms_fit["ci"],
        "max_stable_lr_constant": ms_fit["constant"],
        "transfer": transfer, "transfer_tol": opts.transfer_tol, "verdict": verdict,
        "lr_factor_per_doubling": None if pl is None else 2.0 ** pl.k,
        "target_width": opts.target_width,
        **({"predicted_lr": lr_fit["predicted"], "predicted_lr_ci": lr_fit["predicted_ci"],
            "predicted_lr_se_log2": lr_fit.get("predicted_se_log2"),
            "predicted_max_stable_lr": ms_fit["predicted"], "predicted_max_stable_lr_ci": ms_fit["predicted_ci"]}
           if opts.target_width is not None else {}),
        "loss_law": None if law is None else {
            "E": law.e, "A": law.a, "alpha": law.alpha,
            "predicted_loss": None if opts.target_width is None else law.predict(opts.target_width)},
        "interpretation": interpretation,
        "bootstrap": {"reps": opts.bootstrap if resampled else 0, "resampled": "seeds" if resampled else None,
                      "level": opts.level, "in_interval": opts.optimum == "observed"},
        "warnings": warnings,
    }, grid, None if line is None else line["band"]


def _model_doc(avg: Averaged, line: dict | None) -> dict:
    """How the per-width optima were located (fit_bowl), for the JSON document."""
    return {"shapes": {s: float(w) for s, w in zip(avg.shapes, avg.weights)},
            "shape_parameters": {s: [float(x) for x in p] for s, p in zip(avg.shapes, avg.p)},
            "window_octaves": WINDOW, "noise_from": avg.noise_from,
            "noise_dof": None if not np.isfinite(avg.dof).all() else float(avg.weights @ avg.dof),
            "widths_located": int(avg.fitted.sum()),
            "between_width_sd": None if line is None else line["tau"]}


def _label(key: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items()) or "all runs"


# --------------------------------------------------------------------------- whole file


@dataclass
class FitResult:
    doc: dict  # the --json document
    grids: list[Grid]  # one per group, for plotting
    bands: list[LawBand | None] = field(default_factory=list)  # one per group: the law's interval, for plotting


def fit_sweep(path: str, opts: FitOptions, progress: Progress | None = None) -> FitResult:
    """Fit the sweep table at ``path``; ``.doc`` is the ``scaleadvise fit --json`` document."""
    if opts.optimum not in ("refined", "observed"):
        raise UserError(f"--optimum: {opts.optimum!r} is not 'refined' or 'observed'")
    if opts.setting:
        from scaleadvise.analysis.fit_interpret import parse_setting

        parse_setting(opts.setting)
    check_theory_flags(opts)
    runs, groups, warnings, info = load_runs(path, opts)
    results, grids, bands = [], [], []
    order = np.argsort(runs.group, kind="stable") if groups else None
    bounds = np.searchsorted(runs.group[order], np.arange(len(runs.keys) + 1)) if groups else [0, runs.group.size]
    for gi, key in enumerate(runs.keys):
        rows = order[bounds[gi]:bounds[gi + 1]] if groups else slice(None)
        if groups and rows.size == 0:  # every row of this group was after --step
            warnings.append(f"{_label(key)}: no runs at or before step {opts.step}; left out")
            continue
        rng = np.random.default_rng([opts.seed, gi])
        res, grid, band = analyze_group(key, (runs.widths, runs.width[rows], runs.complete),
                                  (runs.lrs, runs.lr[rows], runs.complete), runs.loss[rows], opts, rng, progress,
                                  context=info["context"])
        results.append(res)
        grids.append(grid)
        bands.append(band)
        prefix = f"{res['label']}: " if groups else ""
        warnings += [prefix + w for w in res["warnings"]]
    doc = {"file": str(path), **info, "group_by": groups, "target_width": opts.target_width,
           "groups": results, "warnings": warnings}
    return FitResult(doc=doc, grids=grids, bands=bands)
