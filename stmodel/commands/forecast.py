"""`stmodel forecast`: autoregressive forecasts written in the WeatherBench 2 layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from stmodel.commands.arguments import add_quiet_flag, non_negative_int, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "forecast",
        help="run forecasts from trained checkpoints",
        description="Roll a trained model forward from initial times in the data and write a "
        "NetCDF file or a Zarr store (by the --out suffix) in the WeatherBench 2 forecast layout "
        "(time = init time, prediction_timedelta, "
        "level, latitude, longitude), lead by lead: memory holds one batch of states however many "
        "initial times and leads. With checkpoints of several time steps (e.g. 24 h and "
        "6 h) each lead is reached with the fewest steps (hierarchical temporal aggregation).",
    )
    parser.add_argument(
        "--checkpoint",
        nargs="+",
        default=None,
        metavar="DIR_OR_NAME",
        help="training workdirs, or names of shipped models (`stmodel models`); "
        "default: the shipped 24 h + 6 h pair, combined hierarchically (with --members N "
        "> 1 and neither --perturb nor --lagged: the stochastic pair stmodel-small-24h-ens "
        "+ stmodel-small-6h-ens)",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="PATH",
        help="data holding the initial states (any style the readers accept)",
    )
    parser.add_argument(
        "--init",
        nargs="+",
        required=True,
        metavar="TIME",
        help="initial times, or ranges START/END/EVERY, e.g. 2001-05-01/2001-06-30/72h",
    )
    parser.add_argument(
        "--lead", default="10d", help="longest lead, e.g. 10d or 120h (default 10d)"
    )
    parser.add_argument(
        "--output-every",
        default=None,
        help="lead spacing of the output (default: the shortest model step)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output: a NetCDF file (.nc) or a Zarr store (.zarr, a folder)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=16,
        help="states per batch (default 16): initial times x members, init-major, so a batch "
        "may hold some members of an initial time and the next batch the rest",
    )
    ensemble = parser.add_argument_group(
        "ensembles",
        "Members go into the output's `realization` dim (WeatherBench 2's name), 0..N-1. "
        "Every random number is a function of (--seed, init time, member, model step) only: "
        "the same seed gives the same forecast bit for bit whatever --batch.",
    )
    ensemble.add_argument(
        "--members",
        type=positive_int,
        default=1,
        metavar="N",
        help="ensemble members per initial time (default 1), each its own network pass per "
        "step; a stochastic model draws new noise for every member and step, a deterministic "
        "one needs --perturb (else all members are the same forecast)",
    )
    ensemble.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the members' noise (default 0)"
    )
    ensemble.add_argument(
        "--perturb",
        nargs="?",
        const="default",
        default=None,
        metavar="AMPLITUDE",
        help="perturbed initial conditions: every member's initial state plus Gaussian noise "
        "of AMPLITUDE x the shortest-step model's per-channel diff_std (the std of one step's "
        "change), smoothed by a Gaussian of 3 grid points std over latitude and longitude "
        "(periodic) and rescaled to unit variance, so it is weather-scale, not grid noise; "
        "AMPLITUDE defaults to 0.5: half a step's typical change, of the order of analysis "
        "error, spreading members within a day without leaving the training distribution",
    )
    ensemble.add_argument(
        "--lagged",
        type=positive_int,
        default=None,
        metavar="N",
        help="lagged ensemble of a deterministic model: member k is the forecast from "
        "init - k x --lag-every, verified at the same valid times (prediction_timedelta from "
        "the nominal init; the longer leads the earlier starts need are forecast); the data "
        "must hold the earlier initial times",
    )
    ensemble.add_argument(
        "--lag-every",
        default=None,
        metavar="LAG",
        help="spacing of the lagged members' initial times, e.g. 6h (default: the data's "
        "time step)",
    )
    add_quiet_flag(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from stmodel.atomic_files import check_output_file
    from stmodel.checkpoints.global_model import CheckpointModel
    from stmodel.data.readers import open_canonical
    from stmodel.data.validation import validate
    from stmodel.errors import UserError
    from stmodel.forecasting.forecast import (
        check_compatible,
        ensemble_attrs,
        forecast_attrs,
        parse_init_times,
        parse_lead,
        run_forecast,
    )
    from stmodel.forecasting.forecast_file import forecast_format
    from stmodel.models import default_models, resolve_checkpoint

    checkpoints = args.checkpoint or default_models(
        args.members, args.perturb is not None, args.lagged
    )
    inputs = [*args.data, *checkpoints]
    if args.out.suffix.lower() == ".zarr":
        _check_output_store(args.out, inputs)
    else:
        if not args.out.is_dir():  # a folder is refused as such by check_output_file
            forecast_format(args.out)
        check_output_file(args.out, inputs)
    max_lead = parse_lead(args.lead)
    if args.batch < 1:
        raise UserError(f"--batch {args.batch}: expected a positive number of initial times")
    models = [CheckpointModel.load(path) for path in checkpoints]
    check_compatible(models, checkpoints)
    for source, model in zip(checkpoints, models):
        print(f"model {source}: step {model.step}, {model.dt_hours} h step", flush=True)
    ds = open_canonical(args.data)
    validate(ds)
    every = (
        parse_lead(args.output_every, "--output-every")
        if args.output_every
        else min(m.dt_hours for m in models)
    )
    if max_lead % every or every % min(m.dt_hours for m in models):
        raise UserError(
            f"--lead {args.lead} and --output-every {every} h must be multiples of "
            f"the shortest model step ({min(m.dt_hours for m in models)} h)"
        )
    leads = list(range(every, max_lead + 1, every))
    init_times = parse_init_times(args.init, ds)
    ensemble, lagged = _ensemble_options(args, ds)
    attrs = forecast_attrs(
        [str(resolve_checkpoint(c).resolve()) for c in checkpoints], args.data, models
    )
    attrs |= ensemble_attrs(ensemble, lagged, models)
    path = run_forecast(
        models,
        ds,
        init_times,
        leads,
        args.out,
        batch_size=args.batch,
        attrs=attrs,
        progress=not args.quiet,
        ensemble=ensemble,
        lagged=lagged,
    )
    members = lagged[0] if lagged else args.members
    print(
        f"wrote {path}: {len(init_times)} initial times x "
        + (f"{members} members x " if members > 1 else "")
        + f"{len(leads)} leads ({leads[0]} h to {leads[-1]} h)"
    )
    return 0


def _ensemble_options(args, ds):
    """(Ensemble, lagged (members, lag hours) or None) from the ensemble options."""
    import numpy as np

    from stmodel.errors import UserError
    from stmodel.forecasting.ensemble import DEFAULT_PERTURBATION, Ensemble
    from stmodel.forecasting.forecast import data_time_step, parse_lead

    perturb = 0.0
    if args.perturb is not None:
        try:
            perturb = DEFAULT_PERTURBATION if args.perturb == "default" else float(args.perturb)
        except ValueError:
            perturb = float("nan")
        if not (np.isfinite(perturb) and perturb > 0):
            raise UserError(
                f"--perturb {args.perturb}: expected a positive amplitude in units of the "
                f"model's diff_std, e.g. {DEFAULT_PERTURBATION}"
            )
    ensemble = Ensemble(members=args.members, seed=args.seed, perturb=perturb)
    if args.lagged is None:
        if args.lag_every is not None:
            raise UserError("--lag-every: only with --lagged N")
        return ensemble, None
    lag = parse_lead(args.lag_every, "--lag-every") if args.lag_every else data_time_step(ds)
    return ensemble, (args.lagged, lag)


def _check_output_store(out: Path, inputs: list) -> None:
    """Refuse at the start a Zarr output that holds an input, stands where a file or a folder
    other than a Zarr store is, or cannot be written."""
    from stmodel.atomic_files import check_not_an_input, check_replaceable_folder, make_folder
    from stmodel.forecasting.forecast_file import is_zarr_store

    check_not_an_input(out, inputs, replaces_folder=True)
    check_replaceable_folder(out, is_zarr_store, "a Zarr store")
    make_folder(out.parent)
