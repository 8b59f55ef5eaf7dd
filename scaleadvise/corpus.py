"""A real-text corpus that every Python installation carries: the standard library's source.

The reproductions in examples/ train on bytes (vocabulary 256) so that they need no
download. The emitted script reads a `.txt` file as byte tokens and holds out its last
5% for the eval loss, so the held-out split is the tail of this file.

The corpus is deterministic for one Python version: files are taken in sorted path order
(tests and idle GUI sources excluded, since they repeat fixtures more than they read like
code) until `max_bytes` is reached. Different Python versions give different corpora;
results record the version.
"""

import os
import sys
import sysconfig
from pathlib import Path

SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__", "lib2to3"}


def stdlib_sources(root: str | None = None) -> list[Path]:
    """The standard library's .py files under `root`, sorted by relative path."""
    base = Path(root or sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        files += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
    return sorted(files, key=lambda p: p.relative_to(base).as_posix())


def build_corpus(path: str | os.PathLike, max_bytes: int = 8 << 20) -> dict:
    """Write the byte corpus to `path` (atomically) and describe it.

    Returns {"path", "bytes", "files", "python"}. Rewrites the file only when its
    content would change, so repeated example runs reuse it."""
    chunks, total, used = [], 0, 0
    for f in stdlib_sources():
        data = f.read_bytes()
        if total + len(data) > max_bytes:
            data = data[: max_bytes - total]
        chunks.append(data)
        total += len(data)
        used += 1
        if total >= max_bytes:
            break
    blob = b"".join(chunks)
    out = Path(path)
    if not (out.exists() and out.stat().st_size == len(blob) and out.read_bytes() == blob):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, out)
    return {"path": str(out), "bytes": len(blob), "files": used, "python": sys.version.split()[0]}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Write the standard-library byte corpus.")
    ap.add_argument("path")
    ap.add_argument("--max-mb", type=float, default=8.0)
    a = ap.parse_args()
    print(build_corpus(a.path, int(a.max_mb * (1 << 20))))
