"""Writing figures so that an interrupted save never leaves a half-written image."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

DEFAULT_DPI = 120


def temporary_path_for(path: Path) -> Path:
    """A sibling path to write first; the same suffix, so writers pick the same format."""
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def save_figure(figure: Figure, path: str | Path, *, dpi: int = DEFAULT_DPI) -> Path:
    """Save a figure (format from the suffix: .png, .pdf, .svg), making folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path_for(path)
    try:
        # "tight" grows the canvas to whatever is drawn: titles above fixed-aspect
        # map axes can otherwise fall just outside a constrained layout.
        figure.savefig(temporary, dpi=dpi, bbox_inches="tight", pad_inches=0.1)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
