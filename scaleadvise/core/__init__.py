"""The science, pure and import-light: the constraint solver (theory), alignment, the
optimizer table, layer-type classification, the one per-tensor rule, model descriptions,
parameterizations, constants, depth, weight decay, and ``prescribe`` -> ``Prescription``.
Nothing here imports torch, scipy or pandas (``scaleadvise prescribe`` must start fast)."""
