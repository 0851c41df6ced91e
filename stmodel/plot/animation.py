"""A forecast field through its lead times, as an animated GIF or a folder of PNG frames.

Frames are drawn into one figure with a colour scale fixed across all leads,
so colours mean the same in every frame. GIFs are written by matplotlib's
Pillow writer (Pillow is a matplotlib dependency): nothing else to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cartopy.crs as ccrs
import xarray as xr
from matplotlib.animation import PillowWriter
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from stmodel.atomic_files import atomic_path
from stmodel.data.readers import describe_source
from stmodel.errors import UserError
from stmodel.plot import labels
from stmodel.plot.colours import field_scale
from stmodel.plot.fields import LEAD_DIM, Extent, lead_hours_of, select_field
from stmodel.plot.maps import (
    MapKind,
    add_colour_bar,
    decorate,
    default_title,
    draw_field,
    figure_size,
    frame_field,
    make_projection,
    new_map_axes,
)
from stmodel.plot.saving import save_figure

DEFAULT_FPS = 2.0
DEFAULT_DPI = 100


def animate_leads(
    forecast: xr.Dataset | xr.DataArray,
    path: str | Path,
    variable: str | None = None,
    *,
    level: float | None = None,
    time=None,
    leads: Sequence[float] | None = None,
    projection: str | ccrs.Projection | None = None,
    extent: Extent | None = None,
    kind: MapKind = "pcolormesh",
    cmap: str | None = None,
    fps: float = DEFAULT_FPS,
    dpi: int = DEFAULT_DPI,
    coastlines: bool = True,
    borders: bool = True,
    progress: bool = True,
) -> Path:
    """Animate one forecast (one init ``time``) over its leads (hours; default all).

    ``path`` ending in ``.gif`` writes an animated GIF; any other path is a
    folder that receives ``lead_000.png``, ``lead_001.png``, ... Returns the path.
    """
    path = Path(path)
    if isinstance(forecast, xr.Dataset) and variable is None and len(forecast.data_vars) == 1:
        variable = next(iter(forecast.data_vars))
    if LEAD_DIM not in forecast.dims:
        raise UserError(
            f"{describe_source(forecast)}: no {LEAD_DIM} dimension to animate over; "
            "expected a forecast in WeatherBench 2 layout"
        )
    available = lead_hours_of(forecast[LEAD_DIM].values)
    leads = list(available) if leads is None else [float(lead) for lead in leads]
    frames = [select_field(forecast, variable, level=level, time=time, lead=lead) for lead in leads]
    framed = [frame_field(frame, extent) for frame in frames]
    shown_extent = framed[0][1]
    frames = [frame for frame, _ in framed]
    # One scale for all leads, so that a colour means one value throughout.
    scale = field_scale([frame.values for frame in frames], str(frames[0].name), cmap=cmap)

    figure = Figure(figsize=figure_size(shown_extent), layout="constrained")
    axes = new_map_axes(
        figure, (1, 1, 1), make_projection(projection, extent=shown_extent), shown_extent
    )
    decorate(axes, shown_extent, coastlines=coastlines, borders=borders)
    add_colour_bar(
        figure,
        ScalarMappable(norm=scale.norm, cmap=scale.cmap),
        axes,
        scale,
        labels.field_label(frames[0]),
    )
    # The title lives on the figure: a constrained layout keeps room for it in
    # every frame, and GIF frames cannot be cropped to fit.
    title = figure.suptitle("", fontsize=10)
    drawn = {"mesh": None}

    def draw(frame: xr.DataArray) -> None:
        if drawn["mesh"] is not None:
            drawn["mesh"].remove()
        drawn["mesh"] = draw_field(axes, frame, scale, kind=kind)
        title.set_text(default_title(frame))

    bar = tqdm(frames, desc=f"animating {path.name}", unit="frame", disable=not progress)
    if path.suffix.lower() == ".gif":
        with atomic_path(path) as temporary:
            writer = PillowWriter(fps=fps)
            with writer.saving(figure, str(temporary), dpi):
                for index, frame in enumerate(bar):
                    draw(frame)
                    if index == 0:
                        # Freeze the layout found for the first frame: frames must not jiggle.
                        figure.set_layout_engine("none")
                    writer.grab_frame()
        return path
    path.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(bar):
        draw(frame)
        save_figure(figure, path / f"lead_{index:03d}.png", dpi=dpi)
    return path


def lead_frame_paths(folder: str | Path) -> list[Path]:
    """The PNG frames :func:`animate_leads` wrote into a folder, in lead order."""
    return sorted(Path(folder).glob("lead_[0-9][0-9][0-9].png"))


def gif_frame_count(path: str | Path) -> int:
    """Number of frames in a GIF (for checks)."""
    from PIL import Image

    with Image.open(path) as image:
        return int(getattr(image, "n_frames", 1))
