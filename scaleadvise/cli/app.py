"""The Typer application object and the process entry point.

Commands are registered lazily: ``COMMANDS`` maps each command name to the module
that defines it, and ``LazyGroup`` imports a module (and converts its command to
click) only when that command is looked up. ``scaleadvise prescribe`` therefore
imports and converts one command, not all of them; ``--help``, shell completion
and unknown command names load every command, so the help listing and the
"No such command ... Did you mean ...?" message are unchanged
(benchmarks/cli_startup.py, tests/test_cli_lazy.py).

``main`` turns every kind of bad input (our UserError, click's usage errors, a
file the operating system refuses) into one line on stderr and exit status 2, so
no user ever sees a traceback for a typo. The core names the *field* at fault
(``width``, ``base_lr``); ``FLAGS`` maps each field to its flag, once, for the
message (docs/CONVENTIONS.md, "Errors").

``scaleadvise --version`` prints the version; ``--install-completion`` and
``--show-completion`` are Typer's shell completion (bash, zsh, fish, PowerShell).
"""

import importlib
import os
import sys
from contextlib import contextmanager
from typing import Annotated

import typer
from typer.core import TyperGroup

from scaleadvise import __version__
from scaleadvise.errors import UserError

# The field a core UserError names -> the flag a command-line user types. One table for
# every command: a field means the same flag wherever it appears (tests/test_cli_app.py
# checks that each flag exists). Fields not listed are printed as they are.
FLAGS: dict[str, str] = {
    "param": "--param", "optim": "--optim", "width": "--width", "base_width": "--base-width",
    "base_lr": "--base-lr", "alignment": "--alignment", "omega_readout": "--omega-readout",
    "constants": "--constants", "eps": "--eps", "base_eps": "--base-eps", "model": "--model",
    "depth": "--depth", "heads": "--heads", "head_dim": "--head-dim", "context": "--context",
    "vocab": "--vocab", "custom": "--custom-file", "sgd_readout": "--sgd-readout",
    "a": "--a", "b": "--b", "c": "--c", "theta": "--theta", "to_form": "--to-form",
    "constants_out": "--constants-out", "prescription_out": "--prescription-out", "plot": "--plot",
    "depth_param": "--depth-param", "base_depth": "--base-depth", "weight_decay": "--weight-decay",
    "wd_timescale": "--wd-timescale", "wd_convention": "--wd-convention", "tokens_per_step": "--tokens-per-step",
    "wd_vectors": "--wd-vectors",
}

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


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"scaleadvise {__version__}\n")
        raise typer.Exit()


def _group_callback(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Group-level options: --version (and Typer's completion options). Having a callback
    also keeps typer building a group while fewer than two commands are registered."""


app = typer.Typer(
    name="scaleadvise",
    cls=LazyGroup,
    callback=_group_callback,
    help=(
        "Per-layer init, multipliers, learning rates and Adam epsilon for scaling a "
        "network in width (Everett et al. 2024), checked against your own sweeps.\n\n"
        "The loop: prescribe -> emit-train -> sweep -> fit / epsilon / align -> prescribe."
    ),
    add_completion=True,
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
        with _no_pydantic_plugins(), _sigterm_as_exit():
            rc = app(args=args or ["--help"], standalone_mode=False, prog_name="scaleadvise")
    except _Terminated:
        sys.stderr.write("scaleadvise: terminated\n")
        raise SystemExit(143) from None
    except UserError as e:
        raise SystemExit(_one_line(error_text(e)))
    except typer.Exit as e:
        raise SystemExit(e.exit_code)
    except typer.Abort:
        sys.stderr.write("scaleadvise: aborted\n")
        raise SystemExit(130)
    except BrokenPipeError:  # `scaleadvise ... | head`
        _quiet_stdout()
        raise SystemExit(0)
    except OSError as e:
        # A file the operating system refused (permissions, a full disk) that no check
        # caught first: still the user's environment, not a bug, and it names the file.
        if e.filename is None:
            raise
        raise SystemExit(_one_line(f"{e.filename}: {e.strerror or e}"))
    except Exception as e:
        # click's (or typer's vendored click's) usage errors, matched by shape so
        # that both typer generations work: they carry format_message and exit_code.
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):
            raise SystemExit(_one_line(e.format_message()))
        raise
    if rc == 130:  # typer's answer to KeyboardInterrupt (SIGINT), after every `finally` has run
        sys.stderr.write("scaleadvise: interrupted\n")
    raise SystemExit(rc if isinstance(rc, int) else 0)


class _Terminated(SystemExit):
    """SIGTERM, raised where the program is so that `finally` blocks run (the temp files
    of atomic writes are removed) instead of the process vanishing mid-write."""


@contextmanager
def _sigterm_as_exit():
    import signal

    def terminated(signum, frame):
        raise _Terminated(143)

    try:
        previous = signal.signal(signal.SIGTERM, terminated)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


def error_text(e: UserError) -> str:
    """A UserError as the command line says it: the field at fault as its flag."""
    if e.field is None:
        return str(e)
    return f"{FLAGS.get(e.field, e.field)}: {e.message}"


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so that the interpreter's final
    flush does not raise a second BrokenPipeError (Python docs, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (in-process tests)
        pass


def _one_line(message: str) -> int:
    text = " ".join(str(message).split())
    sys.stderr.write(f"scaleadvise: error: {text}\n")
    return 2
