"""Data: a token memmap (.bin), the bytes of a .txt, or a synthetic stream.

Batches sit at random offsets, but batch k's offsets depend only on (seed, k): the data
position is one integer, a resumed run sees the batches it would have seen, and
data-parallel ranks slice one global batch (a DDP run trains on a single process's tokens).
"""

import concurrent.futures
import os

import numpy as np
import torch

from scaleadvise.script.template.config import BadInput


def synthetic_tokens(vocab: int, n: int, seed: int) -> np.ndarray:
    """A random walk on a hidden cycle of the vocabulary, seen through a fixed permutation:
    four equally likely successors per token, so the loss falls from ln(vocab) towards ln 4."""
    rng = np.random.default_rng([seed, 7])
    walk = (rng.integers(vocab) + np.cumsum(rng.choice(np.array([1, 2, 3, 5]), size=n))) % vocab
    return rng.permutation(vocab)[walk].astype(np.uint16 if vocab <= 1 << 16 else np.int64)


def _open_bin(path: str, vocab: int, dtype_flag: str) -> np.ndarray:
    dtype = np.dtype(dtype_flag if dtype_flag != "auto" else np.uint16 if vocab <= 1 << 16 else np.uint32)
    size = os.path.getsize(path)
    if size == 0 or size % dtype.itemsize:
        raise BadInput(f"--data {path}: {size} bytes is not a whole, non-zero number of {dtype.name} tokens; "
                       "set --data-dtype uint16|uint32")
    tokens = np.memmap(path, dtype=dtype, mode="r")
    if int(tokens[: 1 << 20].max()) >= vocab:
        raise BadInput(f"--data {path}: token id {int(tokens[: 1 << 20].max())} >= vocab {vocab}; "
                       "wrong --data-dtype or --vocab?")
    return tokens


def load_tokens(path: str | None, vocab: int, context: int, dtype_flag: str = "auto",
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(training tokens, held-out tokens, description). A train.bin with a val.bin beside it
    holds out val.bin; any other file its last 5%."""
    if path is None:
        n = 1 << 21
        stream = synthetic_tokens(vocab, n + n // 16, seed)
        return stream[:n], stream[n:], f"synthetic ({n:,} tokens, 4 successors per token: loss floor ln 4)"
    if not os.path.isfile(path):
        raise BadInput(f"--data {path}: {'is a directory' if os.path.isdir(path) else 'no such file'}")
    if path.endswith(".txt") and vocab < 256:
        raise BadInput(f"--data {path}: byte-level text needs --vocab >= 256, the model has {vocab}")
    val = os.path.join(os.path.dirname(path), "val.bin")
    try:
        if path.endswith(".txt"):
            with open(path, "rb") as f:
                tokens = np.frombuffer(f.read(), dtype=np.uint8)
        else:
            tokens = _open_bin(path, vocab, dtype_flag)
        paired = os.path.basename(path) == "train.bin" and os.path.isfile(val)
        held = _open_bin(val, vocab, dtype_flag) if paired else None
    except OSError as e:
        raise BadInput(f"--data {e.filename or path}: {e.strerror}") from None
    cut = len(tokens) - max(len(tokens) // 20, context + 1)
    train, held, where = (tokens, held, val) if paired else (tokens[:cut], tokens[cut:], "its last 5%")
    if min(len(train), len(held)) < context + 1:
        raise BadInput(f"--data {path}: {len(tokens)} tokens is too small for --context {context}: "
                       f"each split needs at least {context + 1}")
    return train, held, f"{path} ({len(train):,} training tokens; held out: {where})"


def batch_offsets(n_tokens: int, context: int, batch: int, seed: int, index: int) -> np.ndarray:
    """Start offsets of global batch `index`: a function of (seed, index) only."""
    return np.random.default_rng([seed, index, 11]).integers(0, n_tokens - context, size=batch)


def gather_batch(tokens: np.ndarray, offsets: np.ndarray, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = torch.from_numpy(np.stack([np.asarray(tokens[o: o + context + 1], dtype=np.int64) for o in offsets]))
    return data[:, :-1], data[:, 1:]  # inputs and next-token targets [batch, context]


class Batches:
    """This rank's slice of each global batch, on the device. On CUDA a thread gathers the
    next batches into pinned memory while the GPU trains; the copy is asynchronous."""

    def __init__(self, tokens: np.ndarray, context: int, global_batch: int, rank: int, world: int,
                 seed: int, device: torch.device):
        self.tokens, self.context, self.global_batch, self.seed = tokens, context, global_batch, seed
        self.device = device
        self.local = global_batch // world
        self.lo, self.position = rank * self.local, 0  # position: global batches consumed (a checkpoint saves it)
        self.pin = device.type == "cuda"
        self._pool, self._pending = concurrent.futures.ThreadPoolExecutor(1) if self.pin else None, {}

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = batch_offsets(len(self.tokens), self.context, self.global_batch, self.seed, index)
        x, y = gather_batch(self.tokens, offsets[self.lo: self.lo + self.local], self.context)
        return (x.pin_memory(), y.pin_memory()) if self.pin else (x, y)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        index, self.position = self.position, self.position + 1
        if self._pool is None:
            x, y = self._load(index)
        else:
            for k in range(index, index + 3):  # this batch and the next two
                if k not in self._pending:
                    self._pending[k] = self._pool.submit(self._load, k)
            x, y = self._pending.pop(index).result()
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def eval_batches(tokens: np.ndarray, context: int, global_batch: int, n: int, rank: int, world: int,
                 device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The held-out batches of every evaluation: the same for every seed, so seeds differ by training only."""
    local = global_batch // world
    offsets = (batch_offsets(len(tokens), context, global_batch, 1_000_003, i)[rank * local: (rank + 1) * local]
               for i in range(n))
    return [tuple(t.to(device) for t in gather_batch(tokens, o, context)) for o in offsets]
