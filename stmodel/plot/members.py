"""The members of an ensemble forecast, as the ensemble plots take them.

An ensemble forecast is in the WeatherBench 2 layout with a ``realization`` dim
(members 0..N-1), as ``stmodel forecast --members N`` writes it. These helpers
select from it what :func:`stmodel.plot.fields.select_field` selects from one
field, keeping the members, and refuse data without members with a message
that names the variable.
"""

from __future__ import annotations

import xarray as xr

from stmodel.data.readers import describe_source
from stmodel.errors import UserError
from stmodel.evaluation.metric_base import REALIZATION_DIM
from stmodel.plot.fields import LEAD_DIM, LeadChoice, TimeChoice, select_field, select_lazily


def require_members(field: xr.DataArray, source: str) -> xr.DataArray:
    """``field`` unchanged when it has a ``realization`` dim, else a UserError."""
    if REALIZATION_DIM not in field.dims:
        raise UserError(
            f"{source}: variable {field.name!r} has no {REALIZATION_DIM} dim (dims "
            f"{list(field.dims)}); expected an ensemble forecast with its members along "
            f"{REALIZATION_DIM!r}, as `stmodel forecast --members N` writes it"
        )
    return field


def member_fields(
    data: xr.Dataset | xr.DataArray,
    variable: str | None = None,
    *,
    level: float | None = None,
    time: TimeChoice | None = None,
    lead: LeadChoice | None = None,
) -> xr.DataArray:
    """Every member's (lat, lon) field, loaded: dims (realization, lat, lon), with the
    selected time, level and lead as scalar coordinates (as select_field keeps them)."""
    field = select_field(data, variable, level=level, time=time, lead=lead, keep=(REALIZATION_DIM,))
    return require_members(field, describe_source(data))


def lazy_members(
    data: xr.Dataset | xr.DataArray,
    variable: str | None = None,
    *,
    level: float | None = None,
    time: TimeChoice | None = None,
) -> xr.DataArray:
    """Every member at every lead, not loaded: dims (realization, prediction_timedelta,
    lat, lon) in the file's order of lat and lon, for taking a point out of it."""
    field = select_lazily(data, variable, level=level, time=time, keep=(REALIZATION_DIM, LEAD_DIM))
    source = describe_source(data)
    require_members(field, source)
    if LEAD_DIM not in field.dims:
        raise UserError(
            f"{source}: variable {field.name!r} has no {LEAD_DIM} dim (dims "
            f"{list(field.dims)}); expected a forecast in the WeatherBench 2 layout"
        )
    return field
