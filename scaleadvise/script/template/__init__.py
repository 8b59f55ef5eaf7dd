"""Source templates of the emitted training script (`scaleadvise emit-train`).

Real, importable, tested modules -- not strings. `scaleadvise.script.emit` concatenates
their code after the prescription data block, with core/rule.py, torch/apply.py and
(for Adam-atan2 / Adam-PS) torch/optim.py, in the order of `emit.BUNDLE`. The edits are
made on the syntax tree (see `scaleadvise.script.emit`): imports hoisted (those of each
other dropped), unused branches and definitions dropped, docstrings cut to their first
paragraph. So a docstring's first paragraph is what a script reader sees; the rest is
for readers of the package. The emitted file needs only torch, numpy and the standard
library.
"""
