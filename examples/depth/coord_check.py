"""Depth coordinate check: activation and update sizes per block across depths 2..32 at a fixed width.

For each depth parameterization (none, depth-mup alpha = 1/2, completep alpha = 1), the
NanoDO of the emitted script at width 64 is built by `scaleadvise.torch.parameterize` (muP in
width, AdamW, per-layer epsilon; base depth 2) at depths 2, 4, 8, 16, 32 and trained for a
few constant-LR steps on byte tokens; on a fixed held-out probe batch it records

    h0, h     RMS of the residual stream after each block, at init and after T steps (mean over blocks)
    dh        RMS of its change h_T - h_0, the stream's update (mean over blocks, and after the last block)
    branch    L x the mean RMS of the change of one branch's contribution m·f_l (attention, MLP): the
              update every block adds to the stream, times the number of blocks
    own       RMS of (W_T - W_0) x_0 of each block's mlp.up on its input at init: how much the block's
              own features move (feature learning inside the block)

and fits the depth exponent of each (slope of log2 RMS against log2 L). The theory
(scaleadvise/core/depth.py): with branches scaled by (L/L0)^-alpha and the branch LR by
(L/L0)^(alpha-1) (Adam), each block moves the stream by Θ(1/L), so h, dh and L x branch stay
flat in L for both alphas; without depth scaling the random branches add up (h0 ∝ L^1/2) and
so do the updates (dh and L x branch grow like L). Inside a block the features move by
η·(L/L0)^(alpha-1): Θ(1) for CompleteP and for no scaling, L^-1/2 for Depth-muP (the lazy
blocks Dey et al. 2025 set out to avoid). At finite base depth CompleteP's stream at init
still carries its base branches' variance, which fades as L0²/L: h0 falls towards the
embedding's size (a finite-L0 effect, not a drift of the limit).

    python examples/depth/coord_check.py            # ~3 min on 2 busy CPU cores
    python examples/depth/coord_check.py --quick    # depths 2..8, 1 seed: ~20 s

Writes results/coord_check.json and results/coord_check.png here.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from scaleadvise.provenance import machine  # noqa: E402
from scaleadvise.script.template.data import batch_offsets, gather_batch  # noqa: E402
from scaleadvise.torch.coord_check import capture, rms, slope  # noqa: E402

PARAMS = ("none", "depth-mup", "completep")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", default="2,4,8,16,32")
    ap.add_argument("--base-depth", type=int, default=2)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--context", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help="constant-LR AdamW steps")
    ap.add_argument("--lr", type=float, default=2.0 ** -8, help="base LR (muP in width at base width = width)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=str(common.HERE / "results"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.depths, args.seeds, args.steps = "2,4,8", "0", 5
    return args


def one(depth: int, depth_param: str, seed: int, args, data) -> dict:
    """Per-block sizes (module doc) for one model."""
    net, groups = common.model(args.width, depth, head_dim=args.head_dim, context=args.context, param="mup",
                               base_width=args.width, base_lr=args.lr, depth_param=depth_param,
                               base_depth=args.base_depth, seed=seed)
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.95))
    train, held = data
    probe = gather_batch(held, batch_offsets(len(held), args.context, args.batch, 99, 0), args.context)[0]
    blocks = [f"blocks.{i}" for i in range(depth)]
    branches = [f"{b}.{m}" for b in blocks for m in ("attn", "mlp")]  # outputs after the branch multiplier
    names = blocks + branches + [f"{b}.mlp_norm" for b in blocks]
    h0 = capture(net, probe, names)
    w0 = [net.blocks[i].mlp.up.weight.detach().clone() for i in range(depth)]
    for step in range(args.steps):
        x, y = gather_batch(train, batch_offsets(len(train), args.context, args.batch, seed, step), args.context)
        opt.zero_grad(set_to_none=True)
        common.loss_of(net, x, y).backward()
        opt.step()
    hT = capture(net, probe, names)
    with torch.no_grad():
        own = [rms(F.linear(h0[f"blocks.{i}.mlp_norm"], net.blocks[i].mlp.up.weight - w0[i])) for i in range(depth)]
    return {"h0": [rms(h0[b]) for b in blocks], "h": [rms(hT[b]) for b in blocks],
            "dh": [rms(hT[b] - h0[b]) for b in blocks],
            "branch": [depth * rms(hT[b] - h0[b]) for b in branches], "own": own}


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    depths, seeds = [int(d) for d in args.depths.split(",")], [int(s) for s in args.seeds.split(",")]
    data = common.tokens()
    t0 = time.time()
    out = {"args": {**vars(args), "out": os.path.relpath(args.out, common.HERE.parent.parent)}, "machine": machine(),
           "params": {}}
    for dp in PARAMS:
        per_depth = {}
        for L in depths:
            runs = [one(L, dp, s, args, data) for s in seeds]
            # mean over seeds, then over blocks (the "per block" size), and the last block alone
            mean = {k: np.mean([r[k] for r in runs], axis=0) for k in runs[0]}
            per_depth[L] = {**{f"{k}_blocks": float(np.mean(v)) for k, v in mean.items()},
                            **{f"{k}_last": float(v[-1]) for k, v in mean.items()},
                            "per_block": {k: [float(x) for x in v] for k, v in mean.items()}}
            r = per_depth[L]
            print(f"{dp:10s} L={L:3d}  h0 {r['h0_blocks']:.3g}  h {r['h_blocks']:.3g}  dh {r['dh_blocks']:.3g} "
                  f"(last {r['dh_last']:.3g})  L x branch {r['branch_blocks']:.3g}  own {r['own_blocks']:.3g}",
                  flush=True)
        slopes = {k: slope(depths, [per_depth[L][k] for L in depths]) for k in
                  ("h0_blocks", "h_blocks", "dh_blocks", "branch_blocks", "own_blocks", "h_last", "dh_last")}
        out["params"][dp] = {"depths": depths, "by_depth": per_depth, "slopes": slopes}
    out["seconds"] = round(time.time() - t0, 1)
    res = Path(args.out)
    res.mkdir(parents=True, exist_ok=True)
    tmp = res / "coord_check.json.tmp"
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(res / "coord_check.json")
    plot(out, res / "coord_check.png")
    print("depth exponents (slope of log RMS vs log L; mean over blocks):")
    for dp, r in out["params"].items():
        s = r["slopes"]
        print(f"  {dp:10s} h0 {s['h0_blocks']:+.3f}  h {s['h_blocks']:+.3f}  dh {s['dh_blocks']:+.3f} "
              f"(last {s['dh_last']:+.3f})  L x branch {s['branch_blocks']:+.3f}  own {s['own_blocks']:+.3f}")
    print(f"{out['seconds']} s; wrote {res / 'coord_check.json'} and coord_check.png")
    return out


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("h0_blocks", "stream at init h_0 (mean over blocks)"), ("h_blocks", "stream h_T (mean over blocks)"),
            ("dh_last", "stream update h_T - h_0, last block"), ("branch_blocks", "L x one branch's update Δ(m f_l)"),
            ("own_blocks", "in-block features ΔW_up x_0")]
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.8), constrained_layout=True)
    for ax, (k, title) in zip(axes, keys):
        for dp, r in out["params"].items():
            L = r["depths"]
            ax.plot(L, [r["by_depth"][d][k] for d in L], "o-",
                    label=f"{dp} (L^{r['slopes'][k]:+.2f})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("depth L (blocks)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("RMS on a held-out probe batch")
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


if __name__ == "__main__":
    main()
