"""The Typer application object and the process entry point.

Commands are registered lazily: ``COMMANDS`` maps each command name to the module
that defines it, and ``LazyGroup`` imports a module (and converts its command to
click) only when that command is looked up. ``scaleadvise prescribe`` therefore
imports and converts one command, not all of them; ``--help``, shell completion
and unknown command names load every command, so the help listing and the
"No such command ... Did you mean ...?" message are unchanged
(benchmarks/cli_startup.py, tests/test_cli_lazy.py).

``main`` turns every kind of bad input (our UserError, click's usage errors,
pydantic validation errors) into one line on stderr and exit status 2, so no
user ever sees a traceback for a typo.
"""

import importlib
import os
import sys
from contextlib import contextmanager

import typer
from typer.core import TyperGroup

from scaleadvise.errors import UserError

# name -> module under scaleadvise.cli, in the order the help lists them.
# A new command must be added here (tests/test_cli_lazy.py checks that every
# command a module registers is listed, with the right module).
COMMANDS: dict[str, str] = {
    "prescribe": "prescribe",
    "check": "check",
    "equiv": "check",
    "presets": "presets",
    "fit": "fit",
    "epsilon": "epsilon",
    "align": "align",
    "emit-train": "emit_train",
    "sweep": "sweep",
}


class LazyGroup(TyperGroup):
    """A TyperGroup that imports and converts a command the first time it is asked for."""

    def get_command(self, ctx: typer.Context, cmd_name: str):  # -> click Command | None, as in TyperGroup
        if cmd_name not in self.commands:
            if cmd_name in COMMANDS:
                _import(COMMANDS[cmd_name])
            else:  # unknown: load all, so click's "Did you mean" sees every name
                self._load_all()
            self._convert(cmd_name)
        return self.commands.get(cmd_name)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        self._load_all()
        order = {name: i for i, name in enumerate(COMMANDS)}
        return sorted(self.commands, key=lambda n: order.get(n, len(order)))

    def _load_all(self) -> None:
        for module in dict.fromkeys(COMMANDS.values()):
            _import(module)
        for name in _registered():
            self._convert(name)

    def _convert(self, cmd_name: str) -> None:
        info = _registered().get(cmd_name)
        if info is not None and cmd_name not in self.commands:
            self.commands[cmd_name] = typer.main.get_command_from_info(
                info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode)


def _import(module: str) -> None:
    importlib.import_module(f"scaleadvise.cli.{module}")  # registers its command(s) on ``app``


def _registered() -> dict[str, "typer.models.CommandInfo"]:
    return {info.name or typer.main.get_command_name(info.callback.__name__): info  # type: ignore[union-attr]
            for info in app.registered_commands}


def _group_callback() -> None:
    """No group-level options; having a callback keeps typer building a group even
    while fewer than two commands are registered."""


app = typer.Typer(
    name="scaleadvise",
    cls=LazyGroup,
    callback=_group_callback,
    help=(
        "Per-layer init, multipliers, learning rates and Adam epsilon for scaling a "
        "network in width (Everett et al. 2024), checked against your own sweeps.\n\n"
        "The loop: prescribe -> emit-train -> sweep -> fit / epsilon / align -> prescribe."
    ),
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def fail(message: str) -> "typer.Exit":
    """Print a one-line error and return the Exit to raise (status 2)."""
    sys.stderr.write(f"scaleadvise: error: {message}\n")
    return typer.Exit(2)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, map bad input to exit status 2."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        with _no_pydantic_plugins():
            rc = app(args=args or ["--help"], standalone_mode=False, prog_name="scaleadvise")
    except UserError as e:
        raise SystemExit(_one_line(str(e)))
    except typer.Exit as e:
        raise SystemExit(e.exit_code)
    except typer.Abort:
        sys.stderr.write("scaleadvise: aborted\n")
        raise SystemExit(130)
    except BrokenPipeError:  # `scaleadvise ... | head`
        raise SystemExit(0)
    except Exception as e:
        # click's (or typer's vendored click's) usage errors, matched by shape so
        # that both typer generations work: they carry format_message and exit_code.
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):
            raise SystemExit(_one_line(e.format_message()))
        raise
    raise SystemExit(rc if isinstance(rc, int) else 0)


@contextmanager
def _no_pydantic_plugins():
    """Skip pydantic's plugin discovery while a command runs, as typer does for its own
    option adapters: our models validate internal data, and the discovery (importing
    importlib.metadata, scanning every installed distribution's entry points) is ~10%
    of `scaleadvise prescribe`'s run time. A user's own setting wins."""
    if "PYDANTIC_DISABLE_PLUGINS" in os.environ:
        yield
        return
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "1"
    try:
        yield
    finally:
        os.environ.pop("PYDANTIC_DISABLE_PLUGINS", None)


def _one_line(message: str) -> int:
    text = " ".join(str(message).split())
    sys.stderr.write(f"scaleadvise: error: {text}\n")
    return 2
