"""core/files.py: the files users name. YAML in (every way a path can be wrong is one
UserError naming the field and the file); outputs checked before any work and written
atomically, with the user's umask, leaving nothing behind on a failure or an interrupt."""

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from helpers import denied, umask
from scaleadvise.core.files import atomic_output, check_output_path, read_yaml, write_text_atomic
from scaleadvise.errors import UserError


@pytest.fixture
def open_dir():
    """A directory others may search (pytest's tmp_path is under a 0700 one), so that the
    permission cases can run as nobody."""
    d = Path(tempfile.mkdtemp(prefix="scaleadvise-files-"))
    d.chmod(0o755)
    yield d
    for p in d.rglob("*"):
        p.chmod(0o755)
    shutil.rmtree(d)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ reading

def test_read_yaml(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("name: x\ndepth: 2\n")
    assert read_yaml(f, "model") == {"name": "x", "depth": 2}


@pytest.mark.parametrize("content,message", [
    (None, "no such file"),
    ("DIR", "is a directory, not a YAML file"),
    (b"", "the file is empty"),
    (b"# only a comment\n", "the file is empty"),
    ("caf\xe9: 1\n".encode("latin-1"), "not a text file (not UTF-8)"),
    (b"a: 1\x00\n", "not a text file (it holds NUL bytes)"),
    (b"a: [1,\nb: 2\n", "not valid YAML: "),
])
def test_read_yaml_errors(tmp_path, content, message):
    f = tmp_path / "in.yaml"
    if content == "DIR":
        f.mkdir()
    elif content is not None:
        f.write_bytes(content)
    with pytest.raises(UserError) as e:
        read_yaml(f, "constants")
    assert e.value.field == "constants" and e.value.message.startswith(f"{f}: {message}")
    assert "\n" not in str(e.value)


def test_read_yaml_unreadable(open_dir):
    f = open_dir / "locked.yaml"
    f.write_text("a: 1\n")
    f.chmod(0)
    with denied(), pytest.raises(UserError, match="cannot read it \\(Permission denied\\)") as e:
        read_yaml(f, "model")
    assert e.value.field == "model"


# ------------------------------------------------------------------ checking an output

def test_check_output_path_accepts_new_and_existing_files(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    assert check_output_path(tmp_path / "new.json", "x") == tmp_path / "new.json"
    assert check_output_path(str(tmp_path / "old.json"), "x") == tmp_path / "old.json"
    assert _names(tmp_path) == ["old.json"]  # the writability probe is gone


@pytest.mark.parametrize("name,message", [
    ("", "an empty path is not a file name"),
    ("sub", "is a directory, expected a file name"),
    ("missing/out.json", "does not exist"),
    ("afile/out.json", "is not a directory"),
])
def test_check_output_path_refuses(tmp_path, name, message):
    (tmp_path / "sub").mkdir()
    (tmp_path / "afile").write_text("x")
    before = _names(tmp_path)
    with pytest.raises(UserError, match=message) as e:
        check_output_path(str(tmp_path / name) if name else "", "prescription_out")
    assert e.value.field == "prescription_out"
    assert _names(tmp_path) == before


def test_check_output_path_tries_the_directory(open_dir):
    """Permission bits are tried as the user, not read: root ignores them, a read-only file
    system does not."""
    ro = open_dir / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    with denied(), pytest.raises(UserError, match=r"cannot write in .*ro \(Permission denied\)"):
        check_output_path(ro / "out.json", "constants_out")
    assert _names(ro) == []


def test_a_directory_that_cannot_be_searched_is_one_error(open_dir):
    shut = open_dir / "shut"
    (shut / "sub").mkdir(parents=True)
    shut.chmod(0o700)
    with denied(), pytest.raises(UserError, match="Permission denied") as e:
        check_output_path(shut / "sub" / "out.json", "plot")
    assert e.value.field == "plot"


# ------------------------------------------------------------------ writing

@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o000])
def test_written_files_keep_the_users_umask(tmp_path, mask):
    with umask(mask):
        write_text_atomic(tmp_path / "out.yaml", "a: 1\n", "constants_out")
    assert stat.S_IMODE((tmp_path / "out.yaml").stat().st_mode) == 0o666 & ~mask
    assert (tmp_path / "out.yaml").read_text() == "a: 1\n" and _names(tmp_path) == ["out.yaml"]


def test_write_replaces_an_existing_file(tmp_path):
    (tmp_path / "out.yaml").write_text("old")
    write_text_atomic(tmp_path / "out.yaml", "new", "x")
    assert (tmp_path / "out.yaml").read_text() == "new" and _names(tmp_path) == ["out.yaml"]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(143), RuntimeError("a bug")])
def test_an_interrupted_write_leaves_the_old_file_and_no_temp(tmp_path, error):
    """SIGINT (KeyboardInterrupt), SIGTERM turned into SystemExit, or any error while the
    output is written: the target keeps its old content and the temp file goes."""
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(type(error)):
        with atomic_output(target, "x") as tmp:
            Path(tmp).write_text("half")
            raise error
    assert target.read_text() == "old" and _names(tmp_path) == ["out.json"]


def test_an_os_error_while_writing_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"out.json: cannot write it \(No space left on device\)") as e:
        with atomic_output(tmp_path / "out.json", "prescription_out"):
            raise OSError(28, "No space left on device")
    assert e.value.field == "prescription_out" and _names(tmp_path) == []


def test_the_target_turning_into_a_directory_midway(tmp_path):
    with pytest.raises(UserError, match="cannot write it"):
        with atomic_output(tmp_path / "out", "x") as tmp:
            Path(tmp).write_text("data")
            (tmp_path / "out").mkdir()
            (tmp_path / "out" / "keep").write_text("")
    assert _names(tmp_path) == ["out"]


def test_umask_is_left_as_it_was(tmp_path):
    with umask(0o027):
        write_text_atomic(tmp_path / "a", "", "x")
        assert os.umask(0o027) == 0o027
