"""`scaleadvise prescribe`: every per-layer hyperparameter at a target width."""

import re
import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from scaleadvise.cli.app import app
from scaleadvise.cli.common import (
    OPTIM_HELP, PARAM_HELP, alignment_text, AlignmentOpt, BaseEpsOpt, BaseLrOpt, BaseWidthOpt, ConstantsOpt, EpsOpt, fmt, OmegaReadoutOpt, power,
    BaseDepthOpt, DepthParamOpt, TokensPerStepOpt, WdConventionOpt, WdTimescaleOpt, WdVectorsOpt, WeightDecayOpt,
)
from scaleadvise.cli.render import print_json, print_yaml

if TYPE_CHECKING:  # rich's console and tables load only for human output, not for --json
    from rich.table import Table

    from scaleadvise.core.prescription import Prescription, TensorValues

EXAMPLES = """
Examples:

  scaleadvise prescribe --param stp --optim adam --width 16384

  scaleadvise prescribe --param mup --optim sgd --width 4096 --alignment none --model nanodo --json

  scaleadvise prescribe --param mfp --optim adam --width 8192 --eps per-layer --base-eps 1e-9

  scaleadvise prescribe --param custom --a 0,0.5,0.5 --b 0,0,0 --optim adam --width 2048

  scaleadvise prescribe --param stp --optim adam --width 4096 --constants paper --base-lr 2e-4

  scaleadvise prescribe --param mup --optim adamw --width 4096 --base-width 256 --depth 32 --base-depth 8 --depth-param completep --eps per-layer

  scaleadvise prescribe --param mup --optim adamw --width 4096 --weight-decay 1e-4 --wd-convention torch

  scaleadvise prescribe --optim adamw --wd-timescale 2e9tokens --tokens-per-step 524288
"""


def _eps_arg(value: Optional[str]) -> float | str | None:
    from scaleadvise.errors import UserError

    if value is None:
        return None
    if value.strip().lower() in ("per-layer", "perlayer", "per_layer"):
        return "per-layer"
    try:
        return float(value)
    except ValueError:
        raise UserError(f"expected a number or 'per-layer', got {value!r}", "eps") from None


@app.command(epilog=EXAMPLES)
def prescribe(
    param: Annotated[str, typer.Option("--param", "-p", help=PARAM_HELP)] = "stp",
    optim: Annotated[str, typer.Option("--optim", "-o", help=OPTIM_HELP)] = "adam",
    width: Annotated[int, typer.Option("--width", "-w", help="Target width n (d_model).")] = 16384,
    base_width: BaseWidthOpt = 1024,
    base_lr: BaseLrOpt = 1e-3,
    alignment: AlignmentOpt = None,
    omega_readout: OmegaReadoutOpt = None,
    constants: ConstantsOpt = "default",
    eps: EpsOpt = None,
    base_eps: BaseEpsOpt = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model preset (nanodo, gpt2, llama, mlp) or a YAML file.")] = "nanodo",
    depth: Annotated[Optional[int], typer.Option(help="Override the model's depth (the target depth L with --depth-param).")] = None,
    heads: Annotated[Optional[int], typer.Option(help="Number of heads (sets head_dim = width / heads).")] = None,
    head_dim: Annotated[Optional[int], typer.Option(help="Override the head dimension.")] = None,
    context: Annotated[Optional[int], typer.Option(help="Override the context length.")] = None,
    vocab: Annotated[Optional[int], typer.Option(help="Override the vocabulary size.")] = None,
    a: Annotated[Optional[str], typer.Option("--a", help="--param custom: a per layer type, EMB,HIDDEN,READOUT.")] = None,
    b: Annotated[Optional[str], typer.Option("--b", help="--param custom: b per layer type, EMB,HIDDEN,READOUT.")] = None,
    custom_file: Annotated[Optional[str], typer.Option(help="--param custom: YAML with a/b per layer type.")] = None,
    depth_param: DepthParamOpt = "none",
    base_depth: BaseDepthOpt = None,
    weight_decay: WeightDecayOpt = None,
    wd_timescale: WdTimescaleOpt = None,
    wd_convention: WdConventionOpt = None,
    tokens_per_step: TokensPerStepOpt = None,
    wd_vectors: WdVectorsOpt = False,
    sgd_readout: Annotated[str, typer.Option(help="SGD readout LR: 'preserve' (Table 1: largest that keeps other layers' LRs) or 'max'.")] = "preserve",
    tensors: Annotated[bool, typer.Option("--tensors/--no-tensors", help="List every tensor (human output).")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the prescription as JSON (fields: docs/CONTRACTS.md).")] = False,
    yaml_out: Annotated[bool, typer.Option("--yaml", help="Print the prescription as YAML.")] = False,
) -> None:
    """Prescribe init std, multiplier, learning rate and epsilon for every layer at --width.

    Exponents are derived from the stability and nontriviality constraints of
    Everett et al. (2024), Table 2 / Appendix B, for the chosen optimizer and
    alignment; absolute values use base_lr at --base-width and the constants gamma.
    """
    from scaleadvise.errors import UserError
    from scaleadvise.core.parameterizations import custom_parameterization, load_custom, parse_triple
    from scaleadvise.core.prescribe import PrescribeRequest
    from scaleadvise.core.prescribe import prescribe as run

    custom = None
    if param.strip().lower() == "custom":
        if custom_file:
            custom = load_custom(custom_file)
        elif a and b:
            custom = custom_parameterization(parse_triple(a, "a"), parse_triple(b, "b"))
        elif a or b:
            raise UserError(f"--param custom needs both --a and --b (EMB,HIDDEN,READOUT); "
                            f"{'--b' if a else '--a'} is missing")
        else:
            raise UserError("--param custom needs --a and --b (EMB,HIDDEN,READOUT) or --custom-file")
    elif a or b or custom_file:
        given = "/".join(flag for flag, v in (("--a", a), ("--b", b), ("--custom-file", custom_file)) if v)
        raise UserError(f"{given} only apply with --param custom (got --param {param})")
    req = PrescribeRequest(
        param=param, optim=optim, width=width, base_width=base_width, base_lr=base_lr, alignment=alignment,
        omega_readout=omega_readout, constants=constants, eps=_eps_arg(eps), base_eps=base_eps, model=model,
        depth=depth, heads=heads, head_dim=head_dim, context=context, vocab=vocab, custom=custom,
        sgd_readout=sgd_readout,  # type: ignore[arg-type]
        depth_param=depth_param, base_depth=base_depth, weight_decay=weight_decay, wd_timescale=wd_timescale,
        wd_convention=wd_convention, tokens_per_step=tokens_per_step, wd_vectors=wd_vectors,
        command="scaleadvise " + " ".join(sys.argv[1:]) if sys.argv[1:] else None,
    )
    pres = run(req)
    if json_out:
        print_json(pres.to_dict())
    elif yaml_out:
        print_yaml(pres.to_dict())
    else:
        render(pres, show_tensors=tensors)


def render(pres: "Prescription", show_tensors: bool = True) -> None:
    from rich.table import Table

    from scaleadvise.cli.render import console

    m = pres.model
    console.print(
        f"[bold]{pres.parameterization}[/] + [bold]{pres.optimizer}[/] at width [bold]{pres.width:,}[/] "
        f"(base {pres.base_width:,}, base LR {fmt(pres.base_lr)}); model {m.name} "
        f"({m.parameters:,} parameters, depth {m.depth}); alignment {alignment_text(pres.alignment.as_dict())}"
    )
    table = Table(title="Per layer type (exponents as powers of n; values at the target width)")
    wd = pres.weight_decay is not None
    for col in ("layer", "mult ∝", "std ∝", "LR ∝", "grad ∝", "gamma", "multiplier", "init std", "LR", "eps",
                *(("weight decay",) if wd else ())):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for t, v in pres.layers.items():
        table.add_row(t, power(v.a), power(v.b), power(v.c), power(v.g), fmt(v.gamma),
                      fmt(v.multiplier), fmt(v.init_std), fmt(v.lr), fmt(v.eps), *((fmt(v.weight_decay),) if wd else ()))
    console.print(table)
    for t, v in pres.layers.items():
        console.print(f"  [dim]{t} LR: {v.why}[/]")
    verdict = " ".join(f"{k}={'yes' if getattr(pres, k) else 'NO'}" for k in ("stable", "nontrivial", "feature_learning"))
    scale = "1/sqrt(head_dim)" if pres.attention_scale == "sqrt" else "1/head_dim"
    console.print(f"verdict: {verdict}; attention logits x {scale}; gamma: {pres.constants_source}")
    console.print(f"alignment: {pres.alignment_source}; hidden chain: {m.hidden_chain} hidden layers")
    if pres.depth is not None:
        console.print(_depth_table(pres.depth))
        console.print(f"residual multiplier: every residual branch's output x {fmt(pres.residual_multiplier)} "
                      f"(h <- h + {fmt(pres.residual_multiplier)} · f(h))")
    if pres.weight_decay is not None:
        console.print(_decay_line(pres.weight_decay))
    for v in pres.violations:
        console.print(f"[red]violated[/] {v.layer}: {v.constraint} (short by {v.shortfall:g})")
    for note in pres.notes:
        console.print(f"[yellow]note[/]: {note}")
    if show_tensors and pres.tensors:
        console.print(_tensor_table(pres.tensors))


def _tensor_table(tensors: list["TensorValues"]) -> "Table":
    """One row per distinct tensor; repeated blocks collapse to ``blocks.*.name x depth``."""
    from rich.table import Table

    rows: dict[str, list] = {}
    for t in tensors:
        key = re.sub(r"\.(\d+)\.", ".*.", t.name, count=1)
        if key in rows:
            rows[key][1] += 1
        else:
            rows[key] = [t, 1]
    table = Table(title="Per tensor")
    depth, wd = tensors[0].residual is not None, tensors[0].weight_decay is not None
    for col in ("tensor", "count", "type", *(("branch",) if depth else ()), "shape", "init", "std/value",
                "multiplier", "LR", "eps", *(("weight decay",) if wd else ())):
        table.add_column(col, justify="left" if col in ("tensor", "type", "init", "branch") else "right")
    for key, (t, count) in rows.items():
        table.add_row(key, str(count), t.layer_type, *((("yes" if t.residual else "—"),) if depth else ()),
                      "x".join(map(str, t.shape)), t.init, fmt(t.init_std), fmt(t.multiplier), fmt(t.lr), fmt(t.eps),
                      *((fmt(t.weight_decay),) if wd else ()))
    return table


def _depth_table(depth: dict) -> "Table":
    """The depth factors, branch vs trunk (core/depth.py)."""
    from rich.table import Table

    L, L0 = depth["depth"], depth["base_depth"]
    table = Table(title=f"Depth: {depth['depth_param']} (alpha = {depth['alpha']:g}) at L = {L} from L0 = {L0}; "
                        f"factors are powers of L/L0 = {depth['ratio']:.4g} ({depth['status']}: {depth['source']})")
    for col in ("position", "tensors", "branch mult", "init", "grad", "LR", "eps"):
        table.add_column(col, justify="left" if col in ("position", "tensors") else "right")
    what = {"branch": "in-block matrices, norm gains, biases", "trunk": "embeddings, final norm, readout"}
    for pos in ("branch", "trunk"):
        x, f = depth["exponents"][pos], depth["factors"][pos]
        cell = lambda k: "—" if f[k] is None else f"{fmt(f[k])} ({power(-x[k], 'r')})"  # noqa: E731
        table.add_row(pos, what[pos], cell("multiplier"), cell("init"), cell("grad"), cell("lr"), cell("eps"))
    return table


def _decay_line(wd: dict) -> str:
    lam, tau = wd["lambda"], wd["timescale_steps"]
    timescale = "" if tau is None else f", timescale τ = {tau:,.6g} steps" + (
        f" = {wd['timescale_tokens']:.4g} tokens" if wd["timescale_tokens"] is not None else "")
    vectors = "decayed too" if wd["vectors"] else "not decayed"
    return (f"weight decay: λ = {fmt(lam)} ({wd['meaning']}{timescale}); convention {wd['convention']}: "
            f"group weight_decay = {wd['group_value']}; norm gains and biases {vectors}")
