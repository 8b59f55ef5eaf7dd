"""core/rule.py: the per-tensor rule, by hand, and the constraints that let the emitted
script bundle it verbatim (standard library only, nothing at import)."""

import ast
import math
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleadvise.core import rule


@pytest.mark.parametrize("kind,shape,expected", [
    ("linear", [8, 4], (4, 8)),              # nn.Linear [fan_out, fan_in]
    ("linear", [8, 4, 3, 3], (36, 8)),       # Conv2d: the kernel counts in the fan-in
    ("embedding", [32101, 1024], (32101, 1024)),  # a lookup is a one-hot matmul: fan_in = rows
    ("norm", [1024], (1, 1024)),             # a gain multiplies a constant input
    ("bias", [4096], (1, 4096)),
    ("bias", [], (1, 1)),
])
def test_fans(kind, shape, expected):
    assert rule.fans(kind, shape) == expected


@pytest.mark.parametrize("layer_type,expected", [("hidden", 4096), ("readout", 4096), ("embedding", 1024),
                                                 ("fixed", 1)])
def test_scale_dim_is_fan_in_for_matrices_and_fan_out_for_embeddings(layer_type, expected):
    assert rule.scale_dim(layer_type, 4096, 1024) == expected


def test_values_by_hand():
    assert rule.multiplier(0.5, 16384) == 1 / 128
    assert rule.multiplier(-0.5, 4) == 2.0                       # muP's embedding multiplier sqrt(n)
    assert rule.init_std(1.0, 0.5, 16384) == 0.0078125           # 1/sqrt(fan_in)
    assert rule.init_std(0.01, 0.0, 16384) == 0.01               # C.2's embedding std
    assert rule.learning_rate(1e-3, 2.0, 1.0, 4096, 1024) == pytest.approx(5e-4)  # 1e-3 · 2 · 4^-1
    assert rule.learning_rate(1e-3, 1.0, -0.5, 4096, 1024) == pytest.approx(2e-3)  # SGD muP hidden: sqrt(n/b)
    assert rule.epsilon(1e-9, 0.5, 4096, 1024) == pytest.approx(5e-10)  # per-layer eps, g = 1/2
    assert rule.epsilon(1e-9, 0.0, 4096, 1024) == 1e-9            # constant
    assert rule.epsilon(None, 0.5, 4096, 1024) is None            # no epsilon in the update
    assert rule.epsilon(1e-9, None, 4096, 1024) is None


@given(c=st.floats(-2, 2), gamma=st.floats(1e-3, 1e3), base=st.sampled_from([64, 256, 1024]))
def test_lr_at_the_base_width_is_base_lr_times_gamma(c, gamma, base):
    assert rule.learning_rate(1e-3, gamma, c, base, base) == pytest.approx(1e-3 * gamma)


@given(c=st.floats(-2, 2), k=st.integers(1, 6))
def test_lr_halves_per_doubling_when_c_is_one_and_so_on(c, k):
    """lr(2^k b) / lr(b) = 2^(-k c): the exponent is a negative power of the width ratio."""
    ratio = rule.learning_rate(1.0, 1.0, c, 1024 * 2**k, 1024) / rule.learning_rate(1.0, 1.0, c, 1024, 1024)
    assert math.log2(ratio) == pytest.approx(-k * c, abs=1e-9)


def test_standard_library_only_and_nothing_at_import():
    """The emitted script bundles this file verbatim and runs it with torch alone."""
    tree = ast.parse(open(rule.__file__).read())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= set(sys.stdlib_module_names) and "__future__" not in modules, modules
    top = [type(n).__name__ for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef))]
    assert top == ["Expr"]  # the docstring; no statement runs at import
