"""Assertions shared by the CLI tests."""


def assert_bad_input(cli, *args: str, match: str) -> None:
    """A command fails as bad input must: exit 2, one line on stderr, nothing on stdout."""
    code, out, err = cli(*args)
    assert code == 2, (out, err)
    assert err.startswith("scaleadvise: error:") and err.count("\n") == 1, err
    assert match in err, err
    assert out == ""
