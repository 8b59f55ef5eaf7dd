"""Devices, data parallelism (DDP, FSDP2) and atomic checkpoints for the emitted script.

Bundled verbatim into the emitted script (torch and the standard library only).
"""

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as tdist

# ---- bundle: drop begin
from scaleadvise.script.template.nanodo import BadInput
# ---- bundle: drop end

# Dense peak TFLOP/s by device name, (bf16, tf32): vendor data sheets (SXM parts).
PEAK_TFLOPS = (("H100 PCIe", 756.0, 378.0), ("H100", 989.0, 494.7), ("H200", 989.0, 494.7),
               ("GH200", 989.0, 494.7), ("A100", 312.0, 156.0), ("L40S", 362.0, 183.0),
               ("A10G", 70.0, 35.0), ("RTX 4090", 165.0, 82.6), ("V100", 125.0, 15.7))


@dataclass
class Dist:
    mode: str  # "none", "ddp", "fsdp"
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(flag: str, local_rank: int = 0) -> torch.device:
    if flag == "auto":
        flag = "cuda" if torch.cuda.is_available() else "cpu"
    if flag.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BadInput(f"--device {flag}: no CUDA device is available (torch {torch.__version__}, "
                           f"CUDA build: {torch.version.cuda or 'none'}); use --device cpu")
        if flag == "cuda":
            flag = f"cuda:{local_rank}"
        if torch.device(flag).index >= torch.cuda.device_count():
            raise BadInput(f"--device {flag}: only {torch.cuda.device_count()} CUDA device(s)")
    elif flag != "cpu" and flag != "mps":
        raise BadInput(f"--device {flag}: expected auto, cpu, cuda or cuda:N")
    return torch.device(flag)


def setup_distributed(mode: str, device_flag: str) -> Dist:
    """Join the torchrun process group (NCCL on CUDA, gloo on CPU) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if mode != "none" and world == 1 and "RANK" not in os.environ:
        raise BadInput(f"--distributed {mode}: start the script with torchrun "
                       "(torchrun --nproc_per_node N train.py ...)")
    device = resolve_device(device_flag, local_rank)
    if world > 1 and not tdist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(mode if world > 1 or mode != "none" else "none", rank, world, local_rank, device)


def wrap_model(model: torch.nn.Module, dist: Dist, compile_model: bool) -> torch.nn.Module:
    """The module the training step calls. FSDP2 shards each block and then the root
    (parameters become DTensors; names, hence the per-layer groups, are unchanged)."""
    if dist.mode == "fsdp":
        try:
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        except ImportError:  # torch < 2.6
            from torch.distributed._composable.fsdp import MixedPrecisionPolicy, fully_shard
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
            if dist.device.type == "cuda" else MixedPrecisionPolicy()
        for block in model.blocks:
            fully_shard(block, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        return torch.compile(model) if compile_model else model
    if compile_model:
        model = torch.compile(model)
    if dist.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [dist.device.index] if dist.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
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


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """The local shard of an FSDP DTensor (or the tensor itself)."""
    return t.to_local() if hasattr(t, "to_local") else t


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        tdist.barrier()


def peak_flops(device: torch.device, bf16: bool) -> float | None:
    """Peak dense FLOP/s of one device, from its name; None if unknown (MFU blank)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, bf, tf in PEAK_TFLOPS:
        if key in name:
            return (bf if bf16 else tf) * 1e12
    return None


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str, model: torch.nn.Module, opt: torch.optim.Optimizer, extra: dict,
                    dist: Dist) -> None:
    """Full (unsharded) model and optimizer state, step, RNG and data position.
    Every rank takes part in gathering; rank 0 writes to a temporary file and
    renames it over the old checkpoint, so a kill never leaves a torn file."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=dist.mode == "fsdp")
    model_sd, optim_sd = get_state_dict(model, opt, options=options)
    if dist.main:
        payload = {"model": model_sd, "optim": optim_sd, "rng": _rng_state(), **extra}
        tmp = f"{path}.tmp{os.getpid()}"
        torch.save(payload, tmp)
        os.replace(tmp, path)
    barrier(dist)


def load_checkpoint(path: str, model: torch.nn.Module, opt: torch.optim.Optimizer, dist: Dist) -> dict:
    """Restore what save_checkpoint wrote; returns the payload (step, data position, ...)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    payload = torch.load(path, map_location="cpu", weights_only=False)
    set_state_dict(model, opt, model_state_dict=payload["model"], optim_state_dict=payload["optim"],
                   options=StateDictOptions(full_state_dict=True))
    _set_rng_state(payload["rng"])
    return payload
