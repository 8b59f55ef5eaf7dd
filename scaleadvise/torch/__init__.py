"""PyTorch side of scaleadvise (the ``torch`` extra).

* ``AdamAtan2``, ``AdamPS``: the paper's epsilon-free Adam (C.5) and Adam with
  parameter scaling (the Adafactor family, §2.1); ``optim.py`` imports torch only,
  so it is bundled verbatim into the emitted training script.
* ``parameterize(model, ...)``: apply a prescription to any ``nn.Module``.

Attributes are resolved lazily so ``import scaleadvise.torch`` stays cheap.
"""

from typing import Any

__all__ = ["AdamAtan2", "AdamPS", "parameterize"]


def __getattr__(name: str) -> Any:
    if name in ("AdamAtan2", "AdamPS"):
        from scaleadvise.torch import optim

        return getattr(optim, name)
    if name == "parameterize":
        from scaleadvise.torch.parameterize import parameterize

        return parameterize
    raise AttributeError(f"module 'scaleadvise.torch' has no attribute {name!r}")
