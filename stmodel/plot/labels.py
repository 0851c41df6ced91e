"""Names and units as a meteorologist reads them: "Z500 (m² s⁻²)", "T2M (K)"."""

from __future__ import annotations

import re

import numpy as np
import xarray as xr

from stmodel.data import canonical

# Canonical long name -> the short symbol used in scorecards and map titles.
# Upper-air symbols get the level appended (Z500); surface symbols stand alone.
UPPER_AIR_SYMBOLS = {
    "geopotential": "Z",
    "temperature": "T",
    "u_component_of_wind": "U",
    "v_component_of_wind": "V",
    "specific_humidity": "Q",
    "vertical_velocity": "W",
    "relative_humidity": "R",
    "wind_speed": "WS",
}
SURFACE_SYMBOLS = {
    "2m_temperature": "T2M",
    "10m_u_component_of_wind": "U10",
    "10m_v_component_of_wind": "V10",
    "10m_wind_speed": "WS10",
    "mean_sea_level_pressure": "MSLP",
    "surface_pressure": "SP",
    "total_precipitation": "TP",
    "land_sea_mask": "LSM",
    "soil_type": "SLT",
    "geopotential_at_surface": "ZS",
    "lowest_model_level_temperature": "T (lowest level)",
    "lowest_model_level_u_component_of_wind": "U (lowest level)",
    "lowest_model_level_v_component_of_wind": "V (lowest level)",
}

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_UNIT_POWER = re.compile(r"([A-Za-z%]+)\^?(-?\d+)")


def pretty_units(units: str | None) -> str:
    """CF unit strings with superscript powers: "m2 s-2" -> "m² s⁻²", "m s**-1" -> "m s⁻¹"."""
    if not units:
        return ""
    units = units.replace("**", "^")
    return _UNIT_POWER.sub(
        lambda match: match.group(1) + match.group(2).translate(_SUPERSCRIPT), units
    )


def field_symbol(name: str | None, level: int | float | None = None) -> str:
    """Short symbol of a field: geopotential at 500 hPa -> "Z500"; 2m_temperature -> "T2M".

    Names stmodel does not know are kept, with the level appended in hPa.
    """
    name = name or "field"
    if name in UPPER_AIR_SYMBOLS and level is not None:
        return f"{UPPER_AIR_SYMBOLS[name]}{_level_text(level)}"
    if name in SURFACE_SYMBOLS:
        return SURFACE_SYMBOLS[name]
    if name in UPPER_AIR_SYMBOLS:
        return UPPER_AIR_SYMBOLS[name]
    return name if level is None else f"{name} {_level_text(level)} hPa"


def _level_text(level: int | float) -> str:
    return f"{int(level)}" if float(level).is_integer() else f"{float(level):g}"


def units_of(field: xr.DataArray) -> str:
    """The field's `units` attribute, else the canonical units of its name, else ""."""
    return field.attrs.get("units") or canonical.UNITS.get(str(field.name), "")


def level_of(field: xr.DataArray) -> int | float | None:
    """The pressure level (hPa) of a 2-D field selected from 3-D data, if any."""
    if "level" in field.coords and field["level"].ndim == 0:
        return field["level"].item()
    return None


def field_label(field: xr.DataArray, *, units: str | None = None) -> str:
    """Colour-bar label: symbol and pretty units, e.g. "Z500 (m² s⁻²)"."""
    units = pretty_units(units_of(field) if units is None else units)
    symbol = field_symbol(str(field.name) if field.name is not None else None, level_of(field))
    return f"{symbol} ({units})" if units else symbol


def long_description(field: xr.DataArray) -> str:
    """Words for a title: "geopotential at 500 hPa", from `long_name` or the name."""
    name = field.attrs.get("long_name") or str(field.name or "field")
    name = name.replace("_", " ")
    level = level_of(field)
    return name if level is None else f"{name} at {_level_text(level)} hPa"


def format_time(value) -> str:
    """A datetime64 as "2019-03-05 12:00 UTC"."""
    return np.datetime_as_string(np.datetime64(value, "m"), unit="m").replace("T", " ") + " UTC"


def format_lead(hours: float) -> str:
    """A lead time as "+72 h (3 d)", days shown when whole."""
    text = f"+{hours:g} h"
    if hours and hours % 24 == 0:
        text += f" ({hours / 24:g} d)"
    return text
