"""Gradient tables for `scaleadvise epsilon`: one LayerSamples per layer, rows labelled by run.

What grads.csv holds (docs/CONTRACTS.md: width, layer, grad_rms, optional sqrt_v_rms, step; the
emitted script adds seed, the run identifier, and the probe's first-order decrease terms
decrease, decrease_no_eps and eps, see ``templates.probes.gradient_scales``), loaded with
row-precise errors. numpy/pandas only through ``scaleadvise.analysis.tables``.
"""

import math
from dataclasses import dataclass, field
from typing import Mapping

from scaleadvise.core.model import layer_type_of
from scaleadvise.errors import UserError


@dataclass
class LayerSamples:
    """Every measurement of one layer (tensor name or layer type), one entry per row.

    ``run`` labels the training run a row came from (the unit of replication: its
    checkpoints are not independent). From a table it is the row's (seed, run) cells,
    with the width added by the fits, so every width × seed is one run; rows with
    neither column are one run per width. ``decrease``/``decrease_no_eps``/``eps_used``
    are the probe's first-order decrease terms (``templates.probes.gradient_scales``).
    """

    name: str
    layer_type: str
    widths: list[float] = field(default_factory=list)
    grad_rms: list[float] = field(default_factory=list)
    sqrt_v_rms: list[float | None] = field(default_factory=list)
    run: list[object] = field(default_factory=list)
    step: list[float | None] = field(default_factory=list)
    decrease: list[float | None] = field(default_factory=list)
    decrease_no_eps: list[float | None] = field(default_factory=list)
    eps_used: list[float | None] = field(default_factory=list)

    def add(self, width: float, grad_rms: float, sqrt_v_rms: float | None = None, run: object = None,
            step: float | None = None) -> None:
        """One row; run=None makes it a run of its own (an independent measurement)."""
        self.widths.append(width)
        self.grad_rms.append(grad_rms)
        self.sqrt_v_rms.append(sqrt_v_rms)
        self.run.append(("row", len(self.widths)) if run is None else run)
        self.step.append(step)
        self.decrease.append(None)
        self.decrease_no_eps.append(None)
        self.eps_used.append(None)

    @property
    def scale_column(self) -> str:
        """sqrt_v_rms when every row has it (it is what eps is added to), else grad_rms."""
        have = self.sqrt_v_rms and all(v is not None for v in self.sqrt_v_rms)
        return "sqrt_v_rms" if have else "grad_rms"

    @property
    def scale(self) -> list[float]:
        return list(self.sqrt_v_rms) if self.scale_column == "sqrt_v_rms" else list(self.grad_rms)  # type: ignore[arg-type]

    def n_runs(self) -> int:
        return len({(w, r) for w, r in zip(self.widths, self.run)})

    def early_rows(self, early_step: float | None = None) -> list[int] | None:
        """Rows where the theory's g applies: each run's earliest logged step (B.7: g is the
        gradient at initialisation; step 1 of the emitted script is the gradient at W_0),
        or every step <= ``early_step``. None when the rows carry no step."""
        if not self.step or any(t is None for t in self.step):
            return None
        if early_step is not None:
            return [i for i, t in enumerate(self.step) if t <= early_step]
        first: dict[object, float] = {}
        for w, r, t in zip(self.widths, self.run, self.step):
            first[(w, r)] = min(t, first.get((w, r), math.inf))  # type: ignore[arg-type]
        return [i for i, (w, r, t) in enumerate(zip(self.widths, self.run, self.step)) if t == first[(w, r)]]


def gradient_columns() -> list:
    from scaleadvise.analysis.tables import Column

    return [
        Column("width", ("d_model", "model_dim", "n", "dim"), positive=True),
        Column("layer", ("tensor", "name", "param", "parameter"), numeric=False),
        Column("grad_rms", ("grad", "grad_norm_rms", "gradient_rms"), positive=True),
        # Missing cells mean "not measured" (e.g. SGD rows); that layer falls back to grad_rms.
        Column("sqrt_v_rms", ("sqrtv_rms", "sqrt_v", "v_sqrt_rms"), required=False, positive=True,
               allow_nonfinite=True),
        Column("step", ("iteration", "iter"), required=False),
        Column("seed", (), required=False, numeric=False),
        Column("run", ("run_id",), required=False, numeric=False),
        # The probe's first-order decrease terms (may be <= 0 at a step; empty for SGD).
        Column("decrease", (), required=False, allow_nonfinite=True),
        Column("decrease_no_eps", (), required=False, allow_nonfinite=True),
        Column("eps", ("epsilon",), required=False, positive=True, allow_nonfinite=True),
    ]


def _run_labels(frame) -> list[object]:
    """(seed, run) per row, whichever the table has; () for every row when it has neither."""
    cols = [c for c in ("seed", "run") if c in frame.columns]
    if not cols:
        return [()] * len(frame)
    cells = [frame[c].map(lambda x: "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x).strip())
             for c in cols]
    return list(zip(*(c.tolist() for c in cells)))


def load_gradients(path: str, overrides: Mapping[str, str | None] | None = None) -> dict[str, LayerSamples]:
    """Read a gradient table (docs/CONTRACTS.md: width, layer, grad_rms, optional sqrt_v_rms, step;
    optional seed/run, the run identifier, and decrease, decrease_no_eps, eps)."""
    import numpy as np

    from scaleadvise.analysis.tables import read_table

    table = read_table(path, gradient_columns(), overrides)
    frame = table.frame
    n = len(frame)
    for col in ("sqrt_v_rms", "decrease", "decrease_no_eps", "eps"):
        if col in frame.columns:
            inf = np.isinf(frame[col].to_numpy(dtype=float))
            if inf.any():
                i = int(np.flatnonzero(inf)[0])
                raise UserError(f"{path}: line {i + 2}, column {col!r}: {frame[col].iloc[i]} is not finite")
    if ("decrease" in frame.columns) != ("decrease_no_eps" in frame.columns):
        have, miss = ("decrease", "decrease_no_eps") if "decrease" in frame.columns else ("decrease_no_eps", "decrease")
        raise UserError(f"{path}: column {have!r} needs its partner {miss!r} (the first-order decrease with and "
                        f"without eps, from the emitted script's grads.csv)")
    names = frame["layer"].map(lambda x: "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x).strip())
    empty = (names == "").to_numpy()
    if empty.any():
        raise UserError(f"{path}: line {int(np.flatnonzero(empty)[0]) + 2}, column 'layer': empty layer name")
    runs = _run_labels(frame)

    def column(name: str) -> list[float | None]:
        if name not in frame.columns:
            return [None] * n
        return [None if math.isnan(x) else x for x in frame[name].to_numpy(dtype=float).tolist()]

    sqrt_v, dec, dec0, eps = column("sqrt_v_rms"), column("decrease"), column("decrease_no_eps"), column("eps")
    step = column("step")
    layers: dict[str, LayerSamples] = {}
    for name, rows in names.groupby(names, sort=False).indices.items():
        where = f"{path}: line {int(rows[0]) + 2}, column 'layer'"
        s = layers[name] = LayerSamples(name, layer_type_of(name, where))
        s.widths = frame["width"].to_numpy()[rows].tolist()
        s.grad_rms = frame["grad_rms"].to_numpy()[rows].tolist()
        for src, dst in ((sqrt_v, s.sqrt_v_rms), (runs, s.run), (step, s.step), (dec, s.decrease),
                         (dec0, s.decrease_no_eps), (eps, s.eps_used)):
            dst.extend(src[i] for i in rows)
    return layers


def pooled_runs_note(samples: Mapping[str, LayerSamples]) -> str | None:
    """A note when rows repeat (width, step, layer) with nothing to tell their runs apart."""
    for s in samples.values():
        if not s.run or s.run[0] != () or any(t is None for t in s.step):
            continue
        keys = list(zip(s.widths, s.step))
        if len(set(keys)) < len(keys):
            return (f"layer {s.name!r} has several rows at one (width, step) and no seed or run column: they are "
                    f"pooled as one run per width (the conservative reading); add a seed column to count the runs")
    return None
