"""The canonical form of gridded data inside stmodel: the one place it is defined.

Every reader brings its input to this form, and everything downstream
(statistics, the sample pipeline, forecasts, evaluation) may rely on it:

* dimensions ``time``, ``level``, ``lat``, ``lon`` in that order (a variable
  has the subset it needs: surface fields are (time, lat, lon), constant fields
  (lat, lon));
* ``level`` in hPa (int), any order the data has is sorted ascending;
* ``lat`` in degrees north, strictly ascending;
* ``lon`` in degrees east, strictly ascending, in [0, 360) -- except a regional
  box that crosses 0 deg, which keeps contiguous longitudes in [-180, 180)
  (e.g. -10 .. 2 for the British Isles);
* ``time`` as numpy datetime64[ns], strictly ascending, no duplicates;
* data variables float32, named by the WeatherBench 2 / GraphCast long names
  below; names stmodel does not know are passed through unchanged.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

DIMS = ("time", "level", "lat", "lon")

# Other tools' names for the dims (ERA5 from the CDS, CMIP, GraphCast, forecasts
# of other models) -> the canonical names; forecasts keep time = init time.
DIM_ALIASES = {
    "valid_time": "time",
    "datetime": "time",
    "init_time": "time",
    "lead_time": "prediction_timedelta",
    "pressure_level": "level",
    "isobaricInhPa": "level",
    "plev": "level",
    "latitude": "lat",
    "longitude": "lon",
}
# The WeatherBench 2 names of the grid dims, which forecast files use.
FORECAST_GRID_DIMS = {"lat": "latitude", "lon": "longitude"}

# The 13 pressure levels of WeatherBench and Pangu-Weather, hPa.
WEATHERBENCH_LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)

# ERA5 / CDS short names -> canonical long names.
SHORT_NAMES = {
    "z": "geopotential",
    "t": "temperature",
    "u": "u_component_of_wind",
    "v": "v_component_of_wind",
    "q": "specific_humidity",
    "w": "vertical_velocity",
    "r": "relative_humidity",
    "sp": "surface_pressure",
    "msl": "mean_sea_level_pressure",
    "t2m": "2m_temperature",
    "u10": "10m_u_component_of_wind",
    "v10": "10m_v_component_of_wind",
    "tp": "total_precipitation",
    "lsm": "land_sea_mask",
    "slt": "soil_type",
    # CDS single-level geopotential is the surface geopotential (orography).
    "z_sfc": "geopotential_at_surface",
}

# Expected units of canonical variables (CF spelling).
UNITS = {
    "geopotential": "m2 s-2",
    "temperature": "K",
    "u_component_of_wind": "m s-1",
    "v_component_of_wind": "m s-1",
    "specific_humidity": "kg kg-1",
    "vertical_velocity": "Pa s-1",
    "relative_humidity": "%",
    "surface_pressure": "Pa",
    "mean_sea_level_pressure": "Pa",
    "2m_temperature": "K",
    "10m_u_component_of_wind": "m s-1",
    "10m_v_component_of_wind": "m s-1",
    "total_precipitation": "m",
    "land_sea_mask": "1",
    "soil_type": "1",
    "geopotential_at_surface": "m2 s-2",
    # Surface fields of the built-in simulated reanalysis (Held-Suarez has no
    # boundary layer scheme, so the lowest model level stands in for 2 m / 10 m).
    "lowest_model_level_temperature": "K",
    "lowest_model_level_u_component_of_wind": "m s-1",
    "lowest_model_level_v_component_of_wind": "m s-1",
}

# Fields that do not vary in time; attached to every sample as inputs only.
CONSTANT_VARIABLES = ("land_sea_mask", "soil_type", "geopotential_at_surface")

# Temperature-like variables: in K, and implausible below this value (°C given).
TEMPERATURE_VARIABLES = ("temperature", "2m_temperature", "lowest_model_level_temperature")
MIN_PLAUSIBLE_KELVIN = 150.0

# Geopotential at 1000..50 hPa is ~1e3..2e5 m2/s2; geopotential height is
# ~1e2..2e4 m. A median below this on levels at or above 500 hPa means height.
MIN_PLAUSIBLE_GEOPOTENTIAL_500HPA = 3.0e4
GRAVITY = 9.80665  # m s-2, to convert geopotential height to geopotential


def canonical_dim_renames(data: xr.Dataset | xr.DataArray) -> dict[str, str]:
    """Renames giving `data`'s dims and coordinates their canonical names (for `.rename`).

    An alias is renamed only where its canonical name is not there already, and
    dims come first: a forecast's ``init_time`` dim becomes ``time``, its
    ``valid_time`` coordinate stays as it is.
    """
    taken = set(data.dims) | set(data.coords)
    renames = {}
    for name in [*data.dims, *data.coords]:
        canonical_name = DIM_ALIASES.get(str(name))
        if canonical_name is not None and canonical_name not in taken and name not in renames:
            renames[name] = canonical_name
            taken.add(canonical_name)
    return renames


def wrap_longitude(longitude: np.ndarray, west: float = 0.0) -> np.ndarray:
    """Longitudes (degrees) brought into [west, west + 360), float64."""
    return (np.asarray(longitude, np.float64) - west) % 360.0 + west
