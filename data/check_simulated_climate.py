"""Prints sanity figures of a simulated reanalysis file as JSON.

    python data/check_simulated_climate.py /tmp/stmodel-default.nc [--period test]

* jet: the time- and zonal-mean u at 250 hPa, its maximum in each hemisphere
  and the latitude of that maximum (Held-Suarez: ~30 m/s near 45 deg);
* persistence: RMSE of holding Z500 (m2/s2) and T850 (K) constant, at leads
  of 1, 3 and 5 days. WeatherBench 2 convention: squared error weighted by
  cell area (stmodel.evaluation.area_weights, mean 1), averaged over the grid and over all
  initial times, square root last. Every 6-hourly time with a verifying time
  in the period is an initial time;
* surface_pressure: global-mean surface pressure at the first and last time
  (the dry model conserves mass; a drift would show here).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import xarray as xr

from stmodel.evaluation.area_weights import area_weighted_rmse, area_weights

LEAD_DAYS = (1, 3, 5)


def latitude_weights(latitudes: np.ndarray) -> np.ndarray:
    """[lat] cell-area weights, mean 1."""
    return area_weights(xr.DataArray(latitudes, dims="lat", coords={"lat": latitudes})).values


def persistence_rmse(field: np.ndarray, latitudes: np.ndarray, lead_steps: int) -> float:
    """field: [time, lat, lon]; RMSE of field(t) as a forecast of field(t + lead)."""
    error = field[lead_steps:] - field[:-lead_steps]  # [init, lat, lon]
    return area_weighted_rmse(error, latitude_weights(latitudes))


def jet(u250_zonal_time_mean: np.ndarray, latitudes: np.ndarray) -> dict:
    figures = {}
    for hemisphere, mask in (("north", latitudes > 0), ("south", latitudes < 0)):
        index = int(np.argmax(np.where(mask, u250_zonal_time_mean, -np.inf)))
        figures[hemisphere] = {
            "max_m_s": round(float(u250_zonal_time_mean[index]), 2),
            "latitude": float(latitudes[index]),
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="NetCDF file written by `stmodel data generate`")
    parser.add_argument(
        "--period",
        choices=("all", "train", "validation", "test"),
        default="all",
        help="restrict to the period named in the file's attributes (default: the whole file)",
    )
    args = parser.parse_args(argv)

    dataset = xr.open_dataset(args.path)
    if args.period != "all":
        first, last = dataset.attrs[f"{args.period}_period"].split("/")
        dataset = dataset.sel(time=slice(first, f"{last}T23:59"))
    times = dataset["time"].values
    step_hours = float((times[1] - times[0]) / np.timedelta64(1, "h"))
    latitudes = dataset["lat"].values

    u250 = dataset["u_component_of_wind"].sel(level=250).mean(["time", "lon"]).values
    z500 = dataset["geopotential"].sel(level=500).values  # [time, lat, lon]
    t850 = dataset["temperature"].sel(level=850).values
    persistence = {}
    for lead in LEAD_DAYS:
        steps = int(round(24 * lead / step_hours))
        if steps < len(times):
            persistence[f"{lead}d"] = {
                "z500_m2_s2": round(persistence_rmse(z500, latitudes, steps), 1),
                "t850_k": round(persistence_rmse(t850, latitudes, steps), 3),
            }
    weights = latitude_weights(latitudes)[:, None]
    surface_pressure = dataset["surface_pressure"]
    global_mean = lambda index: float((surface_pressure.isel(time=index).values * weights).mean())
    figures = {
        "path": args.path,
        "period": args.period,
        "times": {"first": str(times[0])[:16], "last": str(times[-1])[:16], "count": len(times)},
        "jet_u250_zonal_mean": jet(u250, latitudes),
        "persistence_rmse": persistence,
        "surface_pressure_global_mean_pa": {
            "first": round(global_mean(0), 1),
            "last": round(global_mean(-1), 1),
        },
    }
    json.dump(figures, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
