"""Training: the optimizer, the schedule, the loop, checkpoints, signals, result.json.

Exit status (main): 0 done (or --stop-at), 1 diverged, 2 bad input (one line, nothing
written), 130 / 143 stopped by SIGINT / SIGTERM after saving a checkpoint (`--resume`
continues).
"""

import contextlib
import json
import math
import os
import signal
import sys
import time

import torch
import torch.distributed as tdist
import torch.nn.functional as F

from scaleadvise.script.template.config import BadInput, parse_args
from scaleadvise.script.template.data import Batches, eval_batches, load_tokens
from scaleadvise.script.template.dist import (all_mean, barrier, load_checkpoint, peak_flops, save_checkpoint,
                                              setup_distributed, wrap_model)
from scaleadvise.script.template.nanodo import build_model, flops_per_token, model_size, tensor_name
from scaleadvise.script.template.probes import (ALIGNMENT_COLUMNS, GRADS_COLUMNS, METRICS_COLUMNS, PROBE_SEQUENCES,
                                                AlignmentProbe, CsvLog, gradient_scales)
from scaleadvise.torch.apply import param_groups
from scaleadvise.torch.optim import AdamAtan2, AdamPS

LOGS = ("metrics.csv", "grads.csv", "alignment.csv", "result.json")  # a run's files besides checkpoint.pt
# Flags that make a run another run: --resume refuses other values.
IDENTITY = ("steps", "batch_size", "grad_accum", "lr", "eps", "warmup", "beta1", "beta2", "weight_decay", "clip",
            "seed", "width", "depth", "context", "vocab", "data")


def lr_factor(step: int, total: int, warmup: int) -> float:
    """C.3: linear warmup from 0, then cosine decay to 0 at the last step (`step` counts from 0)."""
    t = step + 1
    if t <= warmup:
        return t / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (t - warmup) / max(total - warmup, 1)))


def make_optimizer(optimizer: str, groups: list[dict], betas: tuple[float, float], fused: bool):
    """torch's fused kernels on CUDA (foreach elsewhere); each group carries its LR and epsilon."""
    lr, kw = groups[0]["lr"], {"fused": True} if fused else {}
    if optimizer in ("adam", "adamw"):  # adamw's decay is applied in the loop, LR-independent (App. G)
        return torch.optim.Adam(groups, lr=lr, betas=betas, **kw)
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=betas[0], **kw)
    if optimizer == "adam-atan2":
        return AdamAtan2(groups, lr=lr, betas=betas)
    if optimizer == "adam-ps":
        return AdamPS(groups, lr=lr, betas=betas)
    raise BadInput(f"optimizer {optimizer!r}: the script trains adam, adamw, sgd, adam-atan2 or adam-ps")


class Stop:
    """SIGINT / SIGTERM: in the loop the first asks it to checkpoint and stop after the current
    step; before the loop, or a second time, they interrupt at once."""

    signum, in_loop = 0, False

    @classmethod
    def handler(cls, signum, frame) -> None:
        again, cls.signum = bool(cls.signum), cls.signum or signum
        if again or not cls.in_loop:
            raise KeyboardInterrupt


def estimate_seconds(flops: float, device: torch.device, dtype: torch.dtype, rows: int, width: int) -> float:
    """The banner's ETA: `flops` at half the speed of a [rows, width] x [width, width] matmul here."""
    x, w = (torch.randn(n, width, device=device, dtype=dtype) for n in (rows, width))
    reps, elapsed = 1, 0.0
    while elapsed < 0.05:  # double the repetitions until they take 50 ms
        t = time.perf_counter()
        float(sum((x @ w)[0, 0] for _ in range(reps)))  # waits for the device
        elapsed, reps = time.perf_counter() - t, reps * 2
    return flops / (rows * width * width * (reps // 2) / elapsed)  # 2 r w^2 FLOPs a matmul, at half speed


def hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def prepare_out(args, dist) -> dict | None:
    """The checkpoint to continue with --resume (refused where there is none, or saved with other flags).

    Otherwise --out may hold no checkpointed or finished run; the logs of a start that never
    saved a checkpoint are removed, and the run says so. Temporary files a kill left go."""
    path = lambda name: os.path.join(args.out, name)  # noqa: E731
    for name in ("checkpoint.pt", *LOGS) if dist.main else ():
        if os.path.exists(path(name) + ".tmp"):
            os.remove(path(name) + ".tmp")
    if args.resume:
        if not os.path.exists(path("checkpoint.pt")):
            raise BadInput(f"--resume: {args.out} holds no checkpoint.pt to continue from; start without --resume")
        payload = torch.load(path("checkpoint.pt"), map_location="cpu", mmap=True, weights_only=False)
        for key, value in payload["config"].items():
            if getattr(args, key) != value:
                raise BadInput(f"--resume: {args.out} was started with --{key.replace('_', '-')} {value}, "
                               f"not {getattr(args, key)}; choose another --out")
        return payload
    if held := [name for name in ("checkpoint.pt", "result.json") if os.path.exists(path(name))]:
        raise BadInput(f"--out {args.out}: holds another run ({', '.join(held)}); pass --resume to continue it, "
                       "or choose another --out")
    barrier(dist)
    stale = [name for name in LOGS if os.path.exists(path(name))]
    if dist.main:
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as e:
            raise BadInput(f"--out {args.out}: {e.strerror}") from None
        for name in stale:
            os.remove(path(name))
        if stale:
            print(f"--out {args.out}: its run never saved a checkpoint; starting over (removed {', '.join(stale)})")
    barrier(dist)
    return None


def train(args, pres: dict, t_start: float) -> int:
    size = model_size(pres, args.width, args.depth, args.context, args.vocab)
    dist = setup_distributed(args.distributed, args.device)
    device, cuda, main, optimizer = dist.device, dist.device.type == "cuda", dist.main, pres["optimizer"]
    if args.batch_size % dist.world:
        raise BadInput(f"--batch-size {args.batch_size}: not divisible by the {dist.world} processes")
    context, steps = size["context"], args.steps
    train_tokens, held_tokens, about = load_tokens(args.data, size["vocab"], context, args.data_dtype, args.seed)
    payload = prepare_out(args, dist)

    # The model, initialized by the rule; one optimizer group per (layer type, LR, eps).
    bf16 = args.dtype == "bf16" or (args.dtype == "auto" and cuda)
    compiled = args.compile == "on" or (args.compile == "auto" and cuda)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    base_lr = args.lr or pres["base_lr"]
    model, values = build_model(pres, size, base_lr, args.seed, device)
    train_model = wrap_model(model, dist, compiled)  # after init: FSDP shards the initialized weights
    fused = cuda and optimizer in ("adam", "adamw", "sgd")
    groups = param_groups((p, values[tensor_name(n)]) for n, p in model.named_parameters())
    for g in groups:  # under torch.compile a 0-dim LR tensor: no recompile per LR value
        g["peak_lr"] = g["lr"]
        if compiled and (fused or optimizer in ("adam-atan2", "adam-ps")):
            g["lr"] = torch.tensor(g["lr"], dtype=torch.float32, device=device)
    opt = make_optimizer(optimizer, groups, (args.beta1, args.beta2), fused)
    decayed: dict[float, list] = {}  # rate -> tensors, applied after each step (App. G: LR-independent)
    for n, p in model.named_parameters():
        v = values[tensor_name(n)]
        if args.weight_decay is None and "decay" in v:  # the prescription's, per tensor (its weight_decay)
            rate = v["decay"]
        else:  # --weight-decay on every matrix (default: adamw 1e-4, else 0)
            rate = args.weight_decay if args.weight_decay is not None else 1e-4 * (optimizer == "adamw")
            rate *= p.ndim > 1
        if rate:
            decayed.setdefault(rate, []).append(p)
    autocast = lambda: torch.autocast(device.type, torch.bfloat16) if bf16 else contextlib.nullcontext()  # noqa

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # x, y [batch, context] -> the mean loss
        with autocast():
            logits = train_model(x)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    # Data, logs and probes. The alignment probe keeps W_0 and z_0 of the seed's init, taken before a
    # checkpoint loads, on a fixed held-out batch; FSDP ranks keep their shard, under DDP rank 0 measures.
    batches = Batches(train_tokens, context, args.batch_size * args.grad_accum, dist.rank, dist.world, args.seed,
                      device)
    held_out = eval_batches(held_tokens, context, args.batch_size, args.eval_batches, dist.rank, dist.world, device)
    log = lambda name, columns, on: CsvLog(os.path.join(args.out, name), columns, main and on)  # noqa: E731
    metrics = log("metrics.csv", METRICS_COLUMNS, True)
    grads = log("grads.csv", GRADS_COLUMNS, args.grads_every)
    align = log("alignment.csv", ALIGNMENT_COLUMNS, args.align_every)
    probe = None
    if args.align_every and (dist.mode == "fsdp" or main):
        probe_batch = eval_batches(held_tokens, context, PROBE_SEQUENCES, 1, 0, 1, device)[0][0]
        probe = AlignmentProbe(model, probe_batch, autocast, dist)
    start, last = 0, {"seconds": 0.0, "train_loss": None, "eval_loss": None}
    if payload is not None:
        if probe is not None:
            probe.check(payload.get("align_probe"))
        load_checkpoint(payload, model, opt)
        for g in opt.param_groups:  # a loaded LR tensor sits on the CPU
            g["lr"] = torch.tensor(float(g["lr"]), device=device) if torch.is_tensor(g["lr"]) else g["lr"]
        start, batches.position, last = payload["step"], payload["data_position"], {k: payload[k] for k in last}
        for csv_log in (metrics, grads, align):
            csv_log.truncate_after(start)  # the loop logs later rows again: none is duplicated
    seconds = lambda: last["seconds"] + time.time() - t_start  # noqa: E731 (summed over resumes)
    tokens_per_step, flops = args.batch_size * args.grad_accum * context, flops_per_token(size)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(device, bf16)
    warmup = args.warmup if args.warmup is not None else min(1000, max(1, steps // 10))

    @torch.no_grad()
    def evaluate() -> float:
        train_model.eval()
        total = sum(loss_of(x, y) for x, y in held_out) / len(held_out)
        train_model.train()
        return float(all_mean(total, dist))

    def probe_alignment(step: int) -> None:
        if probe is not None and step % args.align_every == 0:  # collective under FSDP: every rank measures
            rows = probe.measure(step).items()
            align.write([{"width": size["width"], "layer": k, "step": step, **v} for k, v in rows])

    def save(step: int) -> None:
        extra = {"step": step, "data_position": batches.position, **last, "seconds": seconds(),
                 "config": {k: getattr(args, k) for k in IDENTITY},
                 "align_probe": probe.fingerprint() if probe is not None else None}
        save_checkpoint(os.path.join(args.out, "checkpoint.pt"), model, opt, extra, dist)

    if main:  # the banner, with an ETA measured on a matmul before the first step
        n, dtype = sum(p.numel() for p in model.parameters()), torch.bfloat16 if bf16 else torch.float32
        eta = estimate_seconds(flops * tokens_per_step * (steps - start) / dist.world, device, dtype,
                               min(tokens_per_step // args.grad_accum // dist.world, 8192), size["width"])
        print(f"NanoDO width {size['width']}, depth {size['depth']}, {size['heads']} heads, context {context}, "
              f"vocab {size['vocab']}: {n / 1e6:.2f}M parameters | {pres['parameterization']} + {optimizer}, "
              f"base LR {base_lr:g}\ndata: {about}\n{tokens_per_step:,} tokens per step, steps {start + 1}-{steps}"
              f" | {device}{f' x {dist.world}' if dist.world > 1 else ''}, {'bf16' if bf16 else 'fp32'}"
              f"{', torch.compile (the first step compiles)' if compiled else ''} | ETA ~{hms(eta)} (estimated "
              "from a matmul; measured from step 1)", flush=True)
        w = size["width"] // size["heads"] * max(1, 128 * size["heads"] // size["width"])  # a tiny model's width
        if device.type == "cpu" and eta > 600 and (size["width"] > w or size["depth"] > 2):
            print(f"on a CPU, try a tiny model: --width {w} --depth 2 --context 64 --vocab 256 --batch-size 16 "
                  "--steps 200 --threads 1 (about 30 s)", flush=True)

    # The loop.
    if start == 0:
        probe_alignment(0)
    status, stop, done, last_t, last_step = "done", 0, start, time.perf_counter(), start
    Stop.in_loop = True
    for step in range(start, steps):
        factor = lr_factor(step, steps, warmup)
        for g in opt.param_groups:  # the schedule; a 0-dim LR tensor is filled in place
            g["lr"] = g["lr"].fill_(g["peak_lr"] * factor) if torch.is_tensor(g["lr"]) else g["peak_lr"] * factor
        loss = torch.zeros((), device=device)
        for micro in range(args.grad_accum):
            x, y = batches.next()
            sync = micro == args.grad_accum - 1 or dist.mode != "ddp"  # DDP reduces at the last micro-batch
            with contextlib.nullcontext() if sync else train_model.no_sync():
                micro_loss = loss_of(x, y)
                (micro_loss / args.grad_accum).backward()
            loss += micro_loss.detach() / args.grad_accum
        if args.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        with torch.no_grad():
            for rate, tensors in decayed.items():  # App. G: decoupled from the LR, scaled by the schedule only
                torch._foreach_mul_(tensors, 1.0 - rate * factor)
        done = step + 1
        if args.grads_every and (done % args.grads_every == 0 or done == 1):
            grads.write([{"width": size["width"], "step": done, "seed": args.seed, **r}
                        for r in gradient_scales(model, opt, dist)])
        opt.zero_grad(set_to_none=True)
        if done % args.log_every == 0 or done in (1, steps, args.stop_at):
            train_loss = float(all_mean(loss, dist))  # waits for the device
            per_step, last_step = (time.perf_counter() - last_t) / (done - last_step), done  # since the last log
            tps, eta = tokens_per_step / per_step, (steps - done) * per_step
            eval_loss = evaluate() if done % args.eval_every == 0 or done in (steps, args.stop_at) else None
            mfu = tps * flops / (peak * dist.world) if peak else None
            metrics.write([{"step": done, "train_loss": train_loss, "eval_loss": eval_loss, "lr": base_lr * factor,
                            "tokens_per_s": tps, "mfu": mfu}])
            last.update(train_loss=train_loss, eval_loss=eval_loss if eval_loss is not None else last["eval_loss"])
            if main:
                print(f"step {done}/{steps} | loss {train_loss:.4f}" + (f" | eval {eval_loss:.4f}" if eval_loss
                      is not None else "") + f" | lr {base_lr * factor:.3g} | {tps:,.0f} tok/s" +
                      (f" | mfu {100 * mfu:.1f}%" if mfu else "") + f" | ETA {hms(eta)}", flush=True)
            if not math.isfinite(train_loss + (eval_loss or 0.0)):
                status = "diverged"
                break
        probe_alignment(done)
        stop = Stop.signum if dist.world == 1 else 0  # under torchrun the ranks agree at log steps, to stop together
        if dist.world > 1 and done % args.log_every == 0:
            flag = torch.tensor(float(Stop.signum), device=device)
            tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
            stop = int(flag)
        if stop or done in (steps, args.stop_at) or (args.ckpt_every and done % args.ckpt_every == 0):
            save(done)
        if stop or done == args.stop_at:
            status = "stopped"
            break
        if last_step == done:  # evaluation, probes and checkpoints are not throughput
            last_t = time.perf_counter()
    Stop.in_loop = False

    result = {"status": status, "step": done, "steps": steps, "width": size["width"], "depth": size["depth"],
              "lr": base_lr, "seed": args.seed, "parameterization": pres["parameterization"], "optimizer": optimizer,
              **{k: v if v is None or math.isfinite(v) else None for k, v in last.items()}, "seconds": seconds()}
    if main:
        with open(os.path.join(args.out, "result.json.tmp"), "w") as f:
            json.dump(result, f, indent=1)
        os.replace(os.path.join(args.out, "result.json.tmp"), os.path.join(args.out, "result.json"))
    barrier(dist)  # every rank is done before any tears the process group down
    if status == "diverged" and main:
        print(f"diverged at step {done}: the loss is not finite ({args.out}/result.json)", flush=True)
    if stop and main:
        sys.stderr.write(f"{os.path.basename(sys.argv[0])}: stopped by {signal.Signals(stop).name} at step {done}: "
                         f"checkpoint saved in {args.out}; continue with --resume\n")
    return 1 if status == "diverged" else 128 + stop if stop else 0


def main(argv: list[str] | None = None, prescription: dict | None = None) -> int:
    """Exit status: 0 done (or --stop-at), 1 diverged, 2 bad input, 130 / 143 SIGINT / SIGTERM (checkpoint saved)."""
    t_start, prog = time.time(), os.path.basename(sys.argv[0]) or "train.py"
    Stop.signum, Stop.in_loop = 0, False
    before = {s: signal.signal(s, Stop.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        args = parse_args(argv)
        pres = prescription if prescription is not None else PRESCRIPTION  # noqa: F821 (the data block)
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.eps is not None:
            if pres["base_eps"] is None:
                raise BadInput(f"--eps: {pres['optimizer']} has no epsilon")
            pres = {**pres, "base_eps": args.eps}
        return train(args, pres, t_start)
    except BadInput as e:
        sys.stderr.write(f"{prog}: error: {' '.join(str(e).split())}\n")
        return 2
    except KeyboardInterrupt:
        signum = Stop.signum or signal.SIGINT
        when = "again: not saved since the last checkpoint" if Stop.in_loop else "before the first step; nothing saved"
        sys.stderr.write(f"{prog}: stopped by {signal.Signals(signum).name} {when}\n")
        return 128 + signum
    finally:
        Stop.in_loop = False
        for s, handler in before.items():
            signal.signal(s, handler)
        if tdist.is_initialized():
            tdist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
