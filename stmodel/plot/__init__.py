"""Maps and skill plots that draw offline.

Maps take xarray data in stmodel's canonical form (time, level, lat, lon) or in
the WeatherBench 2 forecast layout (time, prediction_timedelta, level,
latitude, longitude); the ensemble plots (plume, probability, spaghetti) take
ensembles in that layout with a realization dim, and the CRPS, spread-skill and
rank-histogram plots what ``stmodel.evaluate`` returns. All return
``matplotlib.figure.Figure`` objects; save them with :func:`save_figure`; in
Jupyter, a figure as the last expression of a cell is drawn (see
:mod:`stmodel.plot.notebook_display`). Coastlines and borders come from Natural
Earth outlines bundled with stmodel, so no map ever opens a network connection.
"""

from stmodel.plot.animation import animate_leads
from stmodel.plot.ensemble_maps import plot_probability_map, plot_spaghetti
from stmodel.plot.ensemble_skill import (
    plot_crps_vs_lead,
    plot_rank_histogram,
    plot_spread_skill_vs_lead,
)
from stmodel.plot.fields import select_field, with_cyclic_point, zoom
from stmodel.plot.labels import field_label, field_symbol, pretty_units
from stmodel.plot.maps import make_projection, plot_map
from stmodel.plot.notebook_display import enable_notebook_display
from stmodel.plot.offline_features import add_coastlines_and_borders, borders, coastlines
from stmodel.plot.overlays import plot_contours_over_colour, plot_wind
from stmodel.plot.panels import plot_downscaling, plot_truth_forecast_error
from stmodel.plot.plume import plot_plume
from stmodel.plot.saving import save_figure
from stmodel.plot.skill import load_scorecard, plot_scorecard, plot_skill_vs_lead

__all__ = [
    "add_coastlines_and_borders",
    "animate_leads",
    "borders",
    "coastlines",
    "field_label",
    "field_symbol",
    "load_scorecard",
    "make_projection",
    "plot_contours_over_colour",
    "plot_crps_vs_lead",
    "plot_downscaling",
    "plot_map",
    "plot_plume",
    "plot_probability_map",
    "plot_rank_histogram",
    "plot_scorecard",
    "plot_skill_vs_lead",
    "plot_spaghetti",
    "plot_spread_skill_vs_lead",
    "plot_truth_forecast_error",
    "plot_wind",
    "pretty_units",
    "save_figure",
    "select_field",
    "with_cyclic_point",
    "zoom",
]

enable_notebook_display()
