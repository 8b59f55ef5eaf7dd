"""Write the standalone training script: a header, the prescription as data, bundled sources.

The emitted file reads top to bottom like nanoGPT's train.py + model.py:

1. a docstring with the exact command that wrote it and commands to run it;
2. the imports of everything below, once;
3. ``PRESCRIPTION = {...}``: the per-tensor rule's parameters (a, b, c, gamma and the
   epsilon exponent per layer type) and each tensor's layer type, layout, init and sigma;
4. tested modules of this package, copied: the template's config and model,
   scaleadvise/core/rule.py (the one per-tensor rule, evaluated at the size trained),
   scaleadvise/torch/apply.py (init, multipliers, optimizer groups), scaleadvise/torch/optim.py
   when the prescription chose AdamAtan2 or AdamPS, and the template's data, dist, probes
   and train modules.

No code is generated from strings. The copied sources are edited on their syntax tree
only: their imports move to the top (those of each other inside the package go: the names
are then defined in the same file); a branch ``if optimizer == "x":`` (or ``in (...)``) for
an optimizer other than the prescription's is dropped, and so is a branch ``if "depth" in
pres:`` (or ``"weight_decay"``) for a part the prescription does not have; a top-level
definition that nothing kept refers to is dropped (so only the chosen optimizer's code
ships); and the docstrings are cut to their first paragraph (the module's becomes the
section's title line), one blank line between definitions. The code that runs is the code
the tests import. :func:`check_bundle` refuses a bundle that would not run standalone.
"""

import ast
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

from scaleadvise import __version__
from scaleadvise.core.optimizers import OPTIMIZERS
from scaleadvise.errors import UserError

PACKAGE = Path(__file__).parent.parent
TEMPLATE = PACKAGE / "script" / "template"
# Bundle order: a module may use at import time only the names of the ones before it.
BUNDLE = (TEMPLATE / "config.py", TEMPLATE / "nanodo.py", PACKAGE / "core" / "rule.py", PACKAGE / "torch" / "apply.py",
          PACKAGE / "torch" / "optim.py", TEMPLATE / "data.py", TEMPLATE / "dist.py", TEMPLATE / "probes.py",
          TEMPLATE / "train.py")
H100_TRAINING_FLOPS = 0.4 * 989e12  # the header's GPU times: 40% of an H100's dense bf16 peak


def _lines(node: ast.stmt) -> tuple[int, int]:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return first, node.end_lineno or node.lineno


def _drop(source: str, spans: list[tuple[int, int]]) -> str:
    gone = {n for a, b in spans for n in range(a, b + 1)}
    return "".join(line for n, line in enumerate(source.splitlines(keepends=True), 1) if n not in gone)


def _is_own(node: ast.stmt) -> bool:
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [getattr(node, "module", "") or ""]
    return any(n.split(".")[0] == "scaleadvise" for n in names)


def _defined(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


OPTIONAL = ("depth", "weight_decay")  # parts of a prescription the script's code branches on


def _dropped_branch(node: ast.AST, chosen: str, parts: frozenset) -> bool:
    """`if optimizer == "x":` / `if optimizer in ("x", "y"):` naming only other optimizers,
    or `if "depth" in pres:` for an optional part the prescription does not have."""
    if not (isinstance(node, ast.If) and not node.orelse and isinstance(node.test, ast.Compare)):
        return False
    t = node.test
    if (isinstance(t.left, ast.Constant) and t.left.value in OPTIONAL and isinstance(t.ops[0], ast.In)
            and len(t.ops) == 1 and isinstance(t.comparators[0], ast.Name) and t.comparators[0].id == "pres"):
        return t.left.value not in parts
    if not (isinstance(t.left, ast.Name) and t.left.id == "optimizer" and len(t.ops) == 1
            and isinstance(t.ops[0], (ast.Eq, ast.In))):
        return False
    right = t.comparators[0]
    items = right.elts if isinstance(right, ast.Tuple) else [right]
    names = [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
    return len(names) == len(items) and set(names) <= set(OPTIMIZERS) and chosen not in names


def prune(parts: list[tuple[str, str]], optimizer: str,
          optional: frozenset = frozenset(OPTIONAL)) -> tuple[list[tuple[str, str]], list[str]]:
    """The sources without their imports, the branches of other optimizers and of the
    optional parts not in `optional`, and the top-level definitions nothing kept refers
    to; and the imports they need (package-internal ones dropped). A module left with no
    definition goes entirely."""
    imports: dict[str, list[str]] = {}
    trees = []
    for where, source in parts:
        tree = ast.parse(source, filename=where)
        spans = [_lines(n) for n in ast.walk(tree) if _dropped_branch(n, optimizer, optional)]
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                spans.append(_lines(node))
                if not _is_own(node):
                    imports.setdefault(where, []).append(ast.unparse(node))
        source = _drop(source, spans)
        trees.append((where, source, ast.parse(source, filename=where)))
    # Reachability: roots are the statements that define nothing (the __main__ guard).
    defs: dict[str, list[ast.stmt]] = {}
    todo: list[ast.AST] = []
    for _, _, tree in trees:
        for node in tree.body[1:] if ast.get_docstring(tree) is not None else tree.body:
            names = _defined(node)
            for name in names:
                defs.setdefault(name, []).append(node)
            if not names:
                todo.append(node)
    kept: set[int] = set()
    while todo:
        node = todo.pop()
        if id(node) in kept:
            continue
        kept.add(id(node))
        for n in ast.walk(node):
            if isinstance(n, ast.Name):
                todo.extend(defs.get(n.id, []))
    out, needed = [], []
    for where, source, tree in trees:
        body = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
        if any(id(n) in kept for n in body):
            out.append((where, _drop(source, [_lines(n) for n in body if id(n) not in kept])))
            needed += imports.get(where, [])
    return out, needed


def shorten(source: str) -> tuple[str, str]:
    """(the source for the script, the module docstring's first line).

    The module docstring goes (its first line titles the section); each function's and class's
    docstring is cut to its first paragraph; inside a definition a blank line stays only
    before a definition or a comment, and never two in a row. The full text stays in the
    package, where the tests import it: a docstring's first paragraph is what a reader of
    the script sees."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    title, spans = "", []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                or ast.get_docstring(node) is None:
            continue
        doc = node.body[0]
        if isinstance(node, ast.Module):
            title = ast.get_docstring(node).split("\n")[0]
            spans.append((doc.lineno, doc.end_lineno, None))
            continue
        text = lines[doc.lineno - 1: doc.end_lineno]
        blank = next((i for i, line in enumerate(text) if i and not line.strip()), None)
        quote = "'''" if text[0].lstrip().lstrip("rRuU").startswith("'''") else '"""'
        if blank is not None:  # keep up to the paragraph break, closed on its last line
            spans.append((doc.lineno, doc.end_lineno, text[: blank - 1] + [text[blank - 1].rstrip("\n") + quote + "\n"]))
    for first, last, keep in sorted(spans, reverse=True):
        lines[first - 1: last] = keep or []
    # Inside a definition, a blank line only where a definition or a comment opens a paragraph.
    text = re.sub(r"\n(?:[ \t]*\n)+(?=[ \t])(?![ \t]*(?:def |@|#))", "\n", "".join(lines))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n", title


def hoist(imports: list[str]) -> str:
    """One block of imports: the standard library, then the rest; `from` lines merged."""
    plain: dict[bool, set[str]] = {True: set(), False: set()}
    froms: dict[str, set[str]] = {}
    bound: dict[str, str] = {}
    for text in imports:
        node = ast.parse(text).body[0]
        for alias in node.names:
            target = f"{getattr(node, 'module', '')}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
            name = alias.asname or alias.name.split(".")[0]
            if bound.setdefault(name, target) != target:
                raise ValueError(f"import: {name!r} is bound to {bound[name]} and to {target}")
        if isinstance(node, ast.ImportFrom):
            froms.setdefault(node.module or "", set()).update(ast.unparse(a) for a in node.names)
        else:
            plain[node.names[0].name.split(".")[0] in sys.stdlib_module_names].add(text)
    lines = []
    for std in (True, False):
        block = sorted(plain[std]) + [f"from {m} import {', '.join(sorted(n))}" for m, n in sorted(froms.items())
                                      if (m.split(".")[0] in sys.stdlib_module_names) == std]
        lines += block + [""] if block else []
    return "\n".join(lines)


def check_bundle(parts: list[tuple[str, str]]) -> None:
    """Refuse sources that would break or shadow each other once in one file."""
    owner: dict[str, str] = {}
    for where, source in parts:
        tree = ast.parse(source, filename=where)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                raise ValueError(f"{where}:{node.lineno}: 'from __future__' cannot be bundled")
            if isinstance(node, (ast.Import, ast.ImportFrom)) and _is_own(node):
                raise ValueError(f"{where}:{node.lineno}: imports scaleadvise")
        for node in tree.body:
            for name in _defined(node) - {"__all__"}:
                if name in owner:
                    raise ValueError(f"{where}: top-level name {name!r} is also defined in {owner[name]}")
                owner[name] = where


# ----------------------------------------------------------------------------- the data


def script_prescription(doc: dict, depth_free: bool) -> dict:
    """The data the script's rule needs, from a ``prescribe --json`` (or ``equiv
    --prescription-out``) document: per layer type a, b, c, gamma and the epsilon exponent
    e; per tensor (the blocks folded into ``blocks.*``) its layer type, layout, init and
    sigma. ``depth_free``: the exponents do not depend on the depth (--depth may change it)."""
    for key in ("optimizer", "layers", "constants", "base_width", "base_lr", "model", "tensors", "attention_scale"):
        if key not in doc:
            raise UserError(f"prescription: field {key!r} is missing (write it with `scaleadvise prescribe --json`)")
    m = doc["model"]
    tensors: dict[str, tuple] = {}
    for t in doc["tensors"]:
        if t.get("sigma") is None or t["layer_type"] not in doc["layers"]:
            raise UserError(f"prescription: tensor {t['name']} has no sigma or no exponents; "
                            "write it with `scaleadvise prescribe --json`")
        key = re.sub(r"^blocks\.\d+\.", "blocks.*.", t["name"])
        row = (t["layer_type"], t["kind"], t["init"], t["sigma"]) + ((t["residual"],) if "residual" in t else ())
        if tensors.setdefault(key, row) != row:
            raise UserError(f"prescription: the blocks disagree on {key} ({tensors[key]} and {row})")
    eps_mode = doc.get("eps_mode", "constant")
    layers = {t: {"a": v["a"], "b": v["b"], "c": v["c"], "gamma": v["gamma"],
                  "e": None if eps_mode == "none" else v.get("eps_exponent", 0.0)} for t, v in doc["layers"].items()}
    out = {"parameterization": doc.get("parameterization"), "optimizer": doc["optimizer"],
           "attention_scale": doc["attention_scale"], "base_width": doc["base_width"], "base_lr": doc["base_lr"],
           "base_eps": None if eps_mode == "none" else doc.get("base_eps"),
           "model": {k: m[k] for k in ("width", "depth", "head_dim", "context", "vocab", "ffn")} | {
               "depth_free": depth_free}, "layers": layers, "tensors": tensors}
    return out | _depth_and_decay(doc, eps_mode)


def _depth_and_decay(doc: dict, eps_mode: str) -> dict:
    """The depth exponents (core/depth.py) and the decay (core/weight_decay.py) the script's rule
    applies, only where the prescription has them: per position (residual branch or trunk) the
    powers of L/L0 of the branch multiplier, the LR and the epsilon (0 for a constant epsilon,
    None without one); the decay's convention, λ and whether norm gains and biases decay."""
    out: dict = {}
    if doc.get("depth"):
        d = doc["depth"]
        out["depth"] = {"depth_param": d["depth_param"], "alpha": d["alpha"], "base_depth": d["base_depth"],
                        "exponents": {pos: {"multiplier": x["multiplier"], "lr": x["lr"],
                                            "eps": None if x["eps"] is None else x["eps"] if eps_mode == "per-layer"
                                            else 0.0} for pos, x in d["exponents"].items()}}
    if doc.get("weight_decay"):
        w = doc["weight_decay"]
        out["weight_decay"] = {"convention": w["convention"], "lambda": w["lambda"], "vectors": w["vectors"]}
    return out


def _g(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _py(value) -> str:
    """A Python literal: JSON's look (double quotes), floats exact (repr), None, tuples."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_py(k)}: {_py(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_py(v) for v in value) + ")"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def data_block(pres: dict, doc: dict) -> str:
    """`PRESCRIPTION = {...}` as Python a person can read."""
    values = {t: f"lr {_g(v['lr'])}, init std {_g(v['init_std'])}, eps {_g(v['eps'])}" for t, v in doc["layers"].items()}
    layers = "\n".join(f"        {_py(t)}: {_py(v)},  # {values[t]}" for t, v in pres["layers"].items())
    tensors = "\n".join(f"        {_py(k)}: {_py(v)}," for k, v in pres["tensors"].items())
    extra = ""
    if "depth" in pres:  # two lines: the parameterization, then its exponents per position
        d = {k: v for k, v in pres["depth"].items() if k != "exponents"}
        extra += f'    "depth": {_py(d)[:-1]},\n              "exponents": {_py(pres["depth"]["exponents"])}}},\n'
    if "weight_decay" in pres:
        extra += f'    "weight_decay": {_py(pres["weight_decay"])},\n'
    notes = ""
    if "depth" in pres:
        d = pres["depth"]
        notes += (f"\n# Depth: {d['depth_param']} (alpha = {d['alpha']:g}, scaleadvise/core/depth.py): every residual branch's "
                  f"output x (L/{d['base_depth']})^-alpha,\n# a tensor's LR and epsilon x (L/{d['base_depth']})^x for its "
                  "position's exponent x, at the depth L trained.")
    if "weight_decay" in pres:
        w = pres["weight_decay"]
        what = "every decayed tensor by lr_l x λ" if w["convention"] == "coupled" else "every decayed tensor by λ"
        notes += (f"\n# Weight decay (scaleadvise/core/weight_decay.py), convention {w['convention']}: after each step "
                  f"the script shrinks\n# {what} (x the LR schedule); matrices and tables"
                  f"{', norm gains and biases' if w['vectors'] else ' only'}. --weight-decay X replaces it by X on matrices.")
    top = ", ".join(f"{_py(k)}: {_py(pres[k])}" for k in ("parameterization", "optimizer", "attention_scale"))
    base = ", ".join(f"{_py(k)}: {_py(pres[k])}" for k in ("base_width", "base_lr", "base_eps"))
    scale = "1/sqrt(head_dim)" if pres["attention_scale"] == "sqrt" else "1/head_dim"
    return f'''# The prescription (`scaleadvise prescribe --json` for the command above) as the data of the
# per-tensor rule below (scaleadvise/core/rule.py), which this script evaluates at the size it
# trains: multiplier n_t^-a, init std sigma n_t^-b, LR base_lr gamma (n/base_width)^-c, epsilon
# base_eps (n/base_width)^-e; n_t is a tensor's fan-in (hidden, readout) or width (embedding
# type), n the model width. Attention logits x {scale} (C.2).{notes}
PRESCRIPTION = {{
    {top},
    {base},
    "model": {_py(pres["model"])},
    "layers": {{  # per layer type; the comments give the values at width {doc["model"]["width"]}
{layers}
    }},
    "tensors": {{  # name (blocks.* is every block): (layer type, layout, init, sigma{", on a residual branch" if "depth" in pres else ""})
{tensors}
    }},
{extra}}}
'''


def depth_free(req) -> bool:
    """Whether the request's exponents hold at every depth (the script may then train another
    one): the same at depth 1 and at 4x its depth. An omega above 1/2 makes them depend on
    the chain of hidden layers (Table 2; core/model.py)."""
    from dataclasses import replace

    from scaleadvise.core.prescribe import prescribe

    def exponents(depth: int) -> list[float]:
        layers = prescribe(replace(req, depth=depth, tensors=False, command=None)).layers.values()
        return [x for v in layers for x in (v.a, v.b, v.c, v.g, v.g_train)]

    return all(math.isclose(x, y, abs_tol=1e-12) for x, y in zip(exponents(1), exponents(4 * (req.depth or 8))))


# ----------------------------------------------------------------------------- the header


def _duration(seconds: float) -> str:
    if seconds < 90:
        return "about a minute"
    return f"~{seconds / 60:.0f} min" if seconds < 5400 else f"~{seconds / 3600:.1f} h"


def header(pres: dict, doc: dict, command: str) -> str:
    from scaleadvise.script.template.nanodo import flops_per_token

    m = pres["model"]
    size = {**m, "heads": m["width"] // m["head_dim"]}
    params = doc["model"].get("parameters", 0)
    gpu = flops_per_token(size) * 32 * m["context"] * 1000 / H100_TRAINING_FLOPS
    paper = flops_per_token(size) * 256 * m["context"] * 50000 / (8 * H100_TRAINING_FLOPS)
    tiny_w = m["head_dim"] * max(1, math.ceil(128 / m["head_dim"]))
    tiny = f"--width {tiny_w}{' --depth 2' if m['depth_free'] else ''} --context 64 --vocab 256 --batch-size 16"
    eps = {None: "no epsilon"}.get(pres["base_eps"], f"eps {_g(pres['base_eps'])}")
    if doc.get("eps_mode") == "per-layer":
        eps = f"per-layer eps (base {_g(pres['base_eps'])})"
    command = command.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'''#!/usr/bin/env python3
"""Train NanoDO (Everett et al. 2024, C.1) as prescribed: {pres["parameterization"]} + {pres["optimizer"]}, base width \
{pres["base_width"]}, base LR {pres["base_lr"]:g}, {eps}.

Written by scaleadvise {__version__}:
    {command}

Width {m["width"]}, depth {m["depth"]}, {size["heads"]} heads of {m["head_dim"]}, context {m["context"]}, vocab \
{m["vocab"]}: {params:,} parameters. Needs torch and numpy only.

    python train.py --device cpu {tiny} --steps 200 --threads 1
        # a tiny model on synthetic data: about 30 s on one CPU core
    python train.py --data train.bin --out runs/d{m["width"]}
        # 1000 steps of 32 x {m["context"]} tokens: {_duration(gpu)} on one H100 (plus the compile)
    torchrun --nproc_per_node 8 train.py --distributed fsdp --data train.bin --batch-size 256 --steps 50000
        # the paper's run length: {_duration(paper)} on 8 H100s
    python train.py --out runs/d{m["width"]} --resume      # continue after Ctrl-C, SIGTERM or a crash
    python train.py --width {2 * m["width"]}                        # another width: the rule recomputes every tensor
    python train.py --help                              # every flag and its default

Then: scaleadvise epsilon runs/d{m["width"]}/grads.csv, scaleadvise align runs/d{m["width"]}/alignment.csv,
and LR sweeps across widths with scaleadvise sweep train.py --widths ... --lrs ... (then scaleadvise fit).
"""
'''


# ----------------------------------------------------------------------------- the file


def emit_script(doc: dict, command: str, depth_free: bool = False) -> str:
    """The whole emitted file as text, from a ``prescribe --json`` document."""
    pres = script_prescription(doc, depth_free)
    parts = [(str(p.relative_to(PACKAGE.parent)), p.read_text()) for p in BUNDLE]
    parts, imports = prune(parts, pres["optimizer"], frozenset(k for k in OPTIONAL if k in pres))
    check_bundle(parts)
    out = [header(pres, doc, command), hoist(imports), data_block(pres, doc)]
    for where, source in parts:
        source, title = shorten(source)
        out.append(f"# {'-' * 4} {where}: {title}\n{source}")
    text = "\n".join(out)
    ast.parse(text)  # one syntax check of the whole file
    return text


def write_script(path: str, text: str) -> None:
    """Write atomically (a temporary file beside it, renamed over it), executable."""
    target = Path(path)
    if target.is_dir():
        raise UserError(f"-o {path}: is a directory; name the script file, e.g. {target / 'train.py'}")
    if not target.parent.is_dir():
        raise UserError(f"-o {path}: directory {target.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise UserError(f"-o {path}: cannot write in {target.parent} ({e.strerror})") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

