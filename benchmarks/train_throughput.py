"""Throughput of the emitted training script against a plain hand-written PyTorch model, in one run.

Per width, interleaved over repeats (machine drift hits all three alike), each in a fresh process:

* emitted:  the script `scaleadvise emit-train --param mup` writes (multipliers on the embedding,
            readout and norm gains, per-layer LR groups, muP's attention scale), run as a user runs it;
* plain:    the same NanoDO shape written by hand below (nn.Embedding, nn.LayerNorm, nn.Linear, SDPA,
            one torch.optim.Adam group), with the same loop: bf16 autocast and torch.compile on CUDA,
            fused Adam there (foreach elsewhere), the loss read every step;
* stp:      the emitted script for stp + adam, where every multiplier is 1 (no multiply runs): the
            parameterization's own overhead is 1 - emitted / stp.

Prints the median tokens/s of the timed steps, MFU on CUDA, emitted / plain (goal >= 0.97) and the
parameterization overhead (goal <= 2%).

    python benchmarks/train_throughput.py                                    # tiny, CPU, 1 thread
    python benchmarks/train_throughput.py --widths 1024,2048 --depth 8 --context 512 --vocab 32101 \\
        --head-dim 128 --batch-size 32 --steps 60 --skip 20 --device cuda    # the paper's shape, one GPU

MFU = tokens/s x (6 N_matmul + 12 L d T) / peak (dense bf16 peak from the device name; MFU goals
on an H100-class device: >= 45% at width 1024, >= 50% at 2048).
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def plain_worker(args: argparse.Namespace) -> None:
    """The hand-written baseline: prints the median tokens/s of the timed steps as JSON."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    d, heads, T = args.width, args.width // args.head_dim, args.context

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d, bias=False), nn.LayerNorm(d, bias=False)
            self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
            self.up, self.down = nn.Linear(d, 4 * d, bias=False), nn.Linear(4 * d, d, bias=False)

        def forward(self, x):
            B = x.shape[0]
            h = self.ln1(x)
            q, k, v = (m(h).view(B, T, heads, d // heads).transpose(1, 2) for m in (self.q, self.k, self.v))
            x = x + self.o(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, d))
            return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(args.vocab, d), nn.Embedding(T, d)
            self.blocks = nn.ModuleList(Block() for _ in range(args.depth))
            self.ln, self.head = nn.LayerNorm(d, bias=False), nn.Linear(d, args.vocab, bias=False)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
            for b in self.blocks:
                x = b(x)
            return self.head(self.ln(x))

    with torch.device(device):
        model = Model()
    train_model = torch.compile(model) if cuda else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9, fused=cuda or None)
    tokens = np.random.default_rng(0).integers(0, args.vocab, 1 << 21).astype(np.uint16)
    rng, times = np.random.default_rng(1), []
    for step in range(args.steps):
        t = time.perf_counter()
        offsets = rng.integers(0, len(tokens) - T - 1, size=args.batch_size)
        data = torch.from_numpy(np.stack([tokens[o: o + T + 1].astype(np.int64) for o in offsets]))
        x, y = data[:, :-1].to(device, non_blocking=True), data[:, 1:].to(device, non_blocking=True)
        with torch.autocast(device.type, torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False):
            logits = train_model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        float(loss)  # the script reads its loss every logged step; the benchmark logs every step
        times.append(time.perf_counter() - t)
    print(json.dumps({"tokens_per_s": args.batch_size * T / statistics.median(times[args.skip:])}))


def run_plain(args: argparse.Namespace, width: int) -> float:
    cmd = [sys.executable, str(HERE), "--plain-worker", "--width", str(width), *_common(args)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env(args)).stdout
    return json.loads(out.strip().splitlines()[-1])["tokens_per_s"]


def run_script(script: Path, out: Path, args: argparse.Namespace) -> float:
    cmd = [sys.executable, str(script), "--steps", str(args.steps), "--device", args.device, "--out", str(out),
           "--batch-size", str(args.batch_size), "--log-every", "1", "--eval-every", str(10 ** 9),
           "--eval-batches", "1", "--grads-every", "0", "--align-every", "0", "--ckpt-every", "0", "--warmup", "1"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=_env(args))
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))[args.skip + 1:-1]  # step 1 logs alone; the last step evaluates
    return statistics.median(float(r["tokens_per_s"]) for r in rows)


def _common(args: argparse.Namespace) -> list[str]:
    return ["--depth", str(args.depth), "--context", str(args.context), "--vocab", str(args.vocab), "--head-dim",
            str(args.head_dim), "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--skip",
            str(args.skip), "--device", args.device, "--threads", str(args.threads or 0)]


def _env(args: argparse.Namespace) -> dict:
    return {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}


def emit(param: str, width: int, args: argparse.Namespace, path: Path) -> None:
    from scaleadvise.core.prescribe import PrescribeRequest, prescribe
    from scaleadvise.script.emit import emit_script

    doc = prescribe(PrescribeRequest(param=param, optim="adam", width=width, base_width=width, depth=args.depth,
                                     head_dim=args.head_dim, context=args.context, vocab=args.vocab)).to_dict()
    path.write_text(emit_script(doc, "benchmarks/train_throughput.py"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", default="128")
    p.add_argument("--width", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--head-dim", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--skip", type=int, default=5, help="untimed first steps (compile, allocator warm-up)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the best of each is reported")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per process (0: torch's choice)")
    p.add_argument("--plain-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.plain_worker:
        return plain_worker(args)

    import torch

    from scaleadvise.script.template.dist import peak_flops
    from scaleadvise.script.template.nanodo import flops_per_token

    device = torch.device(args.device)
    peak = peak_flops(device, bf16=True) if device.type == "cuda" else None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {args.threads or 'all'} thread(s)"
    print(f"{name}: NanoDO depth {args.depth}, context {args.context}, vocab {args.vocab}, head dim {args.head_dim}, "
          f"batch {args.batch_size}, {args.steps} steps ({args.skip} untimed), best of {args.repeats}")
    print(f"{'width':>6} {'emitted tok/s':>14} {'MFU':>6} {'plain tok/s':>12} {'MFU':>6} {'emitted/plain':>14} "
          f"{'stp tok/s':>10} {'param. overhead':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        for width in (int(w) for w in args.widths.split(",")):
            scripts = {param: Path(tmp) / f"{param}{width}.py" for param in ("mup", "stp")}
            for param, path in scripts.items():
                emit(param, width, args, path)
            best = {"mup": 0.0, "stp": 0.0, "plain": 0.0}
            for k in range(args.repeats):
                for what in ("mup", "plain", "stp"):
                    tps = run_plain(args, width) if what == "plain" else \
                        run_script(scripts[what], Path(tmp) / f"o{width}_{what}_{k}", args)
                    best[what] = max(best[what], tps)
            flops = flops_per_token({"width": width, "depth": args.depth, "context": args.context,
                                     "vocab": args.vocab, "ffn": 4 * width})
            mfu = lambda t: f"{100 * t * flops / peak:5.1f}%" if peak else "   n/a"  # noqa: E731
            e, b, s = best["mup"], best["plain"], best["stp"]
            print(f"{width:>6} {e:>14,.0f} {mfu(e):>6} {b:>12,.0f} {mfu(b):>6} {e / b:>14.3f} {s:>10,.0f} "
                  f"{100 * (1 - e / s):>15.1f}%", flush=True)


if __name__ == "__main__":
    main()
