"""Config: every flag, with its default (`python train.py --help`). Defaults follow the paper:
Table C2's optimizer settings, warmup then cosine decay to 0 (C.3), decoupled weight decay
only for adamw (App. G). The model's size comes from the prescription; --width, --depth,
--context and --vocab train another size, with every tensor's values recomputed by the rule.
"""

import argparse
import os
import sys


class BadInput(Exception):
    """Bad flags or data: one line on stderr, exit status 2, nothing written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise BadInput(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=os.path.basename(sys.argv[0]) or "train.py", description=(__doc__ or "").split("\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--out", default="run", help="run directory: metrics.csv, grads.csv, alignment.csv, checkpoint.pt, result.json")
    a("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")
    a("--data", default=None, help="tokens: .bin (uint16/uint32 memmap; a train.bin uses the val.bin beside it) "
                                   "or .txt (bytes); default: a synthetic stream")
    a("--data-dtype", default="auto", choices=("auto", "uint16", "uint32"), help="token type of a .bin (auto: by vocab)")
    a("--steps", type=int, default=1000, help="optimizer steps (paper: 50000)")
    a("--batch-size", type=int, default=32, help="sequences per step, all processes together (paper: 256)")
    a("--grad-accum", type=int, default=1, help="micro-batches per step")
    a("--lr", type=float, default=None, help="base LR beta_n (default: the prescription's); "
                                             "each layer's LR is lr * gamma * (width/base_width)^-c")
    a("--eps", type=float, default=None, help="Adam epsilon, or the base epsilon when it is per layer")
    a("--warmup", type=int, default=None, help="linear warmup steps (default: min(1000, steps/10))")
    a("--beta1", type=float, default=0.9, help="Adam beta1, SGD momentum (Table C2)")
    a("--beta2", type=float, default=0.98, help="Adam beta2 (Table C2)")
    a("--weight-decay", type=float, default=None, help="decoupled, LR-independent (App. G); default: adamw 1e-4, else 0")
    a("--clip", type=float, default=0.0, help="clip the global gradient norm (0: off)")
    a("--seed", type=int, default=0, help="init and batch order")
    a("--width", type=int, default=None, help="model width (head dim fixed; default: the prescription's)")
    a("--depth", type=int, default=None, help="Transformer blocks (default: the prescription's)")
    a("--context", type=int, default=None, help="sequence length (default: the prescription's)")
    a("--vocab", type=int, default=None, help="vocabulary size (default: the prescription's)")
    a("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    a("--threads", type=int, default=None, help="CPU threads (1 per process on a shared machine)")
    a("--dtype", default="auto", choices=("auto", "bf16", "fp32"), help="auto: bf16 autocast on CUDA")
    a("--compile", default="auto", choices=("auto", "on", "off"), help="torch.compile (auto: on CUDA)")
    a("--distributed", default="none", choices=("none", "ddp", "fsdp"), help="data parallel, under torchrun")
    a("--log-every", type=int, default=10, help="metrics.csv and a line on stdout (and always step 1)")
    a("--eval-every", type=int, default=200, help="held-out loss")
    a("--eval-batches", type=int, default=8, help="held-out batches per evaluation")
    a("--grads-every", type=int, default=100, help="grads.csv (for scaleadvise epsilon; 0: off)")
    a("--align-every", type=int, default=100, help="alignment.csv (for scaleadvise align; 0: off)")
    a("--ckpt-every", type=int, default=250, help="checkpoint.pt (also at the end and on SIGINT/SIGTERM; 0: only then)")
    a("--stop-at", type=int, default=None, help="checkpoint and stop after this step (continue with --resume)")
    a("--peak-tflops", type=float, default=None, help="device peak for MFU (default: from the device name)")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags, each checked before anything is written."""
    args = build_parser().parse_args(argv)
    for flag in ("steps", "batch_size", "grad_accum", "log_every", "eval_every", "eval_batches", "threads"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise BadInput(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be >= 1")
    for flag in ("grads_every", "align_every", "ckpt_every", "clip", "warmup", "weight_decay"):
        if getattr(args, flag) is not None and not getattr(args, flag) >= 0:
            raise BadInput(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be >= 0")
    for flag in ("lr", "peak_tflops"):
        if getattr(args, flag) is not None and not 0 < getattr(args, flag) < float("inf"):
            raise BadInput(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be a positive number")
    if not (0 <= args.beta1 < 1 and 0 <= args.beta2 < 1):
        raise BadInput(f"--beta1 {args.beta1} --beta2 {args.beta2}: must be in [0, 1)")
    if args.eps is not None and not 0 < args.eps < float("inf"):
        # A row with no gradient yet (an unseen token's embedding) has m = v = 0: 0/0 with eps = 0.
        raise BadInput(f"--eps {args.eps}: must be > 0 (eps = 0 divides 0 by 0 on rows without gradient); "
                       "for no epsilon use emit-train --optim adam-atan2 (C.5), or a tiny eps such as 1e-30")
    if args.stop_at is not None and not 1 <= args.stop_at <= args.steps:
        raise BadInput(f"--stop-at {args.stop_at}: must be between 1 and --steps {args.steps}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise BadInput(f"--out {args.out}: is a file, not a directory")
    return args
