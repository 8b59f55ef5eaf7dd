"""Every figure's plumbing, in one place: matplotlib, the output path, the save.

matplotlib is the ``plot`` extra: ``pyplot()`` imports it with the Agg backend (files
only, no display needed) or raises the one-line UserError that says how to install it.
``check_plot_path`` runs before any work (a fit's bootstrap, an epsilon analysis): it
refuses an unknown image type, a directory, a missing or non-directory parent and a
directory that cannot be written in, and that matplotlib is missing. ``save_figure``
writes atomically (``core.files.atomic_output``: a temp file renamed over the target,
with the user's umask) and closes the figure.

This module imports only the standard library at import time; the command modules
import it at module level.

    check_plot_path(path)            # before the work
    plt = pyplot()
    fig, ax = plt.subplots()
    ...
    save_figure(fig, path)           # after it
"""

from pathlib import Path

from scaleadvise.errors import UserError

# Suffix -> matplotlib format. No suffix means PNG, as matplotlib's own default.
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg", ".jpg": "jpeg", ".jpeg": "jpeg", "": "png"}
INSTALL = "--plot needs matplotlib: pip install 'scaleadvise[plot]'"
FIELD = "plot"  # the field (flag --plot) the errors name


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or UserError(INSTALL)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(INSTALL) from None
    return plt


def image_format(path: str | Path, field: str = FIELD) -> str:
    """The matplotlib format for ``path``'s suffix; UserError for any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{path}: unknown image type {Path(path).suffix!r} (use .png, .pdf or .svg)", field)
    return FORMATS[suffix]


def check_plot_path(path: str | Path, field: str = FIELD) -> Path:
    """Fail before any work when a figure cannot be written to ``path`` (module doc)."""
    from importlib.util import find_spec

    from scaleadvise.core.files import check_output_path

    p = check_output_path(path, field)
    image_format(p, field)
    if find_spec("matplotlib") is None:
        raise UserError(INSTALL)
    return p


def save_figure(fig, path: str | Path, dpi: int = 130, field: str = FIELD) -> None:
    """Write ``fig`` to ``path`` atomically in the format its suffix names, then close it."""
    from scaleadvise.core.files import atomic_output

    plt = pyplot()
    try:
        fmt = image_format(path, field)
        with atomic_output(path, field) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt)
    finally:
        plt.close(fig)
