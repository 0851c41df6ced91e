"""`stmodel data ...`: generate, check, convert and summarise gridded data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import xarray as xr

from stmodel.atomic_files import check_not_an_input
from stmodel.commands import data_generate
from stmodel.commands.arguments import add_quiet_flag, positive_int
from stmodel.data import canonical, cf_coordinates, validation
from stmodel.data.pipeline import SplitPeriod, split_periods
from stmodel.data.readers import open_canonical, source_files
from stmodel.data.statistics import (
    CLIMATOLOGY_FILE,
    STATS_FILE,
    StatisticsRequest,
    compute_or_reuse,
    write_netcdf,
)
from stmodel.errors import DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="generate, check, convert and compute statistics of gridded data",
        description="Prepare gridded data for stmodel. Every command reads NetCDF or Zarr in "
        "ERA5 (CDS), WeatherBench 2 or GraphCast style, one or many files.",
    )
    commands = parser.add_subparsers(title="data commands", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check",
        help="print what stmodel finds in files, and any problems",
        description="Print the variables, levels, grid and time span stmodel reads from the "
        "files, and every problem found (exit code 2 if any).",
    )
    check.add_argument(
        "paths", nargs="+", metavar="PATH", help="NetCDF files, Zarr stores or globs"
    )
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_quiet_flag(check)
    check.set_defaults(func=run_check)

    convert = commands.add_parser(
        "convert",
        help="write files in stmodel's canonical form as one NetCDF",
        description="Rename, reorder and merge the inputs into canonical form (dims time, "
        "level, lat, lon; lat ascending; lon 0..360; float32; long names) and write NetCDF. "
        "Values are unchanged apart from dtype.",
    )
    convert.add_argument("paths", nargs="+", metavar="PATH")
    convert.add_argument("--out", required=True, type=Path, help="output NetCDF file")
    add_quiet_flag(convert)
    convert.set_defaults(func=run_convert)

    stats = commands.add_parser(
        "stats",
        help="normalisation statistics and climatology of a training period",
        description="Per-variable, per-level mean and std, std of differences over the model "
        "time step, and a climatology, from the training period only, computed out of core. "
        "Writes stats.nc and climatology.nc into --out; reuses them when present and consistent.",
    )
    stats.add_argument("paths", nargs="+", metavar="PATH")
    stats.add_argument("--out", required=True, type=Path, help="output directory")
    stats.add_argument(
        "--train-period",
        metavar="START/END",
        help="e.g. 1979-01-01/2015-12-31 (inclusive); default: the data's "
        "train_period attribute, else all times",
    )
    stats.add_argument(
        "--dt-hours", type=positive_int, default=6, help="model time step (default 6)"
    )
    add_quiet_flag(stats)
    stats.set_defaults(func=run_stats)

    data_generate.register(commands)


def summarise(ds: xr.Dataset) -> dict:
    summary: dict = {"files": source_files(ds), "variables": {}}
    for name, var in ds.data_vars.items():
        summary["variables"][name] = {"dims": list(var.dims), "units": var.attrs.get("units", "")}
    if "level" in ds.dims:
        summary["levels_hpa"] = [int(x) for x in ds["level"].values]
    lat, lon = ds["lat"].values, ds["lon"].values
    summary["grid"] = {
        "lat": [float(lat[0]), float(lat[-1]), len(lat)],
        "lon": [float(lon[0]), float(lon[-1]), len(lon)],
        "spacing_deg": [
            float(np.diff(lat).mean()) if len(lat) > 1 else None,
            float(np.diff(lon).mean()) if len(lon) > 1 else None,
        ],
    }
    if "time" in ds.dims and ds.sizes["time"] > 0:
        times = ds["time"].values
        step = np.median(np.diff(times)) / np.timedelta64(1, "h") if len(times) > 1 else None
        summary["time"] = {
            "start": np.datetime_as_string(times[0], "m"),
            "end": np.datetime_as_string(times[-1], "m"),
            "count": len(times),
            "step_hours": step,
        }
    return summary


def find_problems(ds: xr.Dataset) -> list[str]:
    problems = []
    for check in (
        validation.check_grid,
        validation.check_times,
        validation.check_units,
        validation.require_finite,
    ):
        try:
            check(ds)
        except DataError as error:
            problems.append(str(error))
    return problems


def run_check(args) -> int:
    ds = open_canonical(args.paths)
    summary = summarise(ds)
    summary["problems"] = find_problems(ds)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_format_summary(summary))
    return 2 if summary["problems"] else 0


def _format_summary(summary: dict) -> str:
    lines = [f"files: {', '.join(summary['files'])}", "variables:"]
    for name, info in summary["variables"].items():
        lines.append(f"  {name:40s} ({', '.join(info['dims'])}) [{info['units']}]")
    if "levels_hpa" in summary:
        lines.append(f"levels (hPa): {summary['levels_hpa']}")
    grid = summary["grid"]
    lines.append(
        f"grid: {grid['lat'][2]} lat x {grid['lon'][2]} lon; lat {grid['lat'][0]:g} "
        f"to {grid['lat'][1]:g}, lon {grid['lon'][0]:g} to {grid['lon'][1]:g}; "
        f"spacing {grid['spacing_deg'][0]} x {grid['spacing_deg'][1]} deg"
    )
    if "time" in summary:
        t = summary["time"]
        lines.append(
            f"time: {t['start']} to {t['end']}, {t['count']} steps every {t['step_hours']} h"
        )
    if summary["problems"]:
        lines.append("problems:")
        lines.extend(f"  - {p}" for p in summary["problems"])
    else:
        lines.append("problems: none")
    return "\n".join(lines)


def to_canonical_file(ds: xr.Dataset) -> xr.Dataset:
    """Attach canonical metadata only, so equal numbers give identical files."""
    out = ds.copy()
    for name in out.variables:
        if name in ("lat", "lon", "level", "time"):
            attrs = {
                k: v
                for k, v in out[name].attrs.items()
                if k in ("units", "standard_name", "axis", "long_name")
            }
        else:
            attrs = {
                "units": canonical.UNITS.get(name, out[name].attrs.get("units", "")),
                "long_name": name.replace("_", " "),
            }
        out[name].attrs = attrs
        out[name].encoding = {}
    if "level" in out.coords:
        out["level"].attrs.update(cf_coordinates.LEVEL_ATTRIBUTES)
    out.attrs = {
        "Conventions": "CF-1.8",
        "source": "stmodel data convert (canonical form, see stmodel/data/canonical.py)",
        "stmodel_converted_from": json.dumps([str(Path(p).resolve()) for p in source_files(ds)]),
    }
    return out


def run_convert(args) -> int:
    check_not_an_input(args.out, args.paths)
    ds = open_canonical(args.paths)
    validation.validate(ds)
    write_netcdf(to_canonical_file(ds), args.out)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB): {', '.join(ds.data_vars)}"
    )
    return 0


def run_stats(args) -> int:
    for written in (args.out, args.out / STATS_FILE, args.out / CLIMATOLOGY_FILE):
        check_not_an_input(written, args.paths)
    ds = open_canonical(args.paths)
    validation.validate(ds)
    if "time" not in ds.dims:
        raise DataError(
            f"{', '.join(source_files(ds))}: no time dimension; statistics need a time series"
        )
    if args.train_period:
        period = SplitPeriod.parse(args.train_period)
    elif "train" in split_periods(ds):
        period = split_periods(ds)["train"]
    else:
        times = ds["time"].values
        period = SplitPeriod(str(times[0]), str(times[-1]))
    request = StatisticsRequest(start=period.start, end=period.end, dt_hours=args.dt_hours)
    stats_path, clim_path, reused = compute_or_reuse(ds, request, args.out, progress=not args.quiet)
    with xr.open_dataset(clim_path) as clim:
        kind = clim.attrs["climatology_kind"]
    verb = "reused" if reused else "wrote"
    print(
        f"{verb} {stats_path} and {clim_path} (training period {period.start}/{period.end}, "
        f"dt {args.dt_hours} h, climatology by {kind.replace('_', ' and ')})"
    )
    return 0
