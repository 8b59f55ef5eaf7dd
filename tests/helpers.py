"""Assertions and contexts shared by the tests."""

import os
from contextlib import contextmanager

import pytest


def assert_bad_input(cli, *args: str, match: str) -> None:
    """A command fails as bad input must: exit 2, one line on stderr, nothing on stdout."""
    code, out, err = cli(*args)
    assert code == 2, (out, err)
    assert err.startswith("scaleadvise: error:") and err.count("\n") == 1, err
    assert match in err, err
    assert out == ""


NOBODY = 65534


@contextmanager
def denied():
    """Make permission bits bite: as root (which ignores them), run the block with the
    effective uid/gid of nobody. Files it must reach need o+r (and directories o+x), and
    the modules it imports should be loaded already: an interpreter installed under
    /root (pyenv) is out of nobody's reach."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.setegid(NOBODY)
        os.seteuid(NOBODY)
    except PermissionError:
        os.setegid(0)
        pytest.skip("running as root without the right to drop privileges: chmod cannot deny access")
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
