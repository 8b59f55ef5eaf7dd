"""PyTorch side of scaleadvise (the ``torch`` extra; importing it imports torch).

* ``AdamAtan2``, ``AdamPS``: the paper's epsilon-free Adam (C.5) and Adam with
  parameter scaling (the Adafactor family, §2.1). ``optim.py`` imports torch only,
  so the emitted training script bundles it.
* ``apply``: init, forward multipliers and optimizer groups from per-tensor values, the one
  home of both ``parameterize`` and the emitted training script (which bundles it).
* ``parameterize(model, ...)``: apply a prescription to any ``nn.Module``;
  ``param_groups`` rebuilds the optimizer groups after FSDP sharding;
  ``plain_state_dict`` exports the effective weights under ordinary keys.
* ``scaleadvise.torch.coord_check``: the coordinate check (activation RMS and its
  change vs width after a few steps) beside the slopes the theory derives for a
  prescription; `examples/coord_check` plots it for every parameterization.
"""

from scaleadvise.torch.optim import AdamAtan2, AdamPS
from scaleadvise.torch.parameterize import param_groups, parameterize, plain_state_dict

__all__ = ["AdamAtan2", "AdamPS", "parameterize", "param_groups", "plain_state_dict"]
