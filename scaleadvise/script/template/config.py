"""Config: every flag and its default (`python train.py --help`).

Defaults follow the paper: Table C2's optimizer settings, warmup then cosine decay to 0
(C.3), decoupled weight decay only for adamw (App. G). The model's size comes from the prescription; --width, --depth,
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


class _Help(argparse.ArgumentDefaultsHelpFormatter):  # "(default: ...)" where there is one
    def _get_help_string(self, action) -> str:
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def _number(kind, low: float, strict: bool, what: str):
    def parse(text: str):
        value = kind(text)
        if not (value > low if strict else value >= low) or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text}: must be {what}")
        return value
    return parse


COUNT, EVERY, SIZE = _number(int, 1, False, ">= 1"), _number(int, 0, False, ">= 0 (0: off)"), \
    _number(int, 1, False, "a positive integer")
POSITIVE, NONNEGATIVE = _number(float, 0, True, "a positive number"), _number(float, 0, False, ">= 0")
# A row with no gradient yet (an unseen token's embedding) has m = v = 0: 0/0 with eps = 0.
EPS = _number(float, 0, True, "> 0 (0 gives 0/0 on rows without gradient; no eps: emit-train --optim adam-atan2)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=os.path.basename(sys.argv[0]) or "train.py", description=(__doc__ or "").split("\n")[0],
                formatter_class=_Help)
    a, PRES = p.add_argument, "the prescription's"
    a("--out", default="run", help="run directory: metrics.csv, grads.csv, alignment.csv, checkpoint.pt, result.json")
    a("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")
    a("--data", help="tokens: .bin (memmap; a train.bin holds out its val.bin), .txt (bytes); default: synthetic")
    a("--data-dtype", default="auto", choices=("auto", "uint16", "uint32"), help="of a .bin (auto: by vocab)")
    a("--steps", type=COUNT, default=1000, help="optimizer steps (paper: 50000)")
    a("--batch-size", type=COUNT, default=32, help="sequences per step, all processes together (paper: 256)")
    a("--grad-accum", type=COUNT, default=1, help="micro-batches per step")
    a("--lr", type=POSITIVE, help=f"base LR (default: {PRES}); a layer's LR is lr * gamma * (width/base_width)^-c")
    a("--eps", type=EPS, help=f"Adam epsilon, or the base epsilon when it is per layer (default: {PRES})")
    a("--warmup", type=EVERY, help="linear warmup steps (default: min(1000, steps/10))")
    a("--beta1", type=NONNEGATIVE, default=0.9, help="Adam beta1, SGD momentum (Table C2)")
    a("--beta2", type=NONNEGATIVE, default=0.98, help="Adam beta2 (Table C2)")
    a("--weight-decay", type=NONNEGATIVE, help="per step on every matrix, LR-independent (App. G); default: "
      f"{PRES} (its data block), else adamw 1e-4, else 0")
    a("--clip", type=NONNEGATIVE, default=0.0, help="clip the global gradient norm (0: off)")
    a("--seed", type=int, default=0, help="init and batch order")
    a("--width", type=SIZE, help=f"model width, head dim fixed (default: {PRES})")
    a("--depth", type=SIZE, help=f"Transformer blocks (default: {PRES})")
    a("--context", type=SIZE, help=f"sequence length (default: {PRES})")
    a("--vocab", type=SIZE, help=f"vocabulary size (default: {PRES})")
    a("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    a("--threads", type=COUNT, help="CPU threads (1 per process on a shared machine)")
    a("--dtype", default="auto", choices=("auto", "bf16", "fp32"), help="auto: bf16 autocast on CUDA")
    a("--compile", default="auto", choices=("auto", "on", "off"), help="torch.compile (auto: on CUDA)")
    a("--distributed", default="none", choices=("none", "ddp", "fsdp"), help="data parallel, under torchrun")
    a("--log-every", type=COUNT, default=10, help="metrics.csv and a line on stdout (and always step 1)")
    a("--eval-every", type=COUNT, default=200, help="held-out loss")
    a("--eval-batches", type=COUNT, default=8, help="held-out batches per evaluation")
    a("--grads-every", type=EVERY, default=100, help="grads.csv (for scaleadvise epsilon)")
    a("--align-every", type=EVERY, default=100, help="alignment.csv (for scaleadvise align): A, alpha, omega, u per "
      "dense layer against its step-0 weight and input on 8 held-out sequences (an fp32 copy of the dense weights)")
    a("--ckpt-every", type=EVERY, default=250, help="checkpoint.pt; also at the end and on SIGINT/SIGTERM")
    a("--stop-at", type=COUNT, help="checkpoint and stop after this step (continue with --resume)")
    a("--peak-tflops", type=POSITIVE, help="device peak for MFU (default: from the device name)")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.beta1 >= 1 or args.beta2 >= 1:
        raise BadInput(f"--beta1 {args.beta1} --beta2 {args.beta2}: must be below 1")
    if args.stop_at is not None and args.stop_at > args.steps:
        raise BadInput(f"--stop-at {args.stop_at}: must be at most --steps {args.steps}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise BadInput(f"--out {args.out}: is a file, not a directory")
    return args
