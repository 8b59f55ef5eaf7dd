"""Devices, DDP and FSDP2 under torchrun, atomic checkpoints."""

import os
from typing import NamedTuple

import torch
import torch.distributed as tdist

from scaleadvise.script.template.config import BadInput

# Dense peak TFLOP/s (bf16, tf32) by device name, from the vendors' data sheets (SXM parts).
PEAK_TFLOPS = (("H100 PCIe", 756.0, 378.0), ("H100", 989.0, 494.7), ("H200", 989.0, 494.7),
               ("GH200", 989.0, 494.7), ("A100", 312.0, 156.0), ("L40S", 362.0, 183.0), ("A10G", 70.0, 35.0))


class Dist(NamedTuple):
    mode: str  # "none", "ddp", "fsdp"
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(mode: str, device_flag: str) -> Dist:
    """The device, and the torchrun process group (NCCL on CUDA, gloo on CPU)."""
    world, rank, local_rank = (int(os.environ.get(k, d)) for k, d in zip(("WORLD_SIZE", "RANK", "LOCAL_RANK"), "100"))
    if mode != "none" and "RANK" not in os.environ:
        raise BadInput(f"--distributed {mode}: start the script with torchrun --nproc_per_node N train.py ...")
    flag = ("cuda" if torch.cuda.is_available() else "cpu") if device_flag == "auto" else device_flag
    if flag.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BadInput(f"--device {flag}: no CUDA device here (torch {torch.__version__}); use --device cpu")
        flag = f"cuda:{local_rank}" if flag == "cuda" else flag
        if torch.device(flag).index >= torch.cuda.device_count():
            raise BadInput(f"--device {flag}: only {torch.cuda.device_count()} CUDA device(s)")
        torch.cuda.set_device(flag)
    elif flag not in ("cpu", "mps"):
        raise BadInput(f"--device {device_flag}: expected auto, cpu, cuda, cuda:N or mps")
    device = torch.device(flag)
    if world > 1 and not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(mode if world > 1 else "none", rank, world, local_rank, device)


def wrap_model(model: torch.nn.Module, dist: Dist, compile_model: bool) -> torch.nn.Module:
    """The module the training step calls. FSDP2 shards each block, then the root (the
    parameters become DTensors; their names, hence the groups, do not change)."""
    if dist.mode == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        cuda = dist.device.type == "cuda"  # bf16 compute, fp32 gradient reduction
        policy = MixedPrecisionPolicy(torch.bfloat16, torch.float32) if cuda else MixedPrecisionPolicy()
        for module in (*model.blocks, model):
            fully_shard(module, mp_policy=policy)
    model = torch.compile(model) if compile_model else model
    if dist.mode == "ddp":
        cuda = dist.device.type == "cuda"
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dist.device.index] if cuda else None)
    return model


def all_mean(value: torch.Tensor, dist: Dist) -> torch.Tensor:
    if dist.world > 1:
        value = value.clone()
        tdist.all_reduce(value)
        value /= dist.world
    return value


def all_sum(value: torch.Tensor, dist: Dist) -> torch.Tensor:
    if dist.world > 1 and dist.mode == "fsdp":  # only FSDP holds shards; DDP ranks hold copies
        tdist.all_reduce(value)
    return value


def local_tensor(t: torch.Tensor) -> torch.Tensor:  # the local shard of an FSDP DTensor (or the tensor itself)
    return t.to_local() if hasattr(t, "to_local") else t


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        tdist.barrier()


def peak_flops(device: torch.device, bf16: bool) -> float | None:
    """Peak dense FLOP/s of one device, from its name; None where unknown (no MFU)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return next(((bf if bf16 else tf) * 1e12 for key, bf, tf in PEAK_TFLOPS if name and key in name), None)


def save_checkpoint(path: str, model: torch.nn.Module, opt: torch.optim.Optimizer, extra: dict, dist: Dist) -> None:
    """Full (unsharded) model and optimizer state plus `extra`. Every rank helps gather;
    rank 0 writes a temporary file and renames it over the old checkpoint, so a kill
    leaves the old or the new checkpoint, never a torn one (and the next start removes
    a temporary file a kill left)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=dist.mode == "fsdp")
    model_sd, optim_sd = get_state_dict(model, opt, options=options)
    if dist.main:
        try:
            torch.save({"model": model_sd, "optim": optim_sd, **extra}, path + ".tmp")
            os.replace(path + ".tmp", path)
        finally:
            if os.path.exists(path + ".tmp"):
                os.remove(path + ".tmp")
    barrier(dist)


def load_checkpoint(payload: dict, model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(model, opt, model_state_dict=payload["model"], optim_state_dict=payload["optim"],
                   options=StateDictOptions(full_state_dict=True))
