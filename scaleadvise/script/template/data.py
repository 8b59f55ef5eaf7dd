"""Token data for the emitted training script: memmapped .bin, byte-level .txt, synthetic.

Bundled verbatim into the emitted script (torch, numpy and the standard library only).
Batches are drawn at random offsets, nanoGPT style, but batch k's offsets depend only
on (seed, k): the data position is one integer, a resumed run sees exactly the batches
it would have seen, and data-parallel ranks slice one global batch, so a DDP run
trains on the same tokens as a single-process run.
"""

import concurrent.futures
import os

import numpy as np
import torch

# ---- bundle: drop begin
from scaleadvise.script.template.nanodo import BadInput
# ---- bundle: drop end

SYNTHETIC_TOKENS = 1 << 21
_SYNTHETIC_STEPS = np.array([1, 2, 3, 5])


def synthetic_tokens(vocab: int, n: int, seed: int) -> np.ndarray:
    """A learnable stream with no download: a random walk on a hidden cycle of the
    vocabulary, seen through a fixed random permutation. Each token has four
    equally likely successors, so the achievable loss is ln 4 ~ 1.39 nats against
    ln(vocab) at init -- a falling loss means the model learns."""
    rng = np.random.default_rng([seed, 7])
    perm = rng.permutation(vocab)
    walk = (rng.integers(vocab) + np.cumsum(rng.choice(_SYNTHETIC_STEPS, size=n))) % vocab
    return perm[walk].astype(np.uint16 if vocab <= 1 << 16 else np.int64)


def _bin_dtype(path: str, vocab: int, flag: str) -> np.dtype:
    if flag != "auto":
        return np.dtype(flag)
    return np.dtype(np.uint16 if vocab <= 1 << 16 else np.uint32)  # nanoGPT writes uint16 for GPT-2


def _open_bin(path: str, vocab: int, flag: str) -> np.ndarray:
    dtype = _bin_dtype(path, vocab, flag)
    size = os.path.getsize(path)
    if size % dtype.itemsize:
        raise BadInput(f"--data {path}: {size} bytes is not a whole number of {dtype.name} tokens; "
                       "set --data-dtype uint16|uint32")
    if size == 0:
        raise BadInput(f"--data {path}: the file is empty")
    tokens = np.memmap(path, dtype=dtype, mode="r")
    head = tokens[: 1 << 20]
    if int(head.max()) >= vocab:
        raise BadInput(f"--data {path}: token id {int(head.max())} >= vocab {vocab} in the first "
                       f"{len(head)} tokens; wrong --data-dtype ({dtype.name}) or --vocab?")
    return tokens


def load_tokens(path: str | None, vocab: int, context: int, dtype_flag: str = "auto",
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(train tokens, held-out tokens, description). A `train.bin` next to a
    `val.bin` uses the latter as the held-out split (nanoGPT layout); any other file
    holds out its last 5%."""
    if path is None:
        stream = synthetic_tokens(vocab, SYNTHETIC_TOKENS + SYNTHETIC_TOKENS // 16, seed)
        train, held = stream[:SYNTHETIC_TOKENS], stream[SYNTHETIC_TOKENS:]  # one process, disjoint tokens
        return train, held, f"synthetic ({len(train)} tokens, 4 successors per token)"
    if not os.path.isfile(path):
        raise BadInput(f"--data {path}: no such file")
    if path.endswith(".txt"):
        if vocab < 256:
            raise BadInput(f"--data {path}: byte-level text needs --vocab >= 256, the model has {vocab}")
        with open(path, "rb") as f:
            tokens = np.frombuffer(f.read(), dtype=np.uint8)
    else:
        tokens = _open_bin(path, vocab, dtype_flag)
    val_path = os.path.join(os.path.dirname(path), "val.bin")
    if os.path.basename(path) == "train.bin" and os.path.isfile(val_path):
        train, held, where = tokens, _open_bin(val_path, vocab, dtype_flag), val_path
    else:
        cut = len(tokens) - max(len(tokens) // 20, context + 1)
        train, held, where = tokens[:cut], tokens[cut:], "its last 5%"
    for what, arr in (("training split", train), ("held-out split", held)):
        if len(arr) < context + 1:
            raise BadInput(f"--data {path}: {len(tokens)} tokens is too small for --context {context}: "
                           f"the {what} has {len(arr)} tokens, needs at least {context + 1}")
    return train, held, f"{path} ({len(train)} training tokens; held out: {where})"


def batch_offsets(n_tokens: int, context: int, batch: int, seed: int, index: int) -> np.ndarray:
    """Start offsets of global batch `index`: a function of (seed, index) only."""
    rng = np.random.default_rng([seed, index, 11])
    return rng.integers(0, n_tokens - context, size=batch)


def gather_batch(tokens: np.ndarray, offsets: np.ndarray, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows = np.stack([np.asarray(tokens[o: o + context + 1], dtype=np.int64) for o in offsets])
    data = torch.from_numpy(rows)
    return data[:, :-1], data[:, 1:]


class Batches:
    """This rank's slice of each global batch, moved to the device.

    On CUDA a worker thread gathers the next batches into pinned memory while the GPU
    trains, and the copy to the device is asynchronous (non_blocking)."""

    def __init__(self, tokens: np.ndarray, context: int, global_batch: int, rank: int, world: int,
                 seed: int, device: torch.device, prefetch: int = 2):
        self.tokens, self.context, self.seed, self.device = tokens, context, seed, device
        self.global_batch, self.local = global_batch, global_batch // world
        self.lo = rank * self.local
        self.position = 0  # global batches consumed: the data position a checkpoint saves
        self.pin = device.type == "cuda"
        self.prefetch = prefetch if self.pin else 0
        self._pool = concurrent.futures.ThreadPoolExecutor(1) if self.prefetch else None
        self._pending: dict[int, concurrent.futures.Future] = {}

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = batch_offsets(len(self.tokens), self.context, self.global_batch, self.seed, index)
        x, y = gather_batch(self.tokens, offsets[self.lo: self.lo + self.local], self.context)
        return (x.pin_memory(), y.pin_memory()) if self.pin else (x, y)

    def seek(self, position: int) -> None:
        self.position = position
        self._pending.clear()

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.position
        self.position += 1
        if self._pool is None:
            x, y = self._load(index)
        else:
            for k in range(index, index + self.prefetch + 1):
                if k not in self._pending:
                    self._pending[k] = self._pool.submit(self._load, k)
            x, y = self._pending.pop(index).result()
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def eval_batch_list(tokens: np.ndarray, context: int, global_batch: int, n_batches: int, rank: int,
                    world: int, seed: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fixed held-out batches every evaluation uses (kept on the device)."""
    local = global_batch // world
    out = []
    for i in range(n_batches):
        offsets = batch_offsets(len(tokens), context, global_batch, seed + 1_000_003, i)
        x, y = gather_batch(tokens, offsets[rank * local: (rank + 1) * local], context)
        out.append((x.to(device), y.to(device)))
    return out
