"""`scaleadvise check` and `scaleadvise equiv`: the theory engine, directly."""

from typing import Annotated, Optional

import typer
from rich.table import Table

from scaleadvise.cli.app import app
from scaleadvise.cli.common import ALIGN_HELP, OMEGA_READOUT_HELP, OPTIM_HELP, PARAM_HELP, power
from scaleadvise.cli.render import console, print_json

CHECK_EXAMPLES = """
Examples:

  scaleadvise check --a 0,0,0 --b 0,0.5,0.5 --c 0,1,1 --optim adam --alignment 0.8,0.5,0.8

  scaleadvise check --a 0,0,0 --b 0,0.5,0.5 --c 0,0,0 --optim adam --json     # global LR, SP: unstable

  scaleadvise check --a 0,0,0 --b 0,0.5,0.5 --c -0.5,0.5,1 --optim sgd --alignment yang-hu
"""

EQUIV_EXAMPLES = """
Examples:

  scaleadvise equiv --param mfp --to-form mup --optim adam

  scaleadvise equiv --param mup --to-form alpha1 --optim sgd       # the cheat sheet's multiplier-1 form

  scaleadvise equiv --param stp --to-form mup --optim adam          # not equivalent: readout differs

  scaleadvise equiv --param ntk --theta 0,-0.5,-0.5 --optim adafactor
"""


@app.command(epilog=CHECK_EXAMPLES)
def check(
    a: Annotated[str, typer.Option("--a", help="Multiplier exponents EMB,HIDDEN,READOUT (multiplier n^-a).")],
    b: Annotated[str, typer.Option("--b", help="Init exponents EMB,HIDDEN,READOUT (std n^-b).")],
    c: Annotated[str, typer.Option("--c", help="LR exponents EMB,HIDDEN,READOUT (LR n^-c).")],
    optim: Annotated[str, typer.Option("--optim", "-o", help=OPTIM_HELP)] = "adam",
    alignment: Annotated[str, typer.Option(help=ALIGN_HELP)] = "full",
    omega_readout: Annotated[Optional[float], typer.Option(help=OMEGA_READOUT_HELP)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Check an (a, b, c) against every constraint of Table 2 / B1 and say what breaks."""
    from scaleadvise.parameterizations import parse_triple
    from scaleadvise.theory import evaluate, max_stable_lr_exponents, parse_alignment

    A, B, C = parse_triple(a, "--a"), parse_triple(b, "--b"), parse_triple(c, "--c")
    al = parse_alignment(alignment, omega_readout)
    v = evaluate(A, B, C, optim, al)
    best = max_stable_lr_exponents(A, B, optim, al)
    doc = {
        "optimizer": optim, "optimizer_family": v.family.value, "alignment": al.as_dict(),
        "a": A, "b": B, "c": C, "g": v.g, "g_train": v.g_train, "r": v.r, "logit_terms": v.logit_terms,
        "stable": v.stable, "nontrivial": v.nontrivial, "feature_learning": v.feature_learning,
        "constraints": [{"layer": k.layer, "name": k.name, "expression": k.expression, "value": k.value,
                         "satisfied": k.satisfied, "shortfall": k.shortfall} for k in v.constraints],
        "violations": [{"layer": k.layer, "name": k.name, "expression": k.expression, "shortfall": k.shortfall}
                       for k in v.violations],
        "max_stable_c": best.c, "notes": best.notes,
    }
    if json_out:
        print_json(doc)
        return
    table = Table(title=f"Constraints ({v.family.value} family, alpha={al.alpha:g} omega={al.omega:g} u={al.u:g}, "
                        f"omega_readout={al.at('readout')[1]:g})")
    for col in ("layer", "constraint", "value", "holds"):
        table.add_column(col)
    for k in v.constraints:
        table.add_row(k.layer, f"{k.name}: {k.expression}", f"{k.value:+.4g}",
                      "[green]yes[/]" if k.satisfied else f"[red]NO (short by {k.shortfall:g})[/]")
    console.print(table)
    console.print("residuals r_l (negative exponent of Δz_l): " + ", ".join(f"{x:g}" for x in v.r))
    console.print("gradient g at init: " + ", ".join(f"{t} {power(x)}" for t, x in v.g.items()))
    console.print(" ".join(f"{k}={'yes' if doc[k] else 'NO'}" for k in ("stable", "nontrivial", "feature_learning")))
    console.print("maximal stable LR for these a, b: " + ", ".join(f"{t} {power(x)}" for t, x in best.c.items())
                  + "  (c = " + ", ".join(f"{x:g}" for x in best.c.values()) + ")")
    for note in best.notes:
        console.print(f"[yellow]note[/]: {note}")


@app.command(epilog=EQUIV_EXAMPLES)
def equiv(
    param: Annotated[str, typer.Option("--param", "-p", help=PARAM_HELP)],
    optim: Annotated[str, typer.Option("--optim", "-o", help=OPTIM_HELP)] = "adam",
    to_form: Annotated[Optional[str], typer.Option(help="A parameterization to express --param in, or 'alpha1' (multipliers 1, the cheat sheet's form) or 'unit-init' (b = 0).")] = None,
    theta: Annotated[Optional[str], typer.Option(help="Shift by theta per layer type, EMB,HIDDEN,READOUT (a += θ, b -= θ).")] = None,
    alignment: Annotated[str, typer.Option(help=ALIGN_HELP)] = "full",
    omega_readout: Annotated[Optional[float], typer.Option(help=OMEGA_READOUT_HELP)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Move a parameterization along its abc-symmetry orbit (§3.2, B.2).

    a += θ, b -= θ keeps the forward pass; the LR exponent moves by c -= 2θ (SGD),
    θ (Adam) or 0 (Adafactor) to keep every training step the same.
    """
    from scaleadvise.errors import UserError
    from scaleadvise.parameterizations import get_parameterization, parse_triple
    from scaleadvise.theory import LAYER_TYPES, LR_SHIFT, abc_shift, equivalence_theta, max_stable_lr_exponents, optimizer_family, parse_alignment

    al = parse_alignment(alignment, omega_readout)
    src = get_parameterization(param)

    def abc(p):  # (a, b, c) with the theory's c (and the parameterization's own LR offsets)
        sol = max_stable_lr_exponents(p.a, p.b, optim, al)
        return p.a, p.b, {t: sol.c[t] + p.c_offset[t] for t in LAYER_TYPES}

    a0, b0, c0 = abc(src)
    target_name, equivalent = None, None
    if theta is not None and to_form is not None:
        raise UserError("give either --to-form or --theta, not both")
    if theta is not None:
        th = parse_triple(theta, "--theta")
    elif to_form is None:
        raise UserError("equiv needs --to-form PARAM|alpha1|unit-init or --theta EMB,HIDDEN,READOUT")
    elif to_form.strip().lower() in ("alpha1", "alpha=1", "cheat-sheet", "unit-multiplier"):
        th, target_name = {t: -a0[t] for t in LAYER_TYPES}, "alpha1 (multiplier 1)"
    elif to_form.strip().lower() in ("unit-init", "b0"):
        th, target_name = {t: b0[t] for t in LAYER_TYPES}, "unit-init (b = 0)"
    else:
        dst = get_parameterization(to_form)
        target_name = dst.name
        found = equivalence_theta((a0, b0, c0), abc(dst), optim)
        equivalent = found is not None
        th = found if found is not None else {t: dst.a[t] - a0[t] for t in LAYER_TYPES}
    a1, b1, c1 = abc_shift(a0, b0, c0, th, optim)
    k = LR_SHIFT[optimizer_family(optim)]
    doc = {"param": src.name, "optimizer": optim, "lr_shift_per_theta": k, "theta": th, "target": target_name,
           "equivalent": equivalent, "from": {"a": a0, "b": b0, "c": c0}, "to": {"a": a1, "b": b1, "c": c1}}
    if json_out:
        print_json(doc)
        return
    table = Table(title=f"{src.name} -> {target_name or 'shifted'} under {optim} (c -= {k:g}·θ)")
    for col in ("layer", "θ", "multiplier", "init std", "LR", "→ multiplier", "→ init std", "→ LR"):
        table.add_column(col)
    for t in LAYER_TYPES:
        table.add_row(t, f"{th[t]:+g}", power(a0[t]), power(b0[t]), power(c0[t]), power(a1[t]), power(b1[t]), power(c1[t]))
    console.print(table)
    if equivalent is True:
        console.print(f"[green]{src.name} and {target_name} are equivalent under {optim}[/]: the same network and "
                      "the same training trajectory in exact arithmetic (finite precision can still differ, §3.2)")
    elif equivalent is False:
        dst = get_parameterization(to_form)  # type: ignore[arg-type]
        diff = [t for t in LAYER_TYPES if abs(a0[t] + b0[t] - dst.a[t] - dst.b[t]) > 1e-9]
        why = (f"a+b differs on {', '.join(diff)} (a shift keeps a+b)" if diff
               else "their LR exponents do not differ by the optimizer's shift")
        console.print(f"[red]{src.name} and {target_name} are not equivalent under {optim}[/]: {why}; "
                      "the table shows src moved to the target's multipliers")
