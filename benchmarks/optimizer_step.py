"""Step time of scaleadvise's AdamAtan2 relative to torch.optim.AdamW on a GPT-2-small
(124M) parameter set. Goal (issue 4): AdamAtan2(foreach) <= 1.2x AdamW(foreach=True).

    python benchmarks/optimizer_step.py                 # CPU (and GPU when there is one)
    python benchmarks/optimizer_step.py --rounds 5 --warmup 1 --device cpu

The two optimizers of a pair live side by side on the same parameters and gradients and
are stepped in alternating order round by round, so load changes on a shared machine hit
both alike. The ratio printed is the median of the per-round ratios; on CPU also of the
per-round process-CPU-time ratios, which leave out time spent descheduled. The
hyperparameters match (betas, decoupled weight decay 0.1): only the update rule differs.
"""

import argparse
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch

from scaleadvise.torch.optim import AdamAtan2

VOCAB, CONTEXT, D, LAYERS = 50257, 1024, 768, 12
Maker = Callable[[List[torch.nn.Parameter]], torch.optim.Optimizer]


def gpt2_small_shapes() -> List[Tuple[int, ...]]:
    """nanoGPT's GPT-2 small: tied token embedding, positions, 12 blocks, final norm."""
    shapes: List[Tuple[int, ...]] = [(VOCAB, D), (CONTEXT, D)]
    for _ in range(LAYERS):
        shapes += [(D,), (D,), (3 * D, D), (3 * D,), (D, D), (D,)]  # ln_1, attn qkv, attn proj
        shapes += [(D,), (D,), (4 * D, D), (4 * D,), (D, 4 * D), (D,)]  # ln_2, mlp fc, mlp proj
    return shapes + [(D,), (D,)]  # ln_f


def make_params(device: torch.device) -> List[torch.nn.Parameter]:
    gen = torch.Generator(device=device).manual_seed(0)
    params = []
    for shape in gpt2_small_shapes():
        p = torch.nn.Parameter(0.02 * torch.randn(shape, device=device, generator=gen))
        p.grad = 1e-3 * torch.randn(shape, device=device, generator=gen)
        params.append(p)
    return params


def timed(step: Callable[[], None], device: torch.device) -> Tuple[float, float]:
    """(wall, process CPU) seconds of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(base: torch.optim.Optimizer, ours: torch.optim.Optimizer, device: torch.device,
            rounds: int, warmup: int) -> Dict[str, float]:
    """Median step times and median per-round ratios ours / base."""
    for _ in range(warmup):
        base.step()
        ours.step()
    walls: Dict[str, List[float]] = {"base": [], "ours": []}
    ratios: Dict[str, List[float]] = {"wall": [], "cpu": []}
    for r in range(rounds):
        order = [("base", base), ("ours", ours)]
        if r % 2:
            order.reverse()
        got = {name: timed(opt.step, device) for name, opt in order}
        for name in walls:
            walls[name].append(got[name][0])
        ratios["wall"].append(got["ours"][0] / got["base"][0])
        ratios["cpu"].append(got["ours"][1] / got["base"][1])
    return {
        "base_ms": 1e3 * statistics.median(walls["base"]),
        "ours_ms": 1e3 * statistics.median(walls["ours"]),
        "wall_ratio": statistics.median(ratios["wall"]),
        "cpu_ratio": statistics.median(ratios["cpu"]),
    }


def pairs(device: torch.device) -> List[Tuple[str, Tuple[str, Maker], Tuple[str, Maker]]]:
    hp = dict(lr=6e-4, betas=(0.9, 0.98), weight_decay=0.1)
    out: List[Tuple[str, Tuple[str, Maker], Tuple[str, Maker]]] = [
        ("foreach",
         ("AdamW(foreach=True)", lambda ps: torch.optim.AdamW(ps, foreach=True, **hp)),
         ("AdamAtan2(foreach=True)", lambda ps: AdamAtan2(ps, foreach=True, **hp))),
        ("per-tensor",
         ("AdamW(foreach=False)", lambda ps: torch.optim.AdamW(ps, foreach=False, **hp)),
         ("AdamAtan2(foreach=False)", lambda ps: AdamAtan2(ps, foreach=False, **hp))),
    ]
    if device.type == "cuda":
        out.append(("fused",
                    ("AdamW(fused=True)", lambda ps: torch.optim.AdamW(ps, fused=True, **hp)),
                    ("AdamAtan2(foreach=True)", lambda ps: AdamAtan2(ps, foreach=True, **hp))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (a step of each)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (state creation)")
    parser.add_argument("--device", action="append", help="cpu or cuda; repeatable "
                        "(default: cpu, plus cuda when available)")
    args = parser.parse_args()
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])

    for name in devices:
        device = torch.device(name)
        params = make_params(device)
        n = sum(p.numel() for p in params)
        print(f"{name}: {n / 1e6:.1f}M parameters in {len(params)} tensors, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"median of {args.rounds} rounds after {args.warmup} warmup")
        for label, (base_name, make_base), (ours_name, make_ours) in pairs(device):
            res = compare(make_base(params), make_ours(params), device, args.rounds, args.warmup)
            cpu = f", CPU-time {res['cpu_ratio']:.2f}x" if device.type == "cpu" else ""
            print(f"  {label:10s} {base_name} {res['base_ms']:.1f} ms | "
                  f"{ours_name} {res['ours_ms']:.1f} ms | "
                  f"ratio {res['wall_ratio']:.2f}x{cpu}  (goal <= 1.20x)")


if __name__ == "__main__":
    main()
