"""scaleadvise: per-layer hyperparameters for scaling neural networks in width.

The theory is Everett et al. (2024), "Scaling Exponents Across Parameterizations
and Optimizers" (arXiv 2407.05872). The core modules (theory, parameterizations,
model, prescribe) import nothing heavier than numpy and pydantic; torch lives in
``scaleadvise.torch`` behind the ``torch`` extra.
"""

__version__ = "0.1.0"
