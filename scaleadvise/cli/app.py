"""The Typer application object and the process entry point.

Command modules register themselves on ``app``; ``main`` turns every kind of bad
input (our UserError, click's usage errors, pydantic validation errors) into one
line on stderr and exit status 2, so no user ever sees a traceback for a typo.
"""

import sys

import typer

from scaleadvise.errors import UserError

app = typer.Typer(
    name="scaleadvise",
    help=(
        "Per-layer init, multipliers, learning rates and Adam epsilon for scaling a "
        "network in width (Everett et al. 2024), checked against your own sweeps.\n\n"
        "The loop: prescribe -> emit-train -> (run sweeps) -> fit / epsilon / align -> prescribe."
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
    import scaleadvise.cli  # noqa: F401  (registers every command)

    args = sys.argv[1:] if argv is None else list(argv)
    try:
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


def _one_line(message: str) -> int:
    text = " ".join(str(message).split())
    sys.stderr.write(f"scaleadvise: error: {text}\n")
    return 2
