"""Source templates of the emitted training script (`scaleadvise emit-train`).

Real, importable, tested modules -- not strings. `scaleadvise.script.emit` concatenates
their source verbatim (after the prescription data block and
scaleadvise/torch/optim.py), dropping the lines between `# ---- bundle: drop begin`
and `# ---- bundle: drop end` (the in-repository imports of each other), so the
emitted file needs only torch, numpy and the standard library. They import nothing
from scaleadvise outside those markers.
"""

# Bundle order: each module may use names from the ones before it.
BUNDLE = ("nanodo", "data", "dist", "probes", "train")
