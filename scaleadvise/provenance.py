"""Where a measured number came from: the machine a result file records beside it.

docs/RESULTS.md reports every number with the machine it ran on; the example scripts
write this dict into their results JSON. Standard library only (torch's version is read
from its installed metadata, so recording it does not import torch)."""

import importlib.metadata
import os
import platform


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(**extra) -> dict:
    """{cpu, cores, torch, python, platform} plus any `extra` fields (threads, load...)."""
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch_version,
            "python": platform.python_version(), "platform": platform.platform(), **extra}
