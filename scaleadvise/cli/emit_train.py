"""`scaleadvise emit-train`: write a standalone training script for the prescription."""

import shlex
from typing import Annotated, Optional

import typer
from rich.table import Table

from scaleadvise.cli.app import app
from scaleadvise.cli.common import (
    PARAM_HELP, AlignmentOpt, BaseEpsOpt, BaseLrOpt, BaseWidthOpt, ConstantsOpt, EpsOpt, fmt, OmegaReadoutOpt,
)
from scaleadvise.cli.render import console, err_console, print_json

SCRIPT_OPTIMIZERS = ("adam", "adamw", "adam-atan2", "sgd", "adam-ps")

EXAMPLES = """
Examples:

  scaleadvise emit-train --param stp --optim adam --width 1024 --depth 8 --heads 8 -o train.py

  python train.py --steps 200 --device cpu                    # synthetic data, CPU or GPU

  python train.py --data tokens.bin --steps 50000 --out runs/d1024

  torchrun --nproc_per_node 8 train.py --distributed fsdp --data tokens.bin

  python train.py --sweep-lr 2^-14:2^-6:0.5 --widths 128,256,512 --out runs/sweep

  scaleadvise emit-train --param mfp --optim adam --width 4096 --eps per-layer --base-eps 1e-9 -o mfp.py

  scaleadvise emit-train --param mup --optim adam-atan2 --width 256 --head-dim 64 --constants paper -o -
"""


def _command(ctx: typer.Context) -> str:
    """The command line as given: the options whose value came from the command line."""
    words = ["scaleadvise", "emit-train"]
    for param in ctx.command.params:
        if getattr(param, "param_type_name", "") != "option" or param.name is None:
            continue
        source = ctx.get_parameter_source(param.name)
        if getattr(source, "name", "") != "COMMANDLINE":
            continue
        value, flag = ctx.params[param.name], max(param.opts, key=len)
        if param.is_flag:
            words.append(flag if value else (param.secondary_opts or [flag])[0])
        else:
            words += [flag, str(value)]
    return shlex.join(words)


@app.command("emit-train", epilog=EXAMPLES)
def emit_train(
    ctx: typer.Context,
    param: Annotated[str, typer.Option("--param", "-p", help=PARAM_HELP)] = "stp",
    optim: Annotated[str, typer.Option("--optim", help="Optimizer: " + ", ".join(SCRIPT_OPTIMIZERS) + ".")] = "adam",
    width: Annotated[int, typer.Option("--width", "-w", help="Model width D = heads x head_dim.")] = 1024,
    depth: Annotated[int, typer.Option(help="Transformer blocks (paper: 8).")] = 8,
    heads: Annotated[Optional[int], typer.Option(help="Attention heads (head_dim = width / heads).")] = None,
    head_dim: Annotated[Optional[int], typer.Option(help="Head dimension (paper: 128); default 128.")] = None,
    context: Annotated[int, typer.Option(help="Context length (paper: 512).")] = 512,
    vocab: Annotated[int, typer.Option(help="Vocabulary size (paper: 32101).")] = 32101,
    base_width: BaseWidthOpt = 1024,
    base_lr: BaseLrOpt = 1e-3,
    alignment: AlignmentOpt = None,
    omega_readout: OmegaReadoutOpt = None,
    constants: ConstantsOpt = "default",
    eps: EpsOpt = None,
    base_eps: BaseEpsOpt = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model: nanodo (the paper's Transformer, C.1) is the one the script trains.")] = "nanodo",
    output: Annotated[str, typer.Option("--output", "-o", help="Script path to write ('-': stdout).")] = "train.py",
    json_out: Annotated[bool, typer.Option("--json", help="Print {output, command, prescription} as JSON.")] = False,
) -> None:
    """Write a standalone PyTorch script that trains NanoDO with the prescription.

    The script carries the `prescribe --json` document for the same arguments and
    applies it per tensor (init std, forward multiplier, LR group, epsilon, attention
    logit scale); it imports only torch and numpy. It logs metrics.csv, grads.csv
    (for `scaleadvise epsilon`), alignment.csv (for `scaleadvise align`) and, in
    sweep mode, sweeps.csv (for `scaleadvise fit`).
    """
    from scaleadvise.cli.prescribe import _eps_arg
    from scaleadvise.script.emit import emit_script, write_script
    from scaleadvise.errors import UserError
    from scaleadvise.core.prescribe import PrescribeRequest, prescribe

    if model.strip().lower() != "nanodo":
        raise UserError(f"--model {model}: emit-train writes a NanoDO script (C.1); "
                        "for your own model use scaleadvise.torch.parameterize")
    name = optim.strip().lower()
    if name not in SCRIPT_OPTIMIZERS:
        raise UserError(f"--optim {optim}: the training script supports {', '.join(SCRIPT_OPTIMIZERS)}")
    if heads is not None and head_dim is not None:
        raise UserError("--heads and --head-dim: give one (head_dim = width / heads)")
    if heads is None and head_dim is None:
        head_dim = 128  # C.1
    if head_dim is not None and (head_dim <= 0 or width % head_dim):
        raise UserError(f"--width {width} is not divisible by the head dimension {head_dim}; "
                        "use a multiple or set --head-dim / --heads")
    for flag, value in (("--depth", depth), ("--context", context), ("--vocab", vocab)):
        if value <= 0:
            raise UserError(f"{flag} must be a positive integer, got {value}")
    command = _command(ctx)
    if param.strip().lower() in ("umup", "u-mup", "u-μp"):
        from scaleadvise.core.prescribe import UMUP_OPS_NOTE

        raise UserError(f"--param {param}: {UMUP_OPS_NOTE}")
    doc = prescribe(PrescribeRequest(
        param=param, optim=name, width=width, base_width=base_width, base_lr=base_lr, alignment=alignment,
        omega_readout=omega_readout, constants=constants, eps=_eps_arg(eps), base_eps=base_eps, model="nanodo",
        depth=depth, heads=heads, head_dim=head_dim, context=context, vocab=vocab, command=command,
    )).to_dict()
    text = emit_script(doc, command)
    write_script(output, text)
    if json_out:
        print_json({"output": output, "command": command, "lines": text.count("\n"), "prescription": doc})
    elif output != "-":
        _summary(doc, output, text.count("\n"))


def _summary(doc: dict, output: str, lines: int) -> None:
    m = doc["model"]
    table = Table(title=f"{output}: {doc['parameterization']} + {doc['optimizer']}, NanoDO width {m['width']}, "
                        f"depth {m['depth']}, {m['heads']} heads ({lines} lines)")
    for col in ("layer", "a", "b", "c", "multiplier", "init std", "LR", "eps"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for t, v in doc["layers"].items():
        table.add_row(t, f"{v['a']:g}", f"{v['b']:g}", f"{v['c']:g}", fmt(v["multiplier"]), fmt(v["init_std"]),
                      fmt(v["lr"]), fmt(v["eps"]))
    console.print(table)
    err_console.print(f"run it: python {output} --steps 200   (python {output} --help for every flag)")
