"""The application itself (scaleadvise/cli/app.py): --version, completion, and how an
error is said: a core UserError names a field, the CLI names its flag (app.FLAGS)."""

import ast
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import scaleadvise
from scaleadvise.cli.app import COMMANDS, FLAGS, app, error_text
from scaleadvise.errors import UserError

CORE = Path(scaleadvise.__file__).parent / "core"


def test_version(cli):
    code, out, err = cli("--version")
    assert (code, out, err) == (0, f"scaleadvise {scaleadvise.__version__}\n", "")


def test_version_is_the_installed_distributions():
    assert scaleadvise.__version__ == importlib.metadata.version("scaleadvise")


def test_help_lists_version_and_completion(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for text in ("--version", "--install-completion", "--show-completion", *COMMANDS):
        assert text in out


def test_no_arguments_prints_help(cli):
    code, out, _ = cli()
    assert code == 0 and "Usage" in out and "prescribe" in out


def _complete(words: str, cword: int) -> list[str]:
    """Ask the installed entry point for bash completions, as the shell script does."""
    env = dict(os.environ, _SCALEADVISE_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(cword))
    entry = Path(sys.executable).with_name("scaleadvise")
    if not entry.exists():
        pytest.skip(f"{entry} is not installed")
    r = subprocess.run([str(entry)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_shell_completion_of_commands_and_flags():
    assert _complete("scaleadvise pre", 1) == ["prescribe", "presets"]
    assert "--param" in _complete("scaleadvise prescribe --par", 2)


def test_show_completion_prints_a_script(cli, monkeypatch):
    # With shellingham installed the flag detects the shell from the process tree; a run
    # whose ancestors hold no shell (a detached job) detects none, so the shell is fixed here.
    import typer.completion

    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    code, out, err = cli("--show-completion", "bash")
    assert code == 0, err
    assert "_SCALEADVISE_COMPLETE" in out and "complete" in out


# ------------------------------------------------------------------ field -> flag

def _flags_of_every_command() -> set[str]:
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    return {opt for name in group.list_commands(ctx) for p in group.get_command(ctx, name).params
            for opt in getattr(p, "opts", [])}


def test_every_mapped_flag_exists():
    """A field mapped to a flag no command has would send users to a flag that is not there."""
    flags = _flags_of_every_command()
    assert set(FLAGS.values()) <= flags, set(FLAGS.values()) - flags


def test_error_text_maps_the_field_to_its_flag():
    e = UserError("must be a positive integer, got 0", field="head_dim")
    assert str(e) == "head_dim: must be a positive integer, got 0"  # what library callers see
    assert error_text(e) == "--head-dim: must be a positive integer, got 0"
    assert error_text(UserError("sweeps.csv: line 3, column 'lr': 'x' is not a number")) == \
        "sweeps.csv: line 3, column 'lr': 'x' is not a number"
    assert error_text(UserError("no flag for this one", field="colour")) == "colour: no flag for this one"


def test_user_error_pickles_with_its_field():
    import pickle

    e = pickle.loads(pickle.dumps(UserError("bad", field="width")))
    assert (e.field, e.message, str(e)) == ("width", "bad", "width: bad")


def _user_error_messages(path: Path):
    """(line, first argument) of every UserError(...) raised in a module."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "UserError" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.JoinedStr):
                first = arg.values[0]
                if isinstance(first, ast.FormattedValue):  # f"{flag}: ..." is a flag too
                    text = "--" if getattr(first.value, "id", "") == "flag" else ""
                else:
                    text = first.value
            else:
                text = arg.value if isinstance(arg, ast.Constant) else ""
            yield node.lineno, text


@pytest.mark.parametrize("module", sorted(p.name for p in CORE.glob("*.py")))
def test_core_names_fields_not_flags(module):
    """The core speaks in fields; flags are the CLI's business (one table, app.FLAGS)."""
    flagged = [(line, text) for line, text in _user_error_messages(CORE / module) if text.startswith("--")]
    assert not flagged, flagged


def test_the_core_fields_are_mapped():
    """Every field a core module names in a UserError has a flag (or is deliberately a file)."""
    fields = set()
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text())
        consts = {n.targets[0].id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                  and isinstance(n.value, ast.Constant) and isinstance(n.targets[0], ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "UserError" and len(node.args) > 1:
                arg = node.args[1]
                if isinstance(arg, ast.Constant):
                    fields.add(arg.value)
                elif isinstance(arg, ast.Name) and arg.id in consts:
                    fields.add(consts[arg.id])
    assert fields and fields <= set(FLAGS), fields - set(FLAGS)


# ------------------------------------------------------------------ the entry point

def test_operating_system_errors_name_the_file(cli, monkeypatch):
    """A file the OS refuses past every check is still one line naming it, not a traceback."""
    import scaleadvise.core.prescribe as P

    def refuse(*_a, **_k):
        raise PermissionError(13, "Permission denied", "/somewhere/model.yaml")

    monkeypatch.setattr(P, "load_model", refuse)
    code, out, err = cli("prescribe")
    assert (code, out) == (2, "")
    assert err == "scaleadvise: error: /somewhere/model.yaml: Permission denied\n"


def test_a_bug_is_not_disguised_as_bad_input(cli, monkeypatch):
    import scaleadvise.core.prescribe as P

    def broken(*_a, **_k):
        raise KeyError("a bug")

    monkeypatch.setattr(P, "load_model", broken)
    with pytest.raises(KeyError):
        cli("prescribe")


# ------------------------------------------------------------------ interrupts

INTERRUPT = """
import os, pathlib, signal, sys
from scaleadvise.cli.app import main

signal.signal(signal.SIGINT, signal.default_int_handler)  # as a shell's foreground job: a detached parent ignores it

write = pathlib.Path.write_text

def write_then_signal(self, *args, **kwargs):  # the signal lands while the output is half done
    write(self, *args, **kwargs)
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))

pathlib.Path.write_text = write_then_signal
main(["equiv", "--param", "stp", "--to-form", "ntk", "--width", "256", "--base-width", "64",
      "--constants-out", "c.yaml", "--prescription-out", "p.json"])
"""


@pytest.mark.parametrize("sig,code,line", [("SIGINT", 130, "scaleadvise: interrupted"),
                                           ("SIGTERM", 143, "scaleadvise: terminated")])
def test_an_interrupt_while_writing_leaves_nothing(tmp_path, sig, code, line):
    r = subprocess.run([sys.executable, "-c", INTERRUPT, sig], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == code, r.stderr
    assert r.stderr == line + "\n" and r.stdout == ""
    assert list(tmp_path.iterdir()) == []  # neither output, no temp file
