"""`scaleadvise presets`: the model descriptions and constant sets that ship."""

from typing import Annotated

import typer
from rich.table import Table

from scaleadvise.cli.app import app
from scaleadvise.cli.render import console, print_json


@app.command(epilog="\nExamples:\n\n  scaleadvise presets\n\n  scaleadvise presets --json\n")
def presets(json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List the model presets (for --model) and LR-constant sets (for --constants)."""
    from scaleadvise.core.constants import PRESET_DIR as CONST_DIR, list_constant_sets
    from scaleadvise.core.model import expand, list_presets, load_model, parameter_count
    from scaleadvise.core.parameterizations import NAMES
    from scaleadvise.core.optimizers import OPTIMIZERS

    models = []
    for name in list_presets():
        spec = load_model(name)
        models.append({"name": name, "description": spec.description, "width": spec.width, "depth": spec.depth,
                       "head_dim": spec.head_dim, "parameters": parameter_count(expand(spec, spec.width))})
    consts = [{"name": c, "file": None if c == "default" else str(CONST_DIR / f"{c}.yaml")} for c in list_constant_sets()]
    doc = {"models": models, "constants": consts, "parameterizations": list(NAMES) + ["custom"],
           "optimizers": list(OPTIMIZERS)}
    if json_out:
        print_json(doc)
        return
    table = Table(title="Model presets (--model NAME, or a YAML file of the same schema)")
    for col in ("name", "description", "default width", "depth", "head dim", "parameters"):
        table.add_column(col)
    for m in models:
        table.add_row(m["name"], m["description"], str(m["width"]), str(m["depth"]), str(m["head_dim"] or "—"),
                      f"{m['parameters']:,}")
    console.print(table)
    console.print("LR constant sets (--constants): default (gamma = 1), paper (Table C3), or a YAML file")
    console.print("parameterizations: " + ", ".join(doc["parameterizations"]))
    console.print("optimizers: " + ", ".join(doc["optimizers"]))
