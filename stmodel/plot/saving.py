"""Writing figures so that an interrupted save never leaves a half-written image."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from stmodel.atomic_files import atomic_path

DEFAULT_DPI = 120


def save_figure(figure: Figure, path: str | Path, *, dpi: int = DEFAULT_DPI) -> Path:
    """Save a figure (format from the suffix: .png, .pdf, .svg), making folders; return the path."""
    path = Path(path)
    with atomic_path(path) as temporary:
        # "tight" grows the canvas to whatever is drawn: titles above fixed-aspect
        # map axes can otherwise fall just outside a constrained layout.
        figure.savefig(temporary, dpi=dpi, bbox_inches="tight", pad_inches=0.1)
    return path
