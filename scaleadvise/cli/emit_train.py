"""`scaleadvise emit-train`: write a standalone training script for the prescription."""

import shlex
import sys
from typing import Annotated, Optional

import typer
from rich.table import Table

from scaleadvise.cli.app import app
from scaleadvise.cli.common import (
    PARAM_HELP, AlignmentOpt, BaseEpsOpt, BaseLrOpt, BaseWidthOpt, ConstantsOpt, EpsOpt, fmt, OmegaReadoutOpt,
    BaseDepthOpt, DepthParamOpt, TokensPerStepOpt, WdConventionOpt, WdTimescaleOpt, WdVectorsOpt, WeightDecayOpt,
)
from scaleadvise.cli.render import console, err_console, print_json
from scaleadvise.core.optimizers import SCRIPTED as SCRIPT_OPTIMIZERS

EXAMPLES = """
Examples:

  scaleadvise emit-train --param stp --optim adam --width 1024 --depth 8 --heads 8 > train.py

  python train.py --device cpu --width 128 --depth 2 --context 64 --vocab 256 --batch-size 16 --steps 200

  python train.py --data train.bin --out runs/d1024

  torchrun --nproc_per_node 8 train.py --distributed fsdp --data train.bin

  scaleadvise emit-train --param mfp --optim adam --width 4096 --eps per-layer --base-eps 1e-9 -o mfp.py

  scaleadvise emit-train --param mup --optim adamw --width 256 --base-width 256 --depth 2 --base-depth 2 --depth-param completep --weight-decay 1e-4 -o completep.py

  scaleadvise equiv --param stp --to-form ntk --prescription-out ntk.json && scaleadvise emit-train --prescription ntk.json -o ntk.py
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
    depth_param: DepthParamOpt = "none",
    base_depth: BaseDepthOpt = None,
    weight_decay: WeightDecayOpt = None,
    wd_timescale: WdTimescaleOpt = None,
    wd_convention: WdConventionOpt = None,
    tokens_per_step: TokensPerStepOpt = None,
    wd_vectors: WdVectorsOpt = False,
    prescription: Annotated[Optional[str], typer.Option("--prescription", help="Emit for this `prescribe --json` or `equiv --prescription-out` file instead of the flags above.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write the script to this file (atomically); default: stdout.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print {output, command, lines, prescription} as JSON (needs -o FILE).")] = False,
) -> None:
    """Write a standalone PyTorch script that trains NanoDO with the prescription.

    The script goes to stdout (`scaleadvise emit-train > train.py`) or to -o FILE;
    everything else goes to stderr. It carries the prescription as data and evaluates
    the per-tensor rule (init std, forward multiplier, LR group, epsilon, attention logit
    scale) at the size it trains; it imports only torch and numpy. It logs metrics.csv,
    grads.csv (for `scaleadvise epsilon`), alignment.csv (for `scaleadvise align`) and
    result.json (for `scaleadvise sweep`).
    """
    from scaleadvise.errors import UserError

    if json_out and output in (None, "-"):
        raise UserError("--json prints JSON on stdout, where the script would go: give -o FILE for the script")
    if output is not None and output != "-":
        _check_output(output)
    command = _command(ctx)
    if prescription is not None:
        doc, free = _from_file(ctx, prescription), False
    else:
        doc, free = _prescribe(param, optim, width, depth, heads, head_dim, context, vocab, base_width, base_lr,
                               alignment, omega_readout, constants, eps, base_eps, model, command,
                               dict(depth_param=depth_param, base_depth=base_depth, weight_decay=weight_decay,
                                    wd_timescale=wd_timescale, wd_convention=wd_convention,
                                    tokens_per_step=tokens_per_step, wd_vectors=wd_vectors))
    from scaleadvise.script.emit import emit_script, write_script

    text = emit_script(doc, command, depth_free=free)
    lines = text.count("\n")
    if output in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        _summary(doc, "the script (stdout)", lines, err_console)
        if sys.stdout.isatty():
            err_console.print("(the script went to the terminal: `> train.py` or -o train.py writes a file)")
        return
    write_script(output, text)
    if json_out:
        print_json({"output": output, "command": command, "lines": lines, "prescription": doc})
    else:
        _summary(doc, output, lines, console)
        err_console.print(f"run it: python {output} --help   (the first lines of {output} suggest commands)")


def _check_output(output: str) -> None:
    from pathlib import Path

    from scaleadvise.errors import UserError

    target = Path(output)
    if target.is_dir():
        raise UserError(f"-o {output}: is a directory; name the script file, e.g. {target / 'train.py'}")
    if not target.parent.is_dir():
        raise UserError(f"-o {output}: directory {target.parent} does not exist")


def _from_file(ctx: typer.Context, path: str) -> dict:
    import json

    from scaleadvise.errors import UserError

    shaping = [max(p.opts, key=len) for p in ctx.command.params if getattr(p, "param_type_name", "") == "option"
               and p.name not in ("prescription", "output", "json_out")
               and getattr(ctx.get_parameter_source(p.name), "name", "") == "COMMANDLINE"]
    if shaping:
        raise UserError(f"--prescription {path}: the file fixes the prescription; drop {', '.join(shaping)}")
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--prescription {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"--prescription {path}: not JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(doc, dict):
        raise UserError(f"--prescription {path}: not a `prescribe --json` document")
    name = str(doc.get("optimizer", ""))
    if name not in SCRIPT_OPTIMIZERS:
        raise UserError(f"--prescription {path}: optimizer {name!r}; the training script supports "
                        f"{', '.join(SCRIPT_OPTIMIZERS)}")
    if doc.get("parameterization") == "umup":
        from scaleadvise.core.prescribe import UMUP_OPS_NOTE

        raise UserError(f"--prescription {path}: {UMUP_OPS_NOTE}")
    return doc


def _prescribe(param, optim, width, depth, heads, head_dim, context, vocab, base_width, base_lr, alignment,
               omega_readout, constants, eps, base_eps, model, command, depth_decay=None) -> tuple[dict, bool]:
    from scaleadvise.cli.prescribe import _eps_arg
    from scaleadvise.core.prescribe import PrescribeRequest, prescribe
    from scaleadvise.errors import UserError
    from scaleadvise.script.emit import depth_free

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
    if head_dim is not None and head_dim > 0 and width % head_dim:
        raise UserError(f"--width {width} is not divisible by the head dimension {head_dim}; "
                        "use a multiple or set --head-dim / --heads")
    if param.strip().lower() in ("umup", "u-mup", "u-μp"):
        from scaleadvise.core.prescribe import UMUP_OPS_NOTE

        raise UserError(f"--param {param}: {UMUP_OPS_NOTE}")
    req = PrescribeRequest(
        param=param, optim=name, width=width, base_width=base_width, base_lr=base_lr, alignment=alignment,
        omega_readout=omega_readout, constants=constants, eps=_eps_arg(eps), base_eps=base_eps, model="nanodo",
        depth=depth, heads=heads, head_dim=head_dim, context=context, vocab=vocab, command=command,
        **(depth_decay or {}))
    return prescribe(req).to_dict(), depth_free(req)


def _summary(doc: dict, output: str, lines: int, where) -> None:
    m = doc["model"]
    table = Table(title=f"{output}: {doc['parameterization']} + {doc['optimizer']}, NanoDO width {m['width']}, "
                        f"depth {m['depth']}, {m['heads']} heads ({lines} lines)")
    for col in ("layer", "a", "b", "c", "multiplier", "init std", "LR", "eps"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for t, v in doc["layers"].items():
        table.add_row(t, f"{v['a']:g}", f"{v['b']:g}", f"{v['c']:g}", fmt(v["multiplier"]), fmt(v["init_std"]),
                      fmt(v["lr"]), fmt(v["eps"]))
    where.print(table)
