"""Figures shown in Jupyter without ``%matplotlib inline``.

stmodel.plot returns ``matplotlib.figure.Figure`` objects made without pyplot,
so no backend is ever loaded and IPython has no way to draw them: a figure as
the last expression of a cell would print ``<Figure size ...>``. When stmodel.plot
is imported inside IPython, a PNG formatter for figures is registered, unless
the user has one already (``%matplotlib inline`` or their own choice of format).
"""

from __future__ import annotations

from matplotlib.figure import Figure

# The formats IPython can show a figure in; a formatter for any of them is the user's choice.
FIGURE_MIME_TYPES = ("image/png", "image/svg+xml", "image/jpeg", "application/pdf")


def _figure_png(figure: Figure) -> bytes:
    from IPython.core.pylabtools import print_figure

    return print_figure(figure, "png", bbox_inches="tight")


def enable_notebook_display() -> bool:
    """Register the PNG formatter in the running IPython shell; True when it was added."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters:
        return False
    for mime in FIGURE_MIME_TYPES:
        if mime not in formatters:
            continue
        try:
            formatters[mime].lookup_by_type(Figure)
            return False  # figures already have a format
        except KeyError:
            pass
    formatters["image/png"].for_type(Figure, _figure_png)
    return True
