"""`scaleadvise check` and `scaleadvise equiv`: the theory engine, directly."""

from typing import Annotated, Optional

import typer
from rich.table import Table

from scaleadvise.cli.app import app
from scaleadvise.cli.common import (
    OPTIM_HELP, PARAM_HELP, alignment_text, AlignmentOpt, OmegaReadoutOpt, power,
)
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

  scaleadvise equiv --param stp --to-form ntk --optim adam --width 256 --base-width 64 --constants-out ntk.yaml

  scaleadvise equiv --param mup --to-form mfp --optim adam-atan2 --width 256 --base-width 64 --prescription-out mfp.json
"""


@app.command(epilog=CHECK_EXAMPLES)
def check(
    a: Annotated[str, typer.Option("--a", help="Multiplier exponents EMB,HIDDEN,READOUT (multiplier n^-a).")],
    b: Annotated[str, typer.Option("--b", help="Init exponents EMB,HIDDEN,READOUT (std n^-b).")],
    c: Annotated[str, typer.Option("--c", help="LR exponents EMB,HIDDEN,READOUT (LR n^-c).")],
    optim: Annotated[str, typer.Option("--optim", "-o", help=OPTIM_HELP)] = "adam",
    alignment: AlignmentOpt = None,
    omega_readout: OmegaReadoutOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Check an (a, b, c) against every constraint of Table 2 / B1 and say what breaks."""
    from scaleadvise.core.parameterizations import parse_triple
    from scaleadvise.core.alignment import resolve_alignment
    from scaleadvise.core.optimizers import optimizer_family
    from scaleadvise.core.theory import evaluate, max_stable_lr_exponents

    A, B, C = parse_triple(a, "a"), parse_triple(b, "b"), parse_triple(c, "c")
    al, al_source = resolve_alignment(alignment, optimizer_family(optim), omega_readout)
    v = evaluate(A, B, C, optim, al)
    best = max_stable_lr_exponents(A, B, optim, al)
    doc = {
        "optimizer": optim, "optimizer_family": v.family.value, "alignment": al.as_dict(),
        "alignment_source": al_source,
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
    table = Table(title=f"Constraints ({v.family.value} family, {alignment_text(al.as_dict())})")
    for col in ("layer", "constraint", "value", "holds"):
        table.add_column(col)
    for k in v.constraints:
        table.add_row(k.layer, f"{k.name}: {k.expression}", f"{k.value:+.4g}",
                      "[green]yes[/]" if k.satisfied else f"[red]NO (short by {k.shortfall:g})[/]")
    console.print(table)
    console.print(f"alignment: {al_source}")
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
    alignment: AlignmentOpt = None,
    omega_readout: OmegaReadoutOpt = None,
    width: Annotated[Optional[int], typer.Option("--width", "-w", help="Also give the target's absolute constants at this width: the gammas (and init stds) that make it the *same* network as --param with --base-lr/--constants.")] = None,
    base_width: Annotated[int, typer.Option(help="Base width b of both prescriptions (lr = base_lr·γ·(n/b)^-c).")] = 1024,
    base_lr: Annotated[float, typer.Option(help="Base LR of --param (the target keeps it; its γ absorbs the shift).")] = 1e-3,
    constants: Annotated[str, typer.Option(help="LR constants γ of --param: default (all 1), paper (Table C3) or a YAML file.")] = "default",
    model: Annotated[str, typer.Option("--model", "-m", help="Model whose tensors are compared (nanodo, gpt2, llama, mlp or a YAML).")] = "nanodo",
    depth: Annotated[Optional[int], typer.Option(help="With --width: blocks of the model (NanoDO: 8).")] = None,
    head_dim: Annotated[Optional[int], typer.Option(help="With --width: head dimension of the model (NanoDO: 128).")] = None,
    constants_out: Annotated[Optional[str], typer.Option(help="With --width: write the target's equivalent γ as a constants YAML (prescribe/emit-train --constants).")] = None,
    prescription_out: Annotated[Optional[str], typer.Option(help="With --width: write the target's prescription JSON with the equivalent γ and init stds (train.py --prescription).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Move a parameterization along its abc-symmetry orbit (§3.2, B.2).

    a += θ, b -= θ keeps the forward pass; the LR exponent moves by c -= 2θ (SGD),
    θ (Adam) or 0 (Adafactor) to keep every training step the same. With --width,
    also the target's constants: per tensor, multiplier × init std and
    multiplier^k × LR (k = 2, 1, 0) must equal the source's, so the target's γ is
    the source's times b^(kθ) (b the base width), and the init constant moves by the
    same multiplier ratio.
    """
    from scaleadvise.errors import UserError
    from scaleadvise.core.parameterizations import custom_parameterization, get_parameterization, parse_triple
    from scaleadvise.core.symmetry import abc_shift, equivalence_theta
    from scaleadvise.core.alignment import resolve_alignment
    from scaleadvise.core.classify import LAYER_TYPES
    from scaleadvise.core.optimizers import optimizer_family
    from scaleadvise.core.equivalence import equivalent_constants
    import os

    from scaleadvise.core.files import check_output_path
    from scaleadvise.core.theory import LR_SHIFT, max_stable_lr_exponents

    outputs = {name: path for name, path in (("constants_out", constants_out), ("prescription_out", prescription_out))
               if path is not None}
    if outputs and width is None:
        given = " and ".join("--" + name.replace("_", "-") for name in outputs)
        raise UserError(f"{given} {'need' if len(outputs) > 1 else 'needs'} --width (the constants are absolute)")
    if len(outputs) == 2 and os.path.abspath(constants_out) == os.path.abspath(prescription_out):  # type: ignore[arg-type]
        raise UserError("--constants-out and --prescription-out name the same file")
    for name, path in outputs.items():  # before any work: nothing is written unless both can be
        check_output_path(path, name)
    al, al_source = resolve_alignment(alignment, optimizer_family(optim), omega_readout)
    src = get_parameterization(param)

    def abc(p):  # (a, b, c) with the theory's c (and the parameterization's own LR offsets)
        sol = max_stable_lr_exponents(p.a, p.b, optim, al)
        return p.a, p.b, {t: sol.c[t] + p.c_offset[t] for t in LAYER_TYPES}

    a0, b0, c0 = abc(src)
    target_name, equivalent = None, None
    if theta is not None and to_form is not None:
        raise UserError("give either --to-form or --theta, not both")
    if theta is not None:
        th = parse_triple(theta, "theta")
    elif to_form is None:
        raise UserError("equiv needs --to-form PARAM|alpha1|unit-init or --theta EMB,HIDDEN,READOUT")
    elif to_form.strip().lower() in ("alpha1", "alpha=1", "cheat-sheet", "unit-multiplier"):
        th, target_name = {t: -a0[t] for t in LAYER_TYPES}, "alpha1 (multiplier 1)"
    elif to_form.strip().lower() in ("unit-init", "b0"):
        th, target_name = {t: b0[t] for t in LAYER_TYPES}, "unit-init (b = 0)"
    else:
        dst = get_parameterization(to_form, "to_form")
        target_name = dst.name  # (dst is used again below, with --width)
        found = equivalence_theta((a0, b0, c0), abc(dst), optim)
        equivalent = found is not None
        th = found if found is not None else {t: dst.a[t] - a0[t] for t in LAYER_TYPES}
    a1, b1, c1 = abc_shift(a0, b0, c0, th, optim)
    k = LR_SHIFT[optimizer_family(optim)]
    doc = {"param": src.name, "optimizer": optim, "lr_shift_per_theta": k, "theta": th, "target": target_name,
           "equivalent": equivalent, "from": {"a": a0, "b": b0, "c": c0}, "to": {"a": a1, "b": b1, "c": c1}}
    dst_doc = None
    if width is not None:
        if equivalent is False:
            raise UserError(f"--width: {src.name} and {target_name} are not equivalent under {optim}, so no "
                            f"constants make them the same network; drop --width, or use --theta to move {src.name}")
        dst_param = dst if equivalent else custom_parameterization(a1, b1, src.attention_scale,
                                                                        name=target_name or "shifted")
        common = {"optim": optim, "width": width, "base_width": base_width, "base_lr": base_lr,
                  "alignment": alignment, "omega_readout": omega_readout, "model": model, "depth": depth,
                  "head_dim": head_dim}
        doc["at_width"], dst_doc = equivalent_constants(param, constants, dst_param, k, common)
    if outputs:
        _write_outputs(outputs, doc, dst_doc, f"{target_name} the same network as {src.name} (base width {base_width})")
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
    if "at_width" in doc:
        _print_at_width(doc["at_width"], src.name, target_name or "shifted")


def _write_outputs(outputs: dict[str, str], doc: dict, dst_doc: dict | None, what: str) -> None:
    """--constants-out (a constants YAML) and --prescription-out (the target's prescription
    JSON), each written atomically; both temp files are complete before either is renamed."""
    import json
    from contextlib import ExitStack
    from pathlib import Path

    import yaml

    from scaleadvise.core.files import atomic_output

    text = {"constants_out": f"# scaleadvise equiv: LR constants gamma making {what}\n"
                             + yaml.safe_dump(doc["at_width"]["constants_to"], sort_keys=False),
            "prescription_out": json.dumps(dst_doc, indent=1) + "\n"}
    with ExitStack() as stack:
        for name, path in outputs.items():
            Path(stack.enter_context(atomic_output(path, name))).write_text(text[name], encoding="utf-8")


def _print_at_width(w: dict, src: str, dst: str) -> None:
    from scaleadvise.cli.common import fmt

    table = Table(title=f"{dst} as the same network as {src} at width {w['width']} "
                        f"(base width {w['base_width']}, base LR {fmt(w['base_lr'])})")
    for col in ("layer", "θ", f"γ {src}", f"γ {dst}", "ratio", f"LR {src}", f"LR {dst}"):
        table.add_column(col)
    for t, x in w["layers"].items():
        table.add_row(t, f"{x['theta']:+g}", fmt(x["gamma_from"]), fmt(x["gamma_to"]), fmt(x["gamma_ratio"]),
                      fmt(x["lr_from"]), fmt(x["lr_to"]))
    console.print(table)
    if not all(x["width_independent"] for x in w["layers"].values()):
        console.print("[yellow]note[/]: the LR exponents do not differ by exactly kθ: these γ hold at this width only")
    import re

    rows = {r["name"]: r for r in w["tensors"]}

    def folded(names: list[str]) -> dict[str, str]:  # blocks.0.mlp.down, blocks.1.mlp.down -> blocks.*.mlp.down
        return {re.sub(r"^blocks\.\d+\.", "blocks.*.", n): n for n in reversed(names)}

    for shown, name in reversed(folded(w["lr_not_expressible"]).items()):
        console.print(f"[yellow]not exact[/]: {shown} needs {fmt(rows[name]['lr_factor'])}× its layer's LR "
                      f"(its multiplier ratio {fmt(rows[name]['multiplier_ratio'])} is not its layer's): "
                      "one LR per layer type cannot make it the same network")
    for shown, name in reversed(folded(w["init_changed"]).items()):
        console.print(f"[yellow]init[/]: {shown} needs init std {fmt(rows[name]['init_std_to'])} "
                      f"({fmt(rows[name]['init_factor'])}× {dst}'s own): use --prescription-out")
    if w["eps_note"]:
        console.print(f"[yellow]epsilon[/]: {w['eps_note']}")
    if w["exact"]:
        console.print(f"[green]exact[/]: every tensor's multiplier × init and multiplier^k × LR equal {src}'s")
