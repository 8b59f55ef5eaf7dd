"""scaleadvise/plots/__init__.py: the output path checked before any work, one atomic save
with the user's umask, and the one-line error when matplotlib is missing."""

import os
import stat
import sys

import pytest

from helpers import umask
from scaleadvise.errors import UserError
from scaleadvise.plots import INSTALL, check_plot_path, pyplot, save_figure

pytest.importorskip("matplotlib")


def _figure():
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([1, 2, 3], [3, 1, 2])
    return fig


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_pyplot_draws_on_agg():
    import matplotlib

    pyplot()
    assert matplotlib.get_backend().lower() == "agg"


@pytest.mark.parametrize("name", ["fig.png", "fig.PDF", "fig.svg", "fig.jpeg", "figure"])
def test_accepted_paths(tmp_path, name):
    assert check_plot_path(tmp_path / name) == tmp_path / name
    assert _names(tmp_path) == []  # the writability probe leaves nothing


def test_refused_paths_name_the_plot_field(tmp_path):
    """Every path error of core.files.check_output_path (tests/test_files.py), and the
    image type, as errors of the field ``plot`` (the flag --plot)."""
    (tmp_path / "sub").mkdir()
    for name, message in (("sub", "is a directory"), ("fig.xyz", "unknown image type '.xyz'"),
                          ("missing/fig.png", "does not exist")):
        with pytest.raises(UserError, match=message) as e:
            check_plot_path(tmp_path / name)
        assert e.value.field == "plot"
    assert _names(tmp_path) == ["sub"]


@pytest.mark.parametrize("name,magic", [("f.png", b"\x89PNG"), ("f.pdf", b"%PDF"), ("f.svg", b"<?xml"),
                                        ("f", b"\x89PNG")])
def test_save_writes_the_format_its_suffix_names(tmp_path, name, magic):
    save_figure(_figure(), tmp_path / name)
    assert (tmp_path / name).read_bytes().startswith(magic)
    assert _names(tmp_path) == [name]  # no temp file left


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_file_keeps_the_users_umask(tmp_path, mask, mode):
    with umask(mask):
        save_figure(_figure(), tmp_path / "f.png")
    assert stat.S_IMODE((tmp_path / "f.png").stat().st_mode) == mode


def test_save_closes_the_figure(tmp_path):
    plt = pyplot()
    fig = _figure()
    save_figure(fig, tmp_path / "f.png")
    assert fig.number not in plt.get_fignums()


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_an_interrupted_save_leaves_the_old_file_and_no_temp(tmp_path, error):
    target = tmp_path / "f.png"
    target.write_bytes(b"old plot")
    fig = _figure()

    def half_written(path, **_kwargs):
        with open(path, "wb") as f:
            f.write(b"\x89PNG half")
        raise error

    fig.savefig = half_written
    with pytest.raises((KeyboardInterrupt, UserError)):
        save_figure(fig, target)
    assert target.read_bytes() == b"old plot"
    assert _names(tmp_path) == ["f.png"]
    assert fig.number not in pyplot().get_fignums()


def test_missing_matplotlib_is_one_line(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(UserError) as e:
        check_plot_path(tmp_path / "f.png")
    assert str(e.value) == INSTALL == "--plot needs matplotlib: pip install 'scaleadvise[plot]'"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    with pytest.raises(UserError, match="needs matplotlib"):
        pyplot()


# ------------------------------------------------------------------ every command's --plot

def _tables(tmp_path):
    import sys as _sys

    _sys.path.insert(0, os.path.dirname(__file__))
    from test_bad_input import GOOD_TABLE

    out = {}
    for cmd, (name, text) in GOOD_TABLE.items():
        (tmp_path / name).write_text(text)
        out[cmd] = tmp_path / name
    return out


@pytest.mark.parametrize("command", ["fit", "epsilon", "align"])
@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_every_plot_keeps_the_umask(cli, tmp_path, command, mask):
    table = _tables(tmp_path)[command]
    out = tmp_path / "plots"
    out.mkdir()
    extra = ["--bootstrap", "0"] if command == "fit" else []
    with umask(mask):
        code, _, err = cli(command, str(table), *extra, "--plot", str(out / "p.png"), "--json")
    assert code == 0, err
    assert _names(out) == ["p.png"]
    assert stat.S_IMODE((out / "p.png").stat().st_mode) == 0o666 & ~mask
