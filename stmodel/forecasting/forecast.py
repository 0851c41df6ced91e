"""Autoregressive forecasts from one or several checkpoints (e.g. 24 h and 6 h).

Initial states come from canonical data; many initial times run as one batch;
each lead is written as soon as it exists and states no later step needs are
dropped, so memory stays bounded however long the forecast.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from stmodel.atomic_files import atomic_folder, atomic_path
from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.data.readers import source_files
from stmodel.data.validation import require_variables
from stmodel.errors import DataError, Interrupted, UserError
from stmodel.forecasting.ensemble import (
    Ensemble,
    LaggedSink,
    check_ensemble,
    lagged_plan,
    perturb_initial_states,
    step_noise,
)
from stmodel.forecasting.forecast_file import (
    ForecastSink,
    ForecastWriter,
    ForecastZarrWriter,
    forecast_format,
    is_zarr_store,
)
from stmodel.forecasting.schedule import rollout_plan
from stmodel.stop_signals import stop_requested


def check_compatible(models: Sequence[CheckpointModel], sources: Sequence[str]) -> None:
    first = models[0]
    for model, source in zip(models[1:], sources[1:]):
        if model.layout != first.layout or model.model_config.grid != first.model_config.grid:
            raise UserError(
                f"{source}: its variables, levels or grid differ from those of "
                f"{sources[0]}; checkpoints combined in one forecast must match"
            )
    dts = [m.dt_hours for m in models]
    if len(set(dts)) != len(dts):
        raise UserError(
            f"checkpoints {', '.join(sources)} have time steps {dts} h; give each time step once"
        )


def check_data_matches(ds: xr.Dataset, model: CheckpointModel, source: str) -> None:
    """DataError naming what differs where the data's variables, levels or grid are not the
    model's."""
    where = ", ".join(source_files(ds)) or "the data"
    layout = model.layout
    require_variables(ds, layout.upper_air, layout.levels)
    require_variables(ds, layout.surface)
    for dim, expected in (("lat", model.lat), ("lon", model.lon)):
        have = np.asarray(ds[dim].values, np.float64)
        if have.shape != expected.shape or not np.allclose(have, expected, atol=1e-6):
            raise DataError(
                f"{where}: its {dim} grid ({describe_axis(have)}) is not the grid of the model "
                f"{source} ({describe_axis(expected)}); regrid the data to the model's grid "
                "first"
            )


def describe_axis(values: np.ndarray) -> str:
    """A grid axis in words for error messages: its size and end values in degrees."""
    if values.size < 2:
        return f"{values.size} point(s)"
    return f"{values.size} points, {values[0]:g} to {values[-1]:g} deg"


def initial_states(
    ds: xr.Dataset, model: CheckpointModel, init_times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """upper [init, level, lat, lon, var], surface [init, lat, lon, var] from data that
    check_data_matches has accepted for the model."""
    layout = model.layout
    missing = [t for t in init_times if t not in ds["time"].values]
    if missing:
        raise UserError(
            f"initial time(s) {', '.join(str(t)[:16] for t in missing[:5])} are not in the data"
        )
    at = ds.sel(time=init_times)
    upper = np.stack(
        [at[v].sel(level=list(layout.levels)).values for v in layout.upper_air], axis=-1
    ).astype(np.float32)  # [init, level, lat, lon, var]
    surface = np.stack([at[v].values for v in layout.surface], axis=-1).astype(np.float32)
    _require_finite(ds, init_times, layout.upper_air, upper, axes=(1, 2, 3))
    _require_finite(ds, init_times, layout.surface, surface, axes=(1, 2))
    return upper, surface


def _require_finite(ds, init_times, names, values: np.ndarray, axes: tuple[int, ...]) -> None:
    """DataError naming the first initial time and variable with NaN or infinite values."""
    finite = np.isfinite(values).all(axis=axes)  # [init, var]
    if finite.all():
        return
    i, v = np.argwhere(~finite)[0]
    count = int((~np.isfinite(values[i, ..., v])).sum())
    raise DataError(
        f"{', '.join(source_files(ds)) or 'the data'}: {names[v]} at the initial time "
        f"{str(init_times[i])[:16]} has {count} NaN or infinite value(s); a forecast "
        "needs complete initial states (choose other initial times or fill the gaps)"
    )


class ForecastDiverged(UserError):
    """The rollouts of some initial times produced NaN or infinite values; every other
    initial time, and their leads before it, were kept."""


def run_forecast(
    models: Sequence[CheckpointModel],
    ds: xr.Dataset,
    init_times: np.ndarray,
    lead_hours: Sequence[int],
    out: Path,
    *,
    batch_size: int = 16,
    attrs: dict | None = None,
    progress: bool = True,
    ensemble: Ensemble | None = None,
    lagged: tuple[int, int] | None = None,
) -> Path:
    """Forecast every init time to every lead and write the WeatherBench 2 layout: a NetCDF
    file (``out`` ending in .nc) or a Zarr store (.zarr), lead by lead, whole or not at all.

    ``ensemble``: members (a realization dim) made by a stochastic model's noise or by
    perturbed initial states; ``lagged``: (members, lag hours) of a lagged ensemble. See
    :func:`forecast_into`."""
    zarr_store = forecast_format(out) == "Zarr"
    sink = ForecastZarrWriter if zarr_store else ForecastWriter
    output = atomic_folder(out, is_zarr_store, "a Zarr store") if zarr_store else atomic_path(out)
    with output as temporary:

        def file_writer(lat: np.ndarray, lon: np.ndarray, members: int | None) -> ForecastSink:
            return sink(
                temporary, init_times, lead_hours, models[0].layout, lat, lon, attrs or {}, members
            )

        diverged = forecast_into(
            file_writer,
            models,
            ds,
            init_times,
            lead_hours,
            batch_size=batch_size,
            progress=progress,
            interrupted=f"forecast stopped; {out} not written",
            ensemble=ensemble,
            lagged=lagged,
        )
    if diverged:
        raise ForecastDiverged(
            f"{diverged_message(diverged)}; {out} keeps the other initial times' forecasts"
        )
    return Path(out)


def forecast_into(
    make_sink: Callable[[np.ndarray, np.ndarray, int | None], ForecastSink],
    models: Sequence[CheckpointModel],
    ds: xr.Dataset,
    init_times: np.ndarray,
    lead_hours: Sequence[int],
    *,
    batch_size: int = 16,
    progress: bool = True,
    interrupted: str = "forecast stopped",
    ensemble: Ensemble | None = None,
    lagged: tuple[int, int] | None = None,
    option: dict[str, str] | None = None,
) -> list[tuple[np.datetime64, int]]:
    """Forecast every init time to every lead into the sink ``make_sink(lat, lon,
    members)`` makes (the data's grid; members: the realization dim's size, None for a
    deterministic forecast, which has none); the sink is closed at the end, whatever
    happens.

    Ensembles: ``ensemble.members`` states per init time, folded into the batch: the
    (init time, member) pairs, init-major, are cut into batches of ``batch_size`` states,
    each member a separate network pass with, for a stochastic model, its own noise at
    every step (:func:`stmodel.forecasting.ensemble.forecast_noise`). ``lagged`` =
    (members, lag hours): member k is the deterministic forecast from init - k lag at the
    same valid time, from one run over the extended init times and leads. ``option``
    names the arguments in messages (CLI flags by default).

    Returns the (init time, lead) of every initial time whose rollout became non-finite,
    at that lead: its forecast is NaN from there on, the sink is marked incomplete, and
    every other initial time is forecast as if it had not been there. A stop signal
    raises Interrupted with the message ``interrupted``.
    """
    option = {"lagged": "--lagged", "lag": "--lag-every"} | (option or {})
    for model in models:
        check_data_matches(ds, model, f"with a {model.dt_hours} h step")
    ensemble = ensemble or Ensemble()
    check_ensemble(ensemble, models, option)
    if lagged is None:
        return _rollout(
            lambda lat, lon: make_sink(lat, lon, ensemble.realization(models)),
            models,
            ds,
            init_times,
            lead_hours,
            batch_size,
            progress,
            interrupted,
            ensemble,
        )
    if ensemble.realization(models) is not None:
        raise UserError(
            f"{option['lagged']}: a lagged ensemble is made of deterministic forecasts; "
            f"leave out {option.get('members', '--members')} and "
            f"{option.get('perturb', '--perturb')}, and use a deterministic model"
        )
    members, lag_hours = lagged
    plan = lagged_plan(init_times, lead_hours, members, lag_hours, ds["time"].values)
    try:
        rollout_plan(plan.lead_hours, [m.dt_hours for m in models])
    except ValueError:
        raise UserError(
            f"{option['lag']} {lag_hours} h: expected a multiple of the shortest model step "
            f"({min(m.dt_hours for m in models)} h)"
        ) from None
    return _rollout(
        lambda lat, lon: LaggedSink(make_sink(lat, lon, members), plan, init_times, lead_hours),
        models,
        ds,
        plan.init_times,
        plan.lead_hours,
        batch_size,
        progress,
        interrupted,
        ensemble,
    )


def _rollout(
    make_sink: Callable[[np.ndarray, np.ndarray], ForecastSink],
    models: Sequence[CheckpointModel],
    ds: xr.Dataset,
    init_times: np.ndarray,
    lead_hours: Sequence[int],
    batch_size: int,
    progress: bool,
    interrupted: str,
    ensemble: Ensemble,
) -> list[tuple[np.datetime64, int]]:
    """forecast_into's rollout of every (init time, member) state, batch by batch."""
    by_dt = {m.dt_hours: m for m in models}
    plan = rollout_plan(lead_hours, list(by_dt))
    steppers = {dt: checked_stepper(m) for dt, m in by_dt.items()}
    first = models[0]
    shortest = by_dt[min(by_dt)]  # its diff_std (one short step's change) scales --perturb
    wanted = {int(h) for h in lead_hours}
    members = ensemble.members
    in_realization = ensemble.realization(models) is not None
    last_use = {}
    for start, _, end in plan:
        last_use[start] = end  # a state is dropped once the last step leaving it has run
    n_states = len(init_times) * members
    n_batches = -(-n_states // batch_size)
    diverged: list[tuple[np.datetime64, int]] = []
    with (
        stop_requested() as stop,
        tqdm(
            total=len(plan) * n_batches, desc="forecast", unit="step", disable=not progress
        ) as bar,
    ):
        # The data's coordinates, not the checkpoint's copy (equal to ~1e-14 deg), so the
        # forecast lines up exactly with the truth it started from.
        writer = make_sink(ds["lat"].values, ds["lon"].values)
        try:
            for first_state in range(0, n_states, batch_size):
                # [state] the (init time, member) of each state of the batch, init-major
                init_index, member = np.divmod(
                    np.arange(first_state, min(first_state + batch_size, n_states)), members
                )
                times = init_times[init_index]
                alive = np.ones(len(times), bool)
                inits = slice(init_index[0], init_index[-1] + 1)
                upper, surface = initial_states(ds, first, init_times[inits])
                upper, surface = upper[init_index - inits.start], surface[init_index - inits.start]
                if ensemble.perturb > 0:
                    upper, surface = perturb_initial_states(
                        upper, surface, times, member, ensemble, shortest
                    )
                states = {0: (upper, surface)}
                for start, dt, end in plan:
                    model = by_dt[dt]
                    noise = step_noise(model, ensemble.seed, times, member, end)
                    *states[end], finite = steppers[dt](model.params, *states[start], *noise)
                    # Each state is its own forecast: the network mixes nothing across the
                    # batch, so the diverged ones ride along (written as NaN) and the
                    # others' numbers are those of a batch without them.
                    lost = alive & ~np.asarray(finite)
                    if lost.any():
                        diverged += [(t, end) for t in times[lost] if (t, end) not in diverged]
                        alive &= ~lost
                    if not alive.any():
                        bar.update(len(plan) - plan.index((start, dt, end)))
                        break
                    if last_use.get(start) == end:
                        del states[start]
                    if end in wanted:
                        fields = [_only(alive, x) for x in states[end]]
                        if in_realization:
                            _write_members(writer, end, init_index, member, *fields)
                        else:
                            writer.write(inits, end, *fields)
                    if end not in last_use:
                        del states[end]
                    bar.update()
                    if stop.is_set():  # between steps, never inside XLA's computation
                        raise Interrupted(stop.signum, interrupted)
            if diverged:
                writer.mark_incomplete(
                    f"diverged initial times: {_diverged_list(diverged)}; their forecasts are "
                    "NaN from that lead on",
                    list(dict.fromkeys(_time_text(t) for t, _ in diverged)),
                )
        finally:
            writer.close()
    return diverged


def _write_members(
    writer: ForecastSink,
    lead: int,
    init_index: np.ndarray,
    member: np.ndarray,
    upper: np.ndarray,
    surface: np.ndarray,
) -> None:
    """A batch's states at one lead into the realization dim, init time by init time (a
    batch may hold only some members of its first and last init times)."""
    for init in np.unique(init_index):
        rows = np.flatnonzero(init_index == init)  # contiguous: the batch is init-major
        members = slice(int(member[rows[0]]), int(member[rows[-1]]) + 1)
        part = slice(rows[0], rows[-1] + 1)
        writer.write((int(init), members), lead, upper[part], surface[part])


def _only(alive: np.ndarray, state) -> np.ndarray:
    """The state of the initial times still alive; NaN for the others."""
    state = np.asarray(state)
    if alive.all():
        return state
    return np.where(alive.reshape((-1,) + (1,) * (state.ndim - 1)), state, np.float32(np.nan))


def _time_text(time: np.datetime64) -> str:
    return str(time)[:16]


def _diverged_list(diverged: Sequence[tuple[np.datetime64, int]]) -> str:
    return ", ".join(f"{_time_text(t)} (non-finite at lead {lead} h)" for t, lead in diverged)


def diverged_message(diverged: Sequence[tuple[np.datetime64, int]]) -> str:
    """The one line saying which initial times' forecasts became non-finite, and where."""
    return (
        f"the forecast became NaN or infinite from {len(diverged)} initial time(s): "
        f"{_diverged_list(diverged)}; their forecasts are NaN from that lead on"
    )


def checked_stepper(model: CheckpointModel) -> Callable:
    """The jitted forecast step of ``model``: (params, upper, surface[, noise]) -> (upper,
    surface, [batch] finite), see _checked_advance."""
    return jax.jit(functools.partial(_checked_advance, model))


def _checked_advance(model: CheckpointModel, params, upper, surface, noise=None):
    """The next state, and [batch] whether each state is still finite. ``noise`` [batch,
    noise_dim]: a stochastic model's noise, passed only to such a model."""
    extra = {} if noise is None else {"noise": noise}
    upper, surface = model.advance(
        params, upper, surface, model.constants, None, deterministic=True, **extra
    )
    finite = jnp.isfinite(upper).all(axis=(1, 2, 3, 4)) & jnp.isfinite(surface).all(axis=(1, 2, 3))
    return upper, surface, finite


def data_time_step(ds: xr.Dataset) -> int:
    """The data's time step in whole hours (the median spacing of its times)."""
    times = ds["time"].values
    if len(times) < 2:
        raise UserError("--lagged: the data hold one time only; give --lag-every")
    return int(round(np.median(np.diff(times)) / np.timedelta64(1, "h")))


def ensemble_attrs(
    ensemble: Ensemble, lagged: tuple[int, int] | None, models: Sequence[CheckpointModel]
) -> dict:
    """The global attributes saying how an ensemble forecast's members were made."""
    if lagged is not None:
        return {
            "ensemble_members": lagged[0],
            "ensemble_method": f"lagged: member k starts k x {lagged[1]} h before the init time",
        }
    return ensemble.attrs(models)


def parse_lead(text: str, option: str = "--lead") -> int:
    """'10d', '36h' or '240' (hours) -> hours, a positive whole number."""
    given, text = text, text.strip().lower()
    try:
        days = text.endswith("d")
        value = float(text[:-1] if days or text.endswith("h") else text) * (24 if days else 1)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0 and value == int(value)):
        raise UserError(
            f"{option} {given!r}: expected a positive whole number of hours or days such as "
            "36h or 10d"
        )
    return int(value)


def parse_init_times(values: Sequence[str], ds: xr.Dataset, option: str = "--init") -> np.ndarray:
    """Times, or START/END/EVERY ranges such as 2001-05-01/2001-06-30/72h."""
    times = []
    for value in values:
        parts = value.split("/")
        try:
            if len(parts) == 3:
                every = np.timedelta64(parse_lead(parts[2], option), "h")
                times += list(
                    np.arange(
                        np.datetime64(parts[0], "h"),
                        np.datetime64(parts[1], "h") + np.timedelta64(1, "h"),
                        every,
                    )
                )
            elif len(parts) == 1:
                times.append(np.datetime64(value, "h"))
            else:
                raise ValueError(value)
        except ValueError:
            raise UserError(
                f"{option} {value!r}: expected a time such as 2001-05-01T00 or a range "
                "START/END/EVERY such as 2001-05-01/2001-06-30/72h"
            ) from None
    return np.asarray(times, "datetime64[ns]")


def forecast_attrs(
    origins: Sequence[str],
    data: Sequence[str],
    models: Sequence[CheckpointModel],
    source: str = "stmodel forecast",
) -> dict:
    """The forecast's global attributes. origins: where each model came from (its resolved
    folder, or a description); data: the initial conditions' files (resolved where they
    exist)."""
    return {
        "model_name": "stmodel-" + "+".join(f"{m.dt_hours}h" for m in models),
        "source": source,
        "checkpoints": json.dumps(list(origins)),
        "checkpoint_steps": json.dumps([m.step for m in models]),
        "initial_condition_data": json.dumps(
            [str(Path(d).resolve()) if Path(d).exists() else str(d) for d in data]
        ),
    }
