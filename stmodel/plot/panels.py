"""Truth, forecast and their difference side by side, on one scale for truth and forecast;
with the coarse input first for downscaling."""

from __future__ import annotations

import cartopy.crs as ccrs
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from stmodel.data.readers import describe_source
from stmodel.evaluation.area_weights import area_weighted_rmse, area_weights
from stmodel.plot import labels
from stmodel.plot.colours import error_scale, field_scale
from stmodel.plot.fields import LEAD_DIM, Extent, on_grid_of, select_field, valid_time_of
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


def select_truth_for(
    forecast_field: xr.DataArray,
    truth: xr.Dataset | xr.DataArray,
    variable: str | None,
    *,
    level: float | None,
    time=None,
) -> xr.DataArray:
    """The truth field valid when the forecast field is (its init time + lead), on its grid."""
    valid = valid_time_of(forecast_field)
    if isinstance(truth, xr.Dataset) and variable is None:
        variable = str(forecast_field.name)
    has_times = "time" in truth.dims and truth.sizes["time"] > 1
    truth_time = valid if (valid is not None and has_times) else (time if has_times else None)
    truth_field = select_field(
        truth,
        variable,
        level=level,
        time=truth_time,
        lead=None if LEAD_DIM not in truth.dims else 0,
    )
    return on_grid_of(truth_field, forecast_field, describe_source(truth), "truth")


def map_rmse(error: xr.DataArray) -> float:
    """RMSE over a [lat, lon] map with the scorecard's cell-area weights (NaN cells left out),
    so a map's title and `stmodel evaluate` agree."""
    ascending = error["lat"].sortby(error["lat"])
    weights = area_weights(ascending).sel(lat=error["lat"]).values  # [lat]
    lat_axis = error.dims.index("lat")
    return area_weighted_rmse(error.values, weights, lat_axis, skip_nan=True)


def plot_truth_forecast_error(
    truth: xr.Dataset | xr.DataArray,
    forecast: xr.Dataset | xr.DataArray,
    variable: str | None = None,
    *,
    level: float | None = None,
    time=None,
    lead=None,
    projection: str | ccrs.Projection | None = None,
    extent: Extent | None = None,
    kind: MapKind = "pcolormesh",
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    error_cmap: str | None = None,
    error_limit: float | None = None,
    coastlines: bool = True,
    borders: bool = True,
    gridlines: bool = True,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Three maps: truth, forecast (one colour scale) and forecast - truth (centred on zero).

    ``forecast`` may be a WeatherBench 2 forecast (time = init time, with
    ``prediction_timedelta``: pass ``time`` and ``lead``) or a plain field;
    ``truth`` is canonical data, taken at the forecast's valid time. The error
    panel's title gives its area-weighted RMSE over the cells drawn (the scorecard's weights).
    """
    forecast_field = select_field(forecast, variable, level=level, time=time, lead=lead)
    truth_field = select_truth_for(forecast_field, truth, variable, level=level, time=time)
    error = _error(forecast_field, truth_field)
    forecast_field, shown_extent = frame_field(forecast_field, extent)
    truth_field, _ = frame_field(truth_field, extent)
    error, _ = frame_field(error, extent)
    return _fields_then_error(
        [(truth_field, "Truth"), (forecast_field, "Forecast")],
        forecast_field,
        error,
        "Forecast − truth",
        [truth_field.values, forecast_field.values],
        shown_extent,
        projection=projection,
        kind=kind,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        error_cmap=error_cmap,
        error_limit=error_limit,
        coastlines=coastlines,
        borders=borders,
        gridlines=gridlines,
        figsize=figsize,
    )


def _error(field: xr.DataArray, truth_field: xr.DataArray) -> xr.DataArray:
    """field - truth, named and described as the field is."""
    error = (field - truth_field).rename(field.name)
    error.attrs = dict(field.attrs)
    return error


def _fields_then_error(
    fields: list[tuple[xr.DataArray, str]],
    reference: xr.DataArray,
    error: xr.DataArray,
    error_title: str,
    scale_values: list[np.ndarray],
    shown_extent: Extent,
    *,
    projection,
    kind: MapKind,
    cmap,
    vmin,
    vmax,
    error_cmap,
    error_limit,
    coastlines: bool,
    borders: bool,
    gridlines: bool,
    figsize,
) -> Figure:
    """One row of maps: (field, title) pairs on one colour scale spanning scale_values, then
    the error centred on zero with its RMSE. Labels and the title come from reference."""
    scale = field_scale(scale_values, str(reference.name), vmin=vmin, vmax=vmax, cmap=cmap)
    difference_scale = error_scale(
        [error.values],
        vmin=None if error_limit is None else -error_limit,
        vmax=error_limit,
        cmap=error_cmap,
    )
    columns = len(fields) + 1
    figure = Figure(
        figsize=figsize or figure_size(shown_extent, columns=columns), layout="constrained"
    )
    map_projection = make_projection(projection, extent=shown_extent)
    panels = [
        new_map_axes(figure, (1, columns, index + 1), map_projection, shown_extent)
        for index in range(columns)
    ]
    field_meshes = [
        draw_field(axes, field, scale, kind=kind) for axes, (field, _) in zip(panels, fields)
    ]
    error_mesh = draw_field(panels[-1], error, difference_scale, kind=kind)
    for axes in panels:
        decorate(axes, shown_extent, coastlines=coastlines, borders=borders, gridlines=gridlines)
    label = labels.field_label(reference)
    add_colour_bar(figure, field_meshes[0], panels[:-1], scale, label)
    add_colour_bar(figure, error_mesh, panels[-1], difference_scale, f"error: {label}")
    for axes, (_, title) in zip(panels, fields):
        axes.set_title(title, fontsize=10)
    panels[-1].set_title(f"{error_title} (RMSE {map_rmse(error):.4g})", fontsize=10)
    figure.suptitle(default_title(reference), fontsize=11)
    return figure


def _spacing_text(field: xr.DataArray) -> str:
    """The field's latitude spacing, e.g. "1°" or "0.25°"."""
    lat = field["lat"].values.astype(np.float64)
    return f"{float(np.median(np.abs(np.diff(lat)))):g}°" if lat.size > 1 else "one row"


def _inside(field: xr.DataArray, extent: Extent) -> np.ndarray:
    """Values of the cells centred inside the map; a coarse field cut to a map keeps a
    margin of cells beyond it, which must not stretch the colour scale."""
    lon_min, lon_max, lat_min, lat_max = extent
    inside = field.sel(lon=slice(lon_min, lon_max), lat=slice(lat_min, lat_max))
    return inside.values if inside.size else field.values


def select_input_for(
    fine_field: xr.DataArray,
    coarse: xr.Dataset | xr.DataArray,
    variable: str | None,
    *,
    level: float | None,
    time=None,
    lead=None,
) -> xr.DataArray:
    """The coarse field a downscaled field was made from: the same init time and lead for a
    forecast, else the field valid at the downscaled field's time."""
    if isinstance(coarse, xr.Dataset) and variable is None:
        variable = str(fine_field.name)
    if LEAD_DIM in coarse.dims:
        return select_field(coarse, variable, level=level, time=time, lead=lead)
    valid = valid_time_of(fine_field)
    has_times = "time" in coarse.dims and coarse.sizes["time"] > 1
    return select_field(
        coarse,
        variable,
        level=level,
        time=valid if (valid is not None and has_times) else (time if has_times else None),
    )


def plot_downscaling(
    coarse: xr.Dataset | xr.DataArray,
    downscaled: xr.Dataset | xr.DataArray,
    truth: xr.Dataset | xr.DataArray,
    variable: str | None = None,
    *,
    level: float | None = None,
    time=None,
    lead=None,
    projection: str | ccrs.Projection | None = None,
    extent: Extent | None = None,
    kind: MapKind = "pcolormesh",
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    error_cmap: str | None = None,
    error_limit: float | None = None,
    coastlines: bool = True,
    borders: bool = True,
    gridlines: bool = True,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Four maps: coarse input, downscaled field and fine truth on one colour scale, and
    downscaled - truth centred on zero.

    ``downscaled`` is what `stmodel downscale apply` wrote (an analysis, or a
    WeatherBench 2 forecast: pass ``time`` and ``lead``); ``coarse`` is its input,
    taken at the same time (and lead); ``truth`` is canonical fine data, taken at
    the valid time on the downscaled grid. The map shows the downscaled field's
    region unless ``extent`` is given.
    """
    fine_field = select_field(downscaled, variable, level=level, time=time, lead=lead)
    truth_field = select_truth_for(fine_field, truth, variable, level=level, time=time)
    coarse_field = select_input_for(fine_field, coarse, variable, level=level, time=time, lead=lead)
    error = _error(fine_field, truth_field)
    fine_field, shown_extent = frame_field(fine_field, extent)
    truth_field, _ = frame_field(truth_field, extent)
    error, _ = frame_field(error, extent)
    coarse_field, _ = frame_field(coarse_field, shown_extent)
    return _fields_then_error(
        [
            (coarse_field, f"Coarse input ({_spacing_text(coarse_field)})"),
            (fine_field, f"Downscaled ({_spacing_text(fine_field)})"),
            (truth_field, f"Truth ({_spacing_text(truth_field)})"),
        ],
        fine_field,
        error,
        "Downscaled − truth",
        [_inside(coarse_field, shown_extent), fine_field.values, truth_field.values],
        shown_extent,
        projection=projection,
        kind=kind,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        error_cmap=error_cmap,
        error_limit=error_limit,
        coastlines=coastlines,
        borders=borders,
        gridlines=gridlines,
        figsize=figsize,
    )
