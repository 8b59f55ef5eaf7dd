"""The one exception type that means "the user's input is wrong".

The CLI renders it as a single line on stderr and exits with status 2 (DESIGN.md:
Errors). Library callers get an ordinary exception that names the input, the row
or field, and what is wrong.
"""


class UserError(ValueError):
    """Bad input: a file, row, column, flag or field that cannot be used as given."""
