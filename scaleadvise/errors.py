"""The one exception type that means "the user's input is wrong".

The core names the *field* at fault, as library callers spell it (``width``,
``base_lr``, ``alignment``: the names of ``PrescribeRequest`` and of the functions'
arguments); the command line maps each field to its flag once, in
``scaleadvise.cli.app.FLAGS``, and prints the error as one line on stderr with exit
status 2 (docs/CONVENTIONS.md, "Errors"). Errors about a file name the file, the line or
record, and the field or column inside it.

    UserError("must be a positive integer, got 0", field="width")
    str(e)             -> "width: must be a positive integer, got 0"   (library callers)
    on the command line -> "scaleadvise: error: --width: must be a positive integer, got 0"
"""


class UserError(ValueError):
    """Bad input: a file, row, column, flag or field that cannot be used as given.

    ``field`` names the input at fault (``None`` when the message already names it, e.g.
    a file and its line); ``message`` is the rest, one line.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)

    def __reduce__(self):  # picklable with its field (pytest-xdist, multiprocessing)
        return (type(self), (self.message, self.field))
