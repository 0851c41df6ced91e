"""`stmodel evaluate`: skill scores of a forecast beside persistence and climatology
(and beside an ensemble, the probabilistic climatology)."""

from __future__ import annotations

import argparse
from pathlib import Path

from stmodel.atomic_files import check_not_an_input
from stmodel.commands.arguments import add_quiet_flag
from stmodel.evaluation import scorecard
from stmodel.evaluation.evaluate import evaluate_forecast
from stmodel.evaluation.metric_registry import PROBABILISTIC, REGISTRY
from stmodel.evaluation.probabilistic_climatology import (
    DAY_WINDOW,
    DEFAULT_SEED,
    ProbabilisticClimatologyRequest,
)
from stmodel.plot.skill_plots import write_skill_plots


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a forecast file (RMSE, ACC, bias; CRPS, spread for ensembles) beside "
        "persistence and climatology",
        description="Score a forecast in the WeatherBench 2 layout (dims time = init time, "
        "prediction_timedelta, [realization,] level, latitude, longitude) against truth: "
        "latitude-weighted RMSE (square root after the mean over init times), ACC against the "
        "climatology and bias, for every variable, level and lead, with persistence and "
        "climatology baselines on the same init times. An ensemble forecast (members along "
        "'realization') is also scored with the fair and ECDF CRPS, ensemble-mean RMSE, "
        "spread, the unbiased spread-skill ratio and rank histograms (rank_histogram.nc); its "
        "RMSE, ACC and bias are those of the ensemble mean, and it is scored beside a "
        "probabilistic climatology too: members drawn from the truth of the training period "
        f"at the valid time's hour of day (within +-{DAY_WINDOW} days of its day of the year "
        "where the data have seasons; WeatherBench 2's). Writes scorecard.csv and "
        "scorecard.json (long format: variable, level, lead_hours, metric, forecast, value) "
        "and skill plots (PNG) into --out.",
    )
    parser.add_argument(
        "--forecast",
        required=True,
        type=Path,
        metavar="FILE",
        help="forecast NetCDF/Zarr in the WeatherBench 2 forecast layout",
    )
    parser.add_argument(
        "--truth",
        required=True,
        nargs="+",
        metavar="PATH",
        help="truth data files, in any form `stmodel` reads",
    )
    parser.add_argument(
        "--climatology",
        type=Path,
        metavar="FILE",
        help="climatology from `stmodel data stats`; without it, the mean per "
        "hour of day of the truth before the first init time is used",
    )
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="folder for the scorecard and plots"
    )
    parser.add_argument(
        "--name",
        metavar="MODEL_NAME",
        help="the model's name in the scorecard (default: the forecast file's "
        "'model_name' attribute, else its file name)",
    )
    parser.add_argument(
        "--variables",
        nargs="+",
        metavar="VARIABLE",
        help="score only these variables (default: all the forecast has)",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        choices=list(REGISTRY),
        help="score only these metrics (default: rmse acc bias, and for an ensemble "
        f"forecast also {' '.join(PROBABILISTIC)}); known: {' '.join(REGISTRY)}",
    )
    parser.add_argument(
        "--climatology-members",
        type=int,
        metavar="N",
        help="members of the probabilistic climatology (default: the forecast's ensemble "
        "size, none for a deterministic forecast; 0: none), drawn from the truth of its "
        "train_period attribute, else from the truth before the first init time",
    )
    parser.add_argument(
        "--climatology-seed",
        type=int,
        default=DEFAULT_SEED,
        metavar="SEED",
        help=f"seed of the probabilistic climatology's draw (default {DEFAULT_SEED})",
    )
    add_quiet_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inputs = [args.forecast, *args.truth, *([args.climatology] if args.climatology else [])]
    check_not_an_input(args.out, inputs)
    evaluation = evaluate_forecast(
        forecast_path=args.forecast,
        truth_paths=args.truth,
        out_dir=args.out,
        climatology_path=args.climatology,
        model_name=args.name,
        variables=args.variables,
        show_progress=not args.quiet,
        metrics=args.metrics,
        probabilistic_climatology=ProbabilisticClimatologyRequest(
            members=args.climatology_members, seed=args.climatology_seed
        ),
    )
    for note in evaluation.notes:
        print(f"note: {note}")
    print(scorecard.format_table(evaluation.rows, evaluation.model_name))
    print()
    print(f"scorecard: {evaluation.csv_path}")
    print(f"           {evaluation.json_path}")
    if evaluation.rank_histogram_path is not None:
        print(f"ranks:     {evaluation.rank_histogram_path}")
    for path in write_skill_plots(evaluation.rows, evaluation.csv_path.parent):
        print(f"plot:      {path}")
    return 0
