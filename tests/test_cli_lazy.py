"""Lazy command registration (scaleadvise/cli/app.py): a command imports only its own
module, while --help, unknown names and typer's CliRunner still see every command."""

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import scaleadvise.cli
from scaleadvise.cli.app import COMMANDS, app

OTHER_MODULES = sorted({f"scaleadvise.cli.{m}" for m in COMMANDS.values()} - {"scaleadvise.cli.prescribe"})
FAKE_SCRIPT = Path(__file__).with_name("sweep_fake_train.py")
HEAVY = ("torch", "scipy", "pandas", "matplotlib", "ray")


def _python(code: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter, so sys.modules shows what one command imports."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_prescribe_imports_only_its_own_command_module():
    modules = OTHER_MODULES + list(HEAVY) + ["rich.console", "rich.table"]
    r = _python(
        "import sys\nfrom scaleadvise.cli.app import main\n"
        "try: main(['prescribe', '--param', 'stp', '--optim', 'adam', '--width', '16384', '--json'])\n"
        "except SystemExit as e: assert not e.code, e.code\n"
        f"print(sorted(m for m in {modules!r} if m in sys.modules), file=sys.stderr)")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "[]"  # no other command, no heavy library, no rich rendering for --json
    doc = json.loads(r.stdout)
    assert doc["width"] == 16384 and doc["optimizer"] == "adam"


def test_every_registered_command_is_in_the_lazy_table():
    """A command whose module is missing from COMMANDS would vanish from the CLI."""
    for mod in pkgutil.iter_modules(scaleadvise.cli.__path__):
        importlib.import_module(f"scaleadvise.cli.{mod.name}")
    registered = {info.name or info.callback.__name__.replace("_", "-"): info.callback.__module__
                  for info in app.registered_commands}
    assert registered == {name: f"scaleadvise.cli.{module}" for name, module in COMMANDS.items()}


def test_help_lists_every_command_in_order(cli):
    code, out, _ = cli("--help")
    assert code == 0
    panel = out[out.index("Commands"):]
    positions = [panel.find(f"│ {name} ") for name in COMMANDS]
    assert all(p > 0 for p in positions), positions
    assert positions == sorted(positions)  # the order of COMMANDS, whatever was imported first


def test_unknown_command_is_one_line_exit_2_with_suggestion():
    """In a fresh process nothing is loaded yet: the suggestion must still see every name."""
    r = subprocess.run([sys.executable, "-m", "scaleadvise", "fitt"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == "scaleadvise: error: No such command 'fitt'. Did you mean 'fit'?\n"


def test_cli_runner_on_app_loads_commands_lazily():
    r = _python(
        "import json, sys\nfrom typer.testing import CliRunner\nfrom scaleadvise.cli.app import app\n"
        "res = CliRunner().invoke(app, ['presets', '--json'])\n"
        "assert res.exit_code == 0, res.output\nassert json.loads(res.output)['models']\n"
        "assert 'scaleadvise.cli.presets' in sys.modules and 'scaleadvise.cli.fit' not in sys.modules\n"
        "res = CliRunner().invoke(app, ['--help'])\n"
        "assert res.exit_code == 0 and 'emit-train' in res.output, res.output\n")
    assert r.returncode == 0, r.stderr


def test_sweep_help_and_dry_run_do_not_import_ray():
    """Ray is imported only when a run must start (scaleadvise/sweep/ray_engine.py)."""
    r = _python(
        "import sys, tempfile\nfrom scaleadvise.cli.app import main\n"
        f"for args in (['sweep', '--help'], ['sweep', {str(FAKE_SCRIPT)!r}, '--widths', '8', '--lrs', '1e-3', "
        "'--dry-run', '--out', tempfile.mkdtemp() + '/s']):\n"
        "    try: main(args)\n"
        "    except SystemExit as e: assert not e.code, e.code\n"
        f"print(sorted(m for m in {list(HEAVY)!r} if m in sys.modules), file=sys.stderr)")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "[]"
