"""Reference forecasts scored beside every model, on the same init times and leads.

Persistence and the climatology are one-member ensembles (their CRPS is their MAE); beside
an ensemble also the probabilistic climatology, an ensemble of past truth states
(:mod:`stmodel.evaluation.probabilistic_climatology`).
"""

from __future__ import annotations

import xarray as xr

from stmodel.evaluation.climatology import climatology_at

# The baselines' names in the scores' ``forecast`` dim and the scorecard's column.
PERSISTENCE = "persistence"
CLIMATOLOGY = "climatology"
PROBABILISTIC_CLIMATOLOGY = "probabilistic_climatology"
BASELINES = (PERSISTENCE, CLIMATOLOGY, PROBABILISTIC_CLIMATOLOGY)


def persistence_forecast(
    truth_at_init: xr.DataArray, prediction_timedelta: xr.DataArray
) -> xr.DataArray:
    """The truth at each init time held constant over all leads.

    ``truth_at_init`` has dim ``time`` (the init times); the result has
    dims (time, prediction_timedelta, ...), a broadcast view (no copy).
    """
    return truth_at_init.expand_dims(prediction_timedelta=prediction_timedelta.values, axis=1)


def climatology_forecast(
    climatology: xr.DataArray, valid_times: xr.DataArray, source: str
) -> xr.DataArray:
    """The climatology at each valid time: dims (time, prediction_timedelta, ...)."""
    return climatology_at(climatology, valid_times, source)
