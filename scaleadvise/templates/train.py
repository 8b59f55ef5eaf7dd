"""Train the prescribed NanoDO Transformer; log what `scaleadvise fit/epsilon/align` read.

This module is the core of the script `scaleadvise emit-train` writes. The emitted
file is this source verbatim (with its sibling template modules and
scaleadvise/torch/optim.py before it) after a data block `PRESCRIPTION = ...`
holding the `prescribe --json` document, so it runs with torch and numpy alone:

    python train.py --steps 200 --device cpu                 # synthetic data, runs anywhere
    python train.py --data tokens.bin --steps 50000 --out runs/d1024
    torchrun --nproc_per_node 8 train.py --distributed fsdp --data tokens.bin
    python train.py --sweep-lr 2^-14:2^-6:0.5 --widths 128,256,512 --out runs/sweep

Inside the repository it runs as `python -m scaleadvise.templates.train
--prescription p.json ...`. Importing it has no side effects.

Defaults follow the paper: Table C2 optimizer settings (beta1 0.9, beta2 0.98,
eps 1e-9, SGD momentum 0.9), linear warmup of 1000 steps then cosine decay to 0
(C.3), no weight decay except adamw (1e-4, decoupled and LR-independent, App. G).
"""

import argparse
import contextlib
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

# ---- bundle: drop begin
from scaleadvise.templates.data import Batches, eval_batch_list, load_tokens
from scaleadvise.templates.dist import (Dist, all_mean, barrier, load_checkpoint, peak_flops, save_checkpoint,
                                        setup_distributed, wrap_model)
from scaleadvise.templates.nanodo import (BadInput, NanoDO, apply_prescription, flops_per_token, model_dims,
                                          param_groups, plain_prescription, resolve_model)
from scaleadvise.templates.probes import (ALIGNMENT_COLUMNS, GRADS_COLUMNS, METRICS_COLUMNS, SWEEP_COLUMNS,
                                          CsvLog, gradient_scales, log_alignment, read_rows)
from scaleadvise.torch.optim import AdamAtan2, AdamPS
# ---- bundle: drop end

OPTIMIZERS = ("adam", "adamw", "adam-atan2", "sgd", "adam-ps")
RUN_FILES = ("metrics.csv", "grads.csv", "alignment.csv", "sweeps.csv", "checkpoint.pt", "run.json")
# Flags whose change makes a run a different run: --resume refuses to mix them.
RUN_IDENTITY = ("steps", "batch_size", "grad_accum", "seed", "lr", "warmup", "width", "widths", "sweep_lr",
                "seeds", "data", "weight_decay", "clip", "beta1", "beta2", "eps", "plain")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, not usage + message
        raise BadInput(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=os.path.basename(sys.argv[0]) or "train.py",
                description="Train the prescribed NanoDO Transformer (Everett et al. 2024, C.1).")
    a = p.add_argument
    a("--steps", type=int, default=1000, help="optimizer steps (paper: 50000)")
    a("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    a("--data", default=None, help="token file: .bin (uint16/uint32 memmap, nanoGPT) or .txt (bytes); "
                                     "default: synthetic data")
    a("--data-dtype", default="auto", choices=("auto", "uint16", "uint32"),
      help="token dtype of a .bin file (auto: uint16 if vocab <= 65536)")
    a("--out", default="run", help="output directory (metrics.csv, grads.csv, alignment.csv, checkpoint.pt)")
    a("--resume", action="store_true", help="continue the run (or sweep) in --out from its checkpoint; "
                                              "starts fresh if there is none")
    a("--prescription", default=None, help="prescription JSON (`scaleadvise prescribe --json`); the emitted "
                                             "script carries its own")
    a("--width", type=int, default=None, help="train at this width (head dim fixed); default: prescribed")
    a("--lr", type=float, default=None, help="base LR beta_n (per-layer LR = lr * gamma_l * (n/b)^-c_l)")
    a("--eps", type=float, default=None, help="Adam epsilon (constant) or base epsilon (per-layer)")
    a("--batch-size", type=int, default=32, help="global batch in sequences (paper: 256)")
    a("--grad-accum", type=int, default=1, help="micro-batches per step")
    a("--warmup", type=int, default=None, help="linear warmup steps (default: 1000, at most steps/10)")
    a("--beta1", type=float, default=0.9, help="Adam beta1 / SGD momentum (Table C2)")
    a("--beta2", type=float, default=0.98, help="Adam beta2 (Table C2)")
    a("--weight-decay", type=float, default=None,
      help="decoupled weight decay, independent of the LR (App. G); default 0, adamw 1e-4")
    a("--clip", type=float, default=0.0, help="clip the global gradient norm (0: off)")
    a("--seed", type=int, default=0)
    a("--threads", type=int, default=None,
      help="CPU threads for torch (default: torch's choice; 1 per process on a shared machine avoids thrashing)")
    a("--dtype", default="auto", choices=("auto", "bf16", "fp32"), help="auto: bf16 autocast on CUDA")
    a("--compile", default="auto", choices=("auto", "on", "off"), help="torch.compile (auto: on for CUDA)")
    a("--distributed", default="none", choices=("none", "ddp", "fsdp"), help="with torchrun")
    a("--plain", action="store_true",
      help="parameterization off: SP init, no multipliers, one global LR (throughput baseline)")
    a("--log-every", type=int, default=10)
    a("--eval-every", type=int, default=200)
    a("--eval-batches", type=int, default=8)
    a("--grads-every", type=int, default=100, help="grads.csv interval (0: off)")
    a("--align-every", type=int, default=100, help="alignment.csv interval (0: off)")
    a("--ckpt-every", type=int, default=0, help="checkpoint interval (0: only with --stop-at)")
    a("--stop-at", type=int, default=None, help="checkpoint and stop after this step; continue with --resume")
    a("--sweep-lr", default=None, help="base LRs: START:STOP:STEP in log2 units (2^-14:2^-6:0.5) or a list")
    a("--widths", default=None, help="sweep widths, comma-separated (default: the prescribed width)")
    a("--seeds", default=None, help="sweep seeds, comma-separated (default: --seed)")
    a("--peak-tflops", type=float, default=None, help="device peak for MFU (default: from the device name)")
    return p


def _number(text: str, flag: str) -> float:
    text = text.strip()
    try:
        if text.startswith("2^"):
            return 2.0 ** float(text[2:])
        return float(text)
    except ValueError:
        raise BadInput(f"{flag}: {text!r} is not a number (use e.g. 3e-4 or 2^-12)") from None


def parse_lr_grid(text: str) -> list[float]:
    """`2^-14:2^-6:0.5` -> 2^-14, 2^-13.5, ..., 2^-6 (inclusive); or `1e-3,3e-3`."""
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise BadInput(f"--sweep-lr {text}: expected START:STOP:STEP (STEP in powers of 2)")
        lo, hi = (math.log2(_number(x, "--sweep-lr")) for x in parts[:2])
        step = _number(parts[2], "--sweep-lr")
        if step <= 0 or hi < lo:
            raise BadInput(f"--sweep-lr {text}: need START <= STOP and STEP > 0")
        return [2.0 ** (lo + k * step) for k in range(int(math.floor((hi - lo) / step + 1e-9)) + 1)]
    values = [_number(x, "--sweep-lr") for x in text.split(",") if x.strip()]
    if not values or min(values) <= 0:
        raise BadInput(f"--sweep-lr {text}: learning rates must be positive")
    return values


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BadInput(f"{flag} {text}: expected comma-separated integers") from None


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Schedule multiplier for 0-based `step` (C.3): linear warmup from 0, then cosine
    decay to 0 at the last step."""
    t = step + 1
    if t <= warmup:
        return t / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (t - warmup) / max(total - warmup, 1)))


def make_optimizer(name: str, groups: list[dict], args: argparse.Namespace, fused: bool) -> torch.optim.Optimizer:
    betas = (args.beta1, args.beta2)
    first = groups[0]["lr"]
    extra = {"fused": True} if fused else {}
    if name in ("adam", "adamw"):  # adamw's decay is applied outside, LR-independent (App. G)
        return torch.optim.Adam(groups, lr=first, betas=betas, eps=groups[0].get("eps", 1e-9), **extra)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=first, momentum=args.beta1, **extra)
    if name == "adam-atan2":
        return AdamAtan2(groups, lr=first, betas=betas)
    if name == "adam-ps":
        return AdamPS(groups, lr=first, betas=betas, eps=groups[0].get("eps", 1e-9))
    raise BadInput(f"optimizer {name!r}: the script supports {', '.join(OPTIMIZERS)}")


def set_lr(opt: torch.optim.Optimizer, factor: float) -> None:
    for g in opt.param_groups:
        value = g["peak_lr"] * factor
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(value)
        else:
            g["lr"] = value


class Run:
    """One training run at one width and base LR: model, optimizer, data, logs."""

    def __init__(self, args, prescription: dict, width: int, base_lr: float, seed: int, out: str,
                 dist: Dist, tokens: tuple):
        self.args, self.dist, self.out, self.seed = args, dist, out, seed
        pres = plain_prescription(prescription) if args.plain else prescription
        self.dims = model_dims(pres, width)
        self.device = dist.device
        cuda = self.device.type == "cuda"
        self.bf16 = args.dtype == "bf16" or (args.dtype == "auto" and cuda)
        self.compile = args.compile == "on" or (args.compile == "auto" and cuda)
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

        torch.manual_seed(seed)
        with torch.device(self.device):
            self.model = NanoDO(**self.dims)
        self.specs = resolve_model(self.model, pres, width, base_lr)
        gen = torch.Generator(self.device).manual_seed(seed)
        apply_prescription(self.model, self.specs, pres["attention_scale"], gen)
        self.train_model = wrap_model(self.model, dist, self.compile)
        # Fused kernels on CUDA; there a 0-dim LR tensor lets the schedule change without
        # recompiling anything (foreach Adam cannot take one, fused can).
        fused = cuda and pres["optimizer"] in ("adam", "adamw", "sgd")
        tensor_lr = self.compile and (fused or pres["optimizer"] in ("adam-atan2", "adam-ps"))
        self.groups = param_groups(self.model, self.specs, tensor_lr=tensor_lr, device=self.device)
        self.opt = make_optimizer(pres["optimizer"], self.groups, args, fused)
        wd = args.weight_decay if args.weight_decay is not None else (1e-4 if pres["optimizer"] == "adamw" else 0.0)
        self.decay = wd
        self.decay_params = [p for p in self.model.parameters() if p.ndim >= 2]

        train_tok, held_tok = tokens
        self.context = self.dims["context"]
        self.batches = Batches(train_tok, self.context, args.batch_size * args.grad_accum, dist.rank, dist.world,
                               seed, self.device)
        # One held-out set for every seed and width: eval losses of a sweep differ only by training.
        self.eval_set = eval_batch_list(held_tok, self.context, args.batch_size, args.eval_batches, dist.rank,
                                        dist.world, 0, self.device)
        self.flops = flops_per_token(self.dims)
        peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(self.device, self.bf16)
        self.peak = peak * dist.world if peak else None
        main = dist.main
        self.metrics = CsvLog(os.path.join(out, "metrics.csv"), METRICS_COLUMNS, main)
        self.grads = CsvLog(os.path.join(out, "grads.csv"), GRADS_COLUMNS, main and args.grads_every > 0)
        self.align = CsvLog(os.path.join(out, "alignment.csv"), ALIGNMENT_COLUMNS, main and args.align_every > 0)
        self.ckpt = os.path.join(out, "checkpoint.pt")
        self.width, self.base_lr = width, base_lr

    def autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def loss(self, model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            logits = model(x)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    @torch.no_grad()
    def evaluate(self) -> float:
        self.train_model.eval()
        total = sum(self.loss(self.train_model, x, y) for x, y in self.eval_set) / len(self.eval_set)
        self.train_model.train()
        return float(all_mean(total.detach(), self.dist))

    def step(self, step: int, total: int, warmup: int) -> torch.Tensor:
        factor = lr_factor(step, total, warmup)
        set_lr(self.opt, factor)
        accum = self.args.grad_accum
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(accum):
            x, y = self.batches.next()
            sync = micro == accum - 1 or self.dist.mode != "ddp"
            ctx = contextlib.nullcontext() if sync else self.train_model.no_sync()
            with ctx:
                loss = self.loss(self.train_model, x, y)
                (loss / accum).backward()
            loss_sum += loss.detach()
        if self.args.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.clip)
        self.opt.step()
        if self.decay:
            with torch.no_grad():  # App. G: decoupled decay, scaled by the schedule only
                torch._foreach_mul_(self.decay_params, 1.0 - self.decay * factor)
        return loss_sum / accum

    def _alignment(self, step: int) -> None:
        if self.args.align_every and step % self.args.align_every == 0:
            values = log_alignment(self.model, self.eval_set[0][0], self.autocast)
            self.align.write([{"width": self.width, "layer": k, "step": step, "log_alignment": v}
                              for k, v in values.items()])

    def resume(self) -> int:
        payload = load_checkpoint(self.ckpt, self.model, self.opt, self.dist)
        for g in self.opt.param_groups:  # a loaded LR tensor may sit on the CPU
            if isinstance(g["lr"], torch.Tensor):
                g["lr"] = torch.tensor(float(g["lr"]), dtype=torch.float32, device=self.device)
        self.batches.seek(payload["data_position"])
        step = int(payload["step"])
        for log in (self.metrics, self.grads, self.align):
            log.truncate_after(step)
        return step

    def save(self, step: int) -> None:
        save_checkpoint(self.ckpt, self.model, self.opt,
                        {"step": step, "data_position": self.batches.position, "width": self.width}, self.dist)

    def train(self, resume: bool, quiet: bool = False) -> dict:
        args = self.args
        total = args.steps
        warmup = args.warmup if args.warmup is not None else min(1000, max(1, total // 10))
        start = self.resume() if resume and os.path.exists(self.ckpt) else 0
        if start == 0:
            self._alignment(0)
        say = (lambda s: None) if quiet or not self.dist.main else (lambda s: print(s, flush=True))
        tokens_per_step = args.batch_size * args.grad_accum * self.context
        last_t, last_step = time.perf_counter(), start
        result = {"step": start, "train_loss": math.nan, "eval_loss": math.nan, "diverged": False}
        for step in range(start, total):
            loss = self.step(step, total, warmup)
            done = step + 1
            if args.grads_every and (done % args.grads_every == 0 or done == 1):
                self.grads.write([{"width": self.width, "step": done, "seed": self.seed, **r}
                                  for r in gradient_scales(self.model, self.opt, self.dist)])
            self.opt.zero_grad(set_to_none=True)
            last = done == total or done == args.stop_at
            if done % args.log_every == 0 or last:
                train_loss = float(all_mean(loss, self.dist))  # syncs with the device
                now = time.perf_counter()
                tps = tokens_per_step * (done - last_step) / max(now - last_t, 1e-9)
                last_t, last_step = now, done
                eval_loss = self.evaluate() if done % args.eval_every == 0 or last else None
                mfu = tps * self.flops / self.peak if self.peak else None
                lr = self.base_lr * lr_factor(step, total, warmup)  # per layer: x gamma_l (n/b)^-c_l
                self.metrics.write([{"step": done, "train_loss": train_loss, "eval_loss": eval_loss, "lr": lr,
                                     "tokens_per_s": tps, "mfu": mfu}])
                result.update(step=done, train_loss=train_loss)
                if eval_loss is not None:
                    result["eval_loss"] = eval_loss
                say(f"step {done}/{total} | loss {train_loss:.4f}" +
                    (f" | eval {eval_loss:.4f}" if eval_loss is not None else "") +
                    f" | lr {lr:.3g} | {tps:,.0f} tok/s" + (f" | mfu {100 * mfu:.1f}%" if mfu else ""))
                if not math.isfinite(train_loss) or (eval_loss is not None and not math.isfinite(eval_loss)):
                    result.update(diverged=True, eval_loss=math.nan)
                    say(f"diverged at step {done}: loss {train_loss}")
                    break
            self._alignment(done)
            if (args.ckpt_every and done % args.ckpt_every == 0) or done == args.stop_at \
                    or (last and args.ckpt_every):
                self.save(done)
            if done == args.stop_at:
                break
            if last_step == done:  # evaluation, probes and checkpoints are not training throughput
                last_t = time.perf_counter()
        return result


def load_prescription(args: argparse.Namespace, given: dict | None) -> dict:
    """The emitted script's PRESCRIPTION data block, a --prescription file, or `given`."""
    pres = given if given is not None else globals().get("PRESCRIPTION")
    if args.prescription:
        try:
            with open(args.prescription) as f:
                pres = json.load(f)
        except OSError as e:
            raise BadInput(f"--prescription {args.prescription}: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise BadInput(f"--prescription {args.prescription}: not JSON (line {e.lineno}: {e.msg})") from None
    if pres is None:
        raise BadInput("no prescription: pass --prescription FILE (from `scaleadvise prescribe --json`) "
                       "or run a script written by `scaleadvise emit-train`")
    for key in ("optimizer", "layers", "constants", "base_width", "base_lr", "model", "tensors"):
        if key not in pres:
            raise BadInput(f"prescription: field '{key}' is missing (write it with `scaleadvise prescribe --json`)")
    if pres["optimizer"] not in OPTIMIZERS:
        raise BadInput(f"prescription: optimizer {pres['optimizer']!r}; the script supports {', '.join(OPTIMIZERS)}")
    pres = dict(pres)
    if args.eps is not None:
        if pres.get("eps_mode") == "none":
            raise BadInput(f"--eps: {pres['optimizer']} has no epsilon")
        if not args.eps > 0:
            # A tensor row that gets no gradient (the embedding of a token not yet seen) has
            # m = v = 0, and m/(sqrt(v)+0) is 0/0: the loss turns NaN on the next step.
            raise BadInput(f"--eps {args.eps}: must be > 0 (eps = 0 divides 0 by 0 on rows without gradient); "
                           "for no epsilon use --optim adam-atan2 (C.5), or a tiny eps such as 1e-30")
        pres["base_eps"] = args.eps
    return pres


def check_args(args: argparse.Namespace, pres: dict, world: int) -> list[int]:
    """Every flag checked before anything is written; returns the widths to train."""
    for flag in ("steps", "batch_size", "grad_accum", "log_every", "eval_every", "eval_batches"):
        if getattr(args, flag) < 1:
            raise BadInput(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    for flag in ("grads_every", "align_every", "ckpt_every", "clip"):
        if getattr(args, flag) < 0:
            raise BadInput(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    if args.stop_at is not None and not 1 <= args.stop_at <= args.steps:
        raise BadInput(f"--stop-at {args.stop_at}: must be between 1 and --steps {args.steps}")
    if args.lr is not None and not args.lr > 0:
        raise BadInput(f"--lr must be > 0, got {args.lr}")
    if args.batch_size % world:
        raise BadInput(f"--batch-size {args.batch_size} is not divisible by the {world} processes")
    widths = _int_list(args.widths, "--widths") if args.widths else [args.width or int(pres["model"]["width"])]
    for w in widths:
        if w < 1:
            raise BadInput(f"--width {w} must be positive")
        model_dims(pres, w)  # raises for a width the head dimension does not divide
    if args.sweep_lr:
        parse_lr_grid(args.sweep_lr)
    return widths


def _fingerprint(args: argparse.Namespace, pres: dict) -> dict:
    return {**{k: getattr(args, k) for k in RUN_IDENTITY},
            "parameterization": pres.get("parameterization"), "optimizer": pres["optimizer"],
            "model": {k: pres["model"].get(k) for k in ("width", "depth", "heads", "context", "vocab")}}


def check_out(args: argparse.Namespace, fingerprint: dict) -> None:
    """Refuse to mix two runs in one --out; with --resume, refuse a different run."""
    held = [f for f in RUN_FILES if os.path.exists(os.path.join(args.out, f))]
    if held and not args.resume:
        raise BadInput(f"--out {args.out}: holds another run's files ({', '.join(held)}); "
                       "pass --resume to continue that run, or choose another directory")
    path = os.path.join(args.out, "run.json")
    if args.resume and os.path.exists(path):
        with open(path) as f:
            before = json.load(f).get("fingerprint", {})
        for key, value in fingerprint.items():
            if key in before and before[key] != json.loads(json.dumps(value)):
                raise BadInput(f"--resume: {args.out} was started with {key} = {before[key]!r}, "
                               f"not {value!r}; choose another --out")


def _clear(directory: str) -> None:
    for name in RUN_FILES:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            os.remove(path)


def run_sweep(args: argparse.Namespace, pres: dict, widths: list[int], dist: Dist, tokens: tuple) -> int:
    """Every (width, base LR, seed) in turn; rows go to sweeps.csv for `scaleadvise fit`.
    Finished runs are skipped on --resume; a run whose loss turns NaN/inf is recorded
    as diverged (loss nan at the planned step, which `fit` reads as unstable) and the
    sweep moves on. Without --distributed, torchrun ranks split the grid."""
    lrs = parse_lr_grid(args.sweep_lr) if args.sweep_lr else [args.lr or pres["base_lr"]]
    seeds = _int_list(args.seeds, "--seeds") if args.seeds else [args.seed]
    grid = [(w, lr, s) for w in widths for lr in lrs for s in seeds]
    run_dist = dist
    if dist.mode == "none" and dist.world > 1:
        grid = grid[dist.rank::dist.world]
        run_dist = Dist("none", 0, 1, dist.local_rank, dist.device)
    log = CsvLog(os.path.join(args.out, "sweeps.csv"), SWEEP_COLUMNS, run_dist.main)
    finished = {(int(r["width"]), float(r["lr"]), str(r["seed"])) for r in read_rows(log.path)}
    for w, lr, seed in grid:
        if (w, lr, str(seed)) in finished:
            if dist.main:
                print(f"skip width {w} lr {lr:.4g} seed {seed}: in sweeps.csv", flush=True)
            continue
        sub = os.path.join(args.out, f"w{w}_lr{lr:.6g}_s{seed}")
        os.makedirs(sub, exist_ok=True)
        resume = os.path.exists(os.path.join(sub, "checkpoint.pt"))
        if not resume and run_dist.main:
            _clear(sub)  # an interrupted run of this sweep with no checkpoint starts over
        barrier(run_dist)
        if run_dist.main:
            print(f"== width {w} | lr {lr:.4g} | seed {seed} -> {sub}", flush=True)
        res = Run(args, pres, w, lr, seed, sub, run_dist, tokens).train(resume=resume)
        if res["step"] < args.steps and not res["diverged"]:
            return 0  # --stop-at: the sweep continues with --resume
        log.write([{"width": w, "lr": lr, "loss": math.nan if res["diverged"] else res["eval_loss"],
                    "step": args.steps, "seed": seed, "param": pres.get("parameterization"),
                    "optim": pres["optimizer"], "diverged": int(res["diverged"])}])
    return 0


def run(argv: list[str] | None = None, prescription: dict | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            raise BadInput(f"--threads {args.threads}: must be >= 1")
        torch.set_num_threads(args.threads)
    pres = load_prescription(args, prescription)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    widths = check_args(args, pres, world if args.distributed != "none" else 1)
    dist = setup_distributed(args.distributed, args.device)
    dims = model_dims(pres, widths[0])
    train_tok, held_tok, about = load_tokens(args.data, dims["vocab"], dims["context"], args.data_dtype, args.seed)
    tokens = (train_tok, held_tok)
    fingerprint = _fingerprint(args, pres)
    check_out(args, fingerprint)
    barrier(dist)
    if dist.main:
        os.makedirs(args.out, exist_ok=True)
        tmp = os.path.join(args.out, "run.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"fingerprint": fingerprint, "argv": sys.argv if argv is None else argv,
                       "prescription": pres}, f, indent=1)
        os.replace(tmp, os.path.join(args.out, "run.json"))
    barrier(dist)
    if dist.main:
        print(f"data: {about}", flush=True)
    if args.sweep_lr or args.widths:
        return run_sweep(args, pres, widths, dist, tokens)
    base_lr = args.lr or pres["base_lr"]
    res = Run(args, pres, widths[0], base_lr, args.seed, args.out, dist, tokens).train(resume=args.resume)
    return 1 if res["diverged"] else 0


def main(argv: list[str] | None = None, prescription: dict | None = None) -> int:
    """Exit status: 0 done, 1 the loss diverged, 2 bad input (one line on stderr)."""
    try:
        code = run(argv, prescription)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Every rank finished before any tears gloo down: a rank that destroys the
            # group while its peer still drains the last collective aborts that peer.
            torch.distributed.barrier()
        return code
    except BadInput as e:
        prog = os.path.basename(sys.argv[0]) or "train.py"
        sys.stderr.write(f"{prog}: error: {' '.join(str(e).split())}\n")
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
