"""Model descriptions: every tensor of a model, its shape at any width, its layer type.

A model is plain data (YAML, validated by pydantic): named dimensions written as
expressions of the width ``d`` (``ffn: 4 * d``, ``heads: d // head_dim``), and a
list of tensors with shapes in those dimensions, repeated over blocks. Layer types
are *derived*, never declared: every shape is evaluated at two widths and
``core.classify.by_growth`` sees which dimensions grow (the muP cheat sheet's rule).

The theory's network is a chain of hidden layers (§3.1); ``hidden_chain`` says how
many hidden layers the model's longest path holds, an expression like the dims
(default ``depth``). It matters once a hidden omega exceeds 1/2: each hidden layer
then shrinks the residual r by omega - 1/2 (Table 2), so the embedding's LR exponent
grows with the chain. In a pre-LN Transformer block the path from the residual stream
back to it runs through two dense layers in the attention (v, then o; q and k sit
beside v) and two in the MLP (up, then down): ``hidden_chain: 4 * depth``.

Residual branches (for ``core.depth``): a tensor marked ``residual: true`` sits on a
residual branch, a path whose output is added to the residual stream (in a pre-LN block:
the norm gain, the attention or MLP matrices and their biases); the embeddings, the final
norm and the readout sit on the trunk. A model with no such tensor (the plain MLP of §3.1)
has no residual stream, and a depth parameterization is refused for it.

Layouts: ``linear`` is [fan_out, fan_in] (torch.nn.Linear); ``embedding`` is
[num_embeddings, dim] (a lookup is a one-hot matmul, so fan_in = rows); ``norm``
and ``bias`` are vectors (fan_in = 1).
"""

import ast
import math
import operator
import re
from functools import cache, cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scaleadvise.core.classify import Label, LayerType, TensorKind, by_growth, by_name
from scaleadvise.core.presets import preset_dir
from scaleadvise.core.rule import fans, scale_dim
from scaleadvise.errors import UserError

PRESET_DIR = preset_dir("models")
FIELD = "model"  # the field (flag --model) that errors about a model description name
MAX_TENSORS = 100_000  # every tensor is listed; far beyond any real model (NanoDO: 68 at depth 8, 8,004 at depth 1,000)

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv, ast.Div: operator.truediv}


def eval_dim(expr: int | str, env: dict[str, float]) -> float:
    """Evaluate a dimension expression (integers, names, + - * / //, parentheses).
    Errors name the field ``model`` (the description the expression came from)."""
    if isinstance(expr, (int, float)):
        return expr
    try:
        tree = ast.parse(str(expr), mode="eval")
    except (SyntaxError, ValueError):
        raise UserError(f"dimension expression {expr!r} is not valid", FIELD) from None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in env:
                raise UserError(f"dimension expression {expr!r}: unknown name {node.id!r} (known: {', '.join(env)})",
                                FIELD)
            return env[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if right == 0 and type(node.op) in (ast.Div, ast.FloorDiv):
                raise UserError(f"dimension expression {expr!r} divides by zero", FIELD)
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise UserError(f"dimension expression {expr!r}: only numbers, names and + - * / // are allowed", FIELD)

    return walk(tree)


class TensorSpec(BaseModel):
    """One tensor (or one per block when ``name`` contains ``{i}``)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    shape: list[int | str] = Field(min_length=1, max_length=2)
    kind: TensorKind = "linear"
    repeat: int | str | None = None  # number of blocks, e.g. "depth"
    fan_in_dims: int | None = None  # rarely needed: override the layout's fan-in axis
    residual: bool = False  # on a residual branch (module doc)


class ModelSpec(BaseModel):
    """A model description; see presets/models/*.yaml for examples."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    width: int = Field(1024, gt=0, description="default width d")
    depth: int = Field(gt=0)
    head_dim: int | None = Field(None, gt=0)
    hidden_chain: int | str = Field("depth", description="hidden layers on the longest path (module doc)")
    dims: dict[str, int | str] = Field(default_factory=dict)
    tensors: list[TensorSpec] = Field(min_length=1)
    notes: str = ""

    @field_validator("dims")
    @classmethod
    def _no_reserved(cls, v: dict[str, int | str]) -> dict[str, int | str]:
        for key in v:
            if key in {"d", "depth", "head_dim", "i"}:
                raise ValueError(f"dims may not redefine {key!r}")
        return v

    def env(self, width: int) -> dict[str, float]:
        """Every named dimension at ``width`` (dims may refer to earlier dims)."""
        env: dict[str, float] = {"d": width, "depth": self.depth}
        if self.head_dim is not None:
            env["head_dim"] = self.head_dim
        for key, expr in self.dims.items():
            env[key] = eval_dim(expr, env)
        return env


class Tensor(BaseModel):
    """A concrete tensor at a concrete width, with its derived layer type."""

    name: str
    kind: TensorKind
    shape: list[int]
    fan_in: int
    fan_out: int
    layer_type: Label
    scale_dim: int  # the width-scaling dimension n_t the exponents apply to
    residual: bool = False  # on a residual branch (core.depth)

    @cached_property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def _int_dim(value: float, what: str, model: str, width: int, least: int = 1) -> int:
    if not math.isfinite(value) or value != int(value) or value < least:
        kind = "a positive integer" if least == 1 else f"an integer >= {least}"
        raise UserError(f"model {model}: {what} = {value:g} at width {width} is not {kind}", FIELD)
    return int(value)


def expand(spec: ModelSpec, width: int) -> list[Tensor]:
    """Every tensor of ``spec`` at ``width``, classified."""
    if width <= 0:
        raise UserError(f"must be a positive integer, got {width}", "width")
    if spec.head_dim is not None and width % spec.head_dim:
        raise UserError(
            f"{width} is not divisible by the head dimension {spec.head_dim} "
            f"(model {spec.name}); use a multiple of {spec.head_dim} or another head dimension", "width")
    env, env2 = spec.env(width), spec.env(2 * width)

    def concrete(t: TensorSpec, i: int) -> Tensor:
        shape = [_int_dim(eval_dim(s, env), f"{t.name} shape", spec.name, width) for s in t.shape]
        shape2 = [eval_dim(s, env2) for s in t.shape]
        fi, fo = fans(t.kind, shape)
        fi2, fo2 = fans(t.kind, shape2)  # type: ignore[arg-type]
        layer = by_growth(t.kind, fi2 != fi, fo2 != fo)
        return Tensor(name=t.name.replace("{i}", str(i)), kind=t.kind, shape=shape, fan_in=fi,
                      fan_out=fo, layer_type=layer, scale_dim=scale_dim(layer, fi, fo), residual=t.residual)

    # Consecutive repeated tensors form a block; list them block by block, as a
    # state_dict would (blocks.0.*, blocks.1.*, ...).
    out: list[Tensor] = []
    run: list[TensorSpec] = []

    def flush() -> None:
        if run:
            count = _int_dim(eval_dim(run[0].repeat, env), f"{run[0].name} repeat", spec.name, width,  # type: ignore[arg-type]
                             least=0)
            if len(out) + count * len(run) > MAX_TENSORS:  # a typo'd depth, not a model: refuse before the memory goes
                raise UserError(f"model {spec.name} at depth {spec.depth} has more than {MAX_TENSORS:,} tensors "
                                f"({run[0].name} x {count:,}); is the depth right?", "depth")
            for i in range(count):
                out.extend(concrete(t, i) for t in run)
            run.clear()

    for t in spec.tensors:
        if t.repeat is None:
            flush()
            out.append(concrete(t, 0))
        else:
            if run and run[0].repeat != t.repeat:
                flush()
            run.append(t)
    flush()
    return out


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_model(name_or_path: str) -> ModelSpec:
    """A preset name (``nanodo``, ``gpt2``, ``llama``, ``mlp``) or a YAML file path."""
    from scaleadvise.core.files import read_yaml

    path = Path(name_or_path)
    if not path.suffix and (PRESET_DIR / f"{name_or_path}.yaml").exists():
        path = PRESET_DIR / f"{name_or_path}.yaml"
    elif not path.exists():
        if path.suffix in (".yaml", ".yml"):
            raise UserError(f"{path}: no such file", FIELD)
        from difflib import get_close_matches

        hint = get_close_matches(name_or_path, list_presets(), n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise UserError(f"unknown preset {name_or_path!r} (presets: {', '.join(list_presets())}){extra}", FIELD)
    data = read_yaml(path, FIELD)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of model fields (name, depth, tensors, ...)", FIELD)
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise UserError(f"{path}: field '{where}': {' '.join(err['msg'].split())}", FIELD) from None
    if path.parent != PRESET_DIR:  # a user's file: errors in its expressions name it (presets are tested)
        try:
            env = spec.env(spec.width)
            for expr in [spec.hidden_chain, *(s for t in spec.tensors for s in (*t.shape, t.repeat or 1))]:
                eval_dim(expr, env)
        except UserError as e:
            raise UserError(f"{path}: {e.message}", FIELD) from None
    return spec


def with_overrides(spec: ModelSpec, **dims: int | None) -> ModelSpec:
    """Override depth, head_dim (or heads via width) and named dims such as vocab, context."""
    update: dict = {}
    new_dims = dict(spec.dims)
    for key, value in dims.items():
        if value is None:
            continue
        if key in ("depth", "head_dim"):
            update[key] = value
        elif key in spec.dims:
            new_dims[key] = value
        else:
            raise UserError(f"model {spec.name} has no dimension {key!r}", key)
    return spec.model_copy(update={**update, "dims": new_dims})


def parameter_count(tensors: list[Tensor]) -> int:
    return sum(t.numel for t in tensors)


def hidden_chain(spec: ModelSpec, width: int) -> int:
    """Hidden layers on the model's longest path (module doc), at least 1."""
    n = eval_dim(spec.hidden_chain, spec.env(width))
    return _int_dim(n, "hidden_chain", spec.name, width)


@cache
def _preset_types() -> dict[str, Label]:
    """The layer type each shipped preset derives for each of its tensors (blocks folded to
    ``{i}``), at a width where every shape is an integer."""
    out: dict[str, Label] = {}
    for name in list_presets():
        spec = load_model(name)
        for t in expand(spec, spec.width):
            out.setdefault(re.sub(r"\.\d+\.", ".{i}.", t.name), t.layer_type)
    return out


def layer_type_of(name: str, where: str) -> LayerType:
    """The layer type of a tensor name in a CSV (or of a layer-type name): the name rules of
    ``core.classify.by_name``, else what the shipped presets derive for that tensor (llama's
    ``layers.3.attention.wq``, the mlp's ``input``); a one-line error naming ``where`` otherwise."""
    layer = by_name(name)
    if layer is None:
        key = name.strip()
        key = key[: -len(".weight")] if key.endswith(".weight") else key
        found = _preset_types().get(re.sub(r"\.\d+\.", ".{i}.", key))
        layer = found if found in ("embedding", "hidden", "readout") else None
    if layer is None:
        raise UserError(f"{where}: unknown layer {name!r}; use a layer type (embedding, hidden, readout) or a "
                        "tensor name such as embed.tokens, blocks.0.mlp.up, readout")
    return layer  # type: ignore[return-value]
