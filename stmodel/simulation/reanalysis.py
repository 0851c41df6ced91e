"""The built-in simulated reanalysis: Held-Suarez (1994) with dinosaur, in canonical form.

`generate(preset, out)` spins the dry primitive equations with Held-Suarez
forcing up from rest (or starts from a shipped spun-up state of exactly this
spin-up, see `stmodel.simulation.spun_up`), then writes 6-hourly geopotential,
temperature and winds on the 13 WeatherBench pressure levels, plus surface
pressure and the lowest-model-level temperature and winds, on an equiangular grid.

The run is resumable: spin-up checkpoints and output chunks go to
`<out>.work/`; chunks are merged into `<out>` (written to a temporary name,
then renamed) and the work directory is removed. An interrupted run picks up
where it stopped; a finished file made with the same preset is reused.
`save_spun_up_state(preset, out)` spins up from rest and saves the end state,
which is how the shipped states are made.
"""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
from dinosaur import time_integration
from tqdm import tqdm

import stmodel
from stmodel.atomic_files import atomic_path
from stmodel.data.canonical import WEATHERBENCH_LEVELS
from stmodel.data.symmetries import (
    LONGITUDE_ROLL,
    MIRROR_SIGN_FLIP_ATTRIBUTE,
    NORTH_SOUTH_MIRROR,
    SYMMETRIES_ATTRIBUTE,
)
from stmodel.errors import Interrupted, UserError
from stmodel.simulation.dynamics import (
    HeldSuarezModel,
    build_model,
    equiangular_grid,
    initial_state,
    one_day_advance,
    state_from_arrays,
    state_to_arrays,
    transfer_state,
)
from stmodel.simulation.levels import (
    EXTRAPOLATION_LAPSE_RATE,
    PRESSURE_LEVEL_FIELDS,
    SURFACE_FIELDS,
    make_frame_fn,
)
from stmodel.simulation.netcdf import read_global_attribute, write_canonical_netcdf
from stmodel.simulation.presets import PRESETS, SimulationPreset, SpinupStage, get_preset
from stmodel.simulation.spun_up import SpunUpState, find_spun_up_state, write_spun_up_state
from stmodel.simulation.workdir import WorkDirectory
from stmodel.stop_signals import StopRequest, stop_requested

logger = logging.getLogger(__name__)

__all__ = ["PRESETS", "SimulationPreset", "generate", "get_preset", "save_spun_up_state"]

OUTPUT_INTERVAL_HOURS = 6
FRAMES_PER_DAY = 24 // OUTPUT_INTERVAL_HOURS
FINGERPRINT_ATTRIBUTE = "stmodel_simulation_fingerprint"
OUTPUT_FIELDS = PRESSURE_LEVEL_FIELDS + SURFACE_FIELDS
SPINUP_FROM_REST = "integrated from rest in this run"

# What each pressure-level variable holds where a level lies below the lowest
# model level (sigma ~0.979), including below the surface (see stmodel.simulation.levels).
BELOW_LOWEST_LEVEL_NOTES = {
    "temperature": "below the lowest model level (sigma = {sigma:.4f}) and below the surface: "
    "extrapolated from the lowest model level with a {lapse:g} K/km lapse rate",
    "geopotential": "hydrostatic from the model's temperature; below the lowest model level "
    "(sigma = {sigma:.4f}) and below the surface: the hydrostatic integral of the "
    "{lapse:g} K/km lapse-rate temperature",
    "u_component_of_wind": "below the lowest model level (sigma = {sigma:.4f}) and below the "
    "surface: the lowest-model-level value",
    "v_component_of_wind": "below the lowest model level (sigma = {sigma:.4f}) and below the "
    "surface: the lowest-model-level value",
}


def generate(
    preset: str | SimulationPreset,
    out: str | os.PathLike,
    progress: bool = True,
    *,
    overwrite: bool = False,
    command: str | None = None,
) -> Path:
    """Simulates the preset and writes it to `out` as canonical NetCDF; returns the path.

    Args:
      preset: a name from `PRESETS` ("tiny", "default", "hires") or a
        SimulationPreset.
      out: the NetCDF file to write. Its directory must exist; `<out>.work/`
        next to it holds resumable intermediate files while the run lasts.
      progress: show tqdm progress bars (with ETA) and status lines on stderr.
      overwrite: replace an existing `out` made with another preset (or not by
        this generator). A file made with the same preset is always reused.
      command: the command line to record in the file's provenance; defaults
        to the equivalent Python call.

    Raises:
      UserError: unknown preset, or `out` cannot be written.
    """
    preset = get_preset(preset)
    out = Path(out).expanduser().absolute()
    _check_writable(out)
    dinosaur_version = importlib.metadata.version("dinosaur")
    fingerprint = preset.fingerprint(dinosaur_version)
    say = logger.info if progress else (lambda message: None)

    if out.exists():
        if read_global_attribute(str(out), FINGERPRINT_ATTRIBUTE) == fingerprint:
            say(f"{out}: already generated with preset {preset.name!r}; reusing it")
            return out
        if not overwrite:
            raise UserError(
                f"{out} exists and was not generated with preset {preset.name!r} by this version "
                "of stmodel; remove it, choose another --out, or pass --overwrite"
            )

    work = WorkDirectory(out.with_name(out.name + ".work"), fingerprint)
    try:
        resumed = work.open()
    except OSError as error:
        raise UserError(f"cannot create the work directory {work.path}: {error}") from None
    if resumed:
        say(f"{work.path}: resuming earlier work")

    stages = preset.spinup_stages()
    output_model = build_model(preset.truncation, preset.sigma_layers, preset.time_step_minutes)
    chunk_count = -(-preset.output_days // preset.chunk_days)
    output_grid = equiangular_grid(
        output_model.coords.horizontal, preset.output_latitudes, preset.output_longitudes
    )
    advance_day_with_frames = _output_day_fn(output_model, output_grid)
    finished = work.finished_chunks()
    with stop_requested() as stop:
        if finished:
            state = state_from_arrays(work.load_chunk_state(finished - 1), output_model)
        else:
            shipped = find_spun_up_state(preset, dinosaur_version)
            if shipped is not None:
                say(f"{preset.name}: spin-up skipped, starting from {shipped.path}")
                state = _shipped_state(shipped, output_model)
                work.save_spinup_source(shipped.describe())
            else:
                work.save_spinup_source(SPINUP_FROM_REST)
                state = _spin_up(
                    preset, stages, output_model, advance_day_with_frames, work, progress, stop
                )
        _simulate_output(preset, state, advance_day_with_frames, work, progress, stop)

    say(f"{out}: merging {chunk_count} chunks")
    _merge(
        preset,
        output_model,
        output_grid,
        work,
        chunk_count,
        out,
        fingerprint,
        dinosaur_version,
        command or _python_command(preset, out),
        # A work directory of an older stmodel has no note: it spun up from rest.
        work.spinup_source() or SPINUP_FROM_REST,
    )
    work.remove()
    return out


def save_spun_up_state(
    preset: str | SimulationPreset,
    out: str | os.PathLike,
    progress: bool = True,
    *,
    overwrite: bool = False,
    command: str | None = None,
) -> Path:
    """Spins the preset up from rest and saves the state that starts its output run.

    The spin-up is the one `generate` integrates (the same compiled day function),
    never a shipped state, so the file can replace a shipped one in
    `stmodel/simulation/spun_up/`. Resumable from `<out>.work/`.

    Args:
      preset: a name from `PRESETS` or a SimulationPreset.
      out: the `.npz` to write; its directory must exist.
      progress: show a progress bar and status lines on stderr.
      overwrite: replace an existing `out`.
      command: the command line to record; defaults to the equivalent Python call.

    Raises:
      UserError: unknown preset, `out` exists (without `overwrite`) or cannot be written.
    """
    preset = get_preset(preset)
    out = Path(out).expanduser().absolute()
    _check_writable(out, option="--save-spun-up", example="spun_up.npz")
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; remove it, choose another path, or pass --overwrite")
    dinosaur_version = importlib.metadata.version("dinosaur")
    # Its own fingerprint: a generate run's work directory must not be mistaken for it.
    work = WorkDirectory(
        out.with_name(out.name + ".work"), "spin-up only " + preset.fingerprint(dinosaur_version)
    )
    try:
        work.open()
    except OSError as error:
        raise UserError(f"cannot create the work directory {work.path}: {error}") from None
    output_model = build_model(preset.truncation, preset.sigma_layers, preset.time_step_minutes)
    output_grid = equiangular_grid(
        output_model.coords.horizontal, preset.output_latitudes, preset.output_longitudes
    )
    started = time.monotonic()
    with stop_requested() as stop:
        state = _spin_up(
            preset,
            preset.spinup_stages(),
            output_model,
            _output_day_fn(output_model, output_grid),
            work,
            progress,
            stop,
        )
    write_spun_up_state(
        out,
        preset,
        dinosaur_version,
        state_to_arrays(state),
        command=command or f"stmodel.simulation.save_spun_up_state({preset.name!r}, {str(out)!r})",
        seconds=time.monotonic() - started,
    )
    work.remove()
    return out


def _shipped_state(shipped: SpunUpState, output_model: HeldSuarezModel):
    try:
        return state_from_arrays(shipped.arrays, output_model)
    except ValueError as error:
        raise UserError(
            f"the spun-up state {shipped.path} does not fit the model: {error}"
        ) from None


def _simulate_output(preset, state, advance_day_with_frames, work, progress, stop) -> None:
    """The output days from `state`, saved chunk by chunk into the work directory."""
    finished = work.finished_chunks()
    chunk_count = -(-preset.output_days // preset.chunk_days)
    with tqdm(
        total=preset.output_days,
        initial=min(finished * preset.chunk_days, preset.output_days),
        desc=f"{preset.name}: output",
        unit="day",
        disable=not progress,
    ) as bar:
        for chunk in range(finished, chunk_count):
            days = min(preset.chunk_days, preset.output_days - chunk * preset.chunk_days)
            frames = []
            for _ in range(days):
                state, day_frames = advance_day_with_frames(state)
                frames.append(jax.device_get(day_frames))
                bar.update(1)
                _stop_if_asked(stop, work, f"output chunk {chunk + 1} of {chunk_count}")
            stacked = {
                name: np.concatenate([day[name] for day in frames]) for name in OUTPUT_FIELDS
            }  # [time, (level,) lat, lon]
            _check_finite(stacked, chunk)
            work.save_chunk(chunk, stacked, state_to_arrays(state))


def _stop_if_asked(stop: StopRequest, work: WorkDirectory, where: str) -> None:
    if stop.is_set():
        raise Interrupted(
            stop.signum,
            f"stopped in the {where}; the work saved so far is in {work.path}: run the same "
            "command to resume",
        )


def _check_writable(out: Path, option: str = "--out", example: str = "simulated.nc") -> None:
    if out.is_dir():
        raise UserError(
            f"{option} {out} is a directory; expected a file path such as {out / example}"
        )
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: the directory {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise UserError(f"cannot write {out}: the directory {out.parent} is not writable")


def _spin_up(
    preset: SimulationPreset,
    stages: list[SpinupStage],
    output_model: HeldSuarezModel,
    advance_day_with_frames,
    work: WorkDirectory,
    progress: bool,
    stop: StopRequest,
):
    """Integrates from rest through all stages; returns the state at output start.

    At the output resolution the spin-up reuses the compiled output step and
    drops its frames: cheaper than compiling a second function (~5 s at T21),
    and the frames cost little next to the 48 model steps of a day.
    """
    checkpoint = work.load_spinup()
    stage_index, days_done = (0, 0) if checkpoint is None else checkpoint[:2]
    total_days = sum(stage.days for stage in stages)
    done_before = sum(stage.days for stage in stages[:stage_index]) + days_done
    with tqdm(
        total=total_days,
        initial=done_before,
        desc=f"{preset.name}: spin-up",
        unit="day",
        disable=not progress,
    ) as bar:
        model = _stage_model(stages[min(stage_index, len(stages) - 1)], preset)
        if checkpoint is None:
            state = initial_state(model, preset.seed, preset.surface_pressure_perturbation_pa)
        else:
            state = state_from_arrays(checkpoint[2], model)
        while stage_index < len(stages):
            stage = stages[stage_index]
            if model is output_model:
                advance_day = lambda state: advance_day_with_frames(state)[0]
            else:
                advance_day = one_day_advance(model)
            while days_done < stage.days:
                state = jax.block_until_ready(advance_day(state))
                days_done += 1
                bar.update(1)
                if days_done % preset.chunk_days == 0 or days_done == stage.days or stop.is_set():
                    work.save_spinup(stage_index, days_done, state_to_arrays(state))
                _stop_if_asked(stop, work, f"spin-up (day {days_done} of stage {stage_index + 1})")
            stage_index, days_done = stage_index + 1, 0
            if stage_index < len(stages):
                next_model = _stage_model(stages[stage_index], preset)
                state = transfer_state(state, model, next_model)
                model = next_model
                work.save_spinup(stage_index, 0, state_to_arrays(state))
    return state


def _stage_model(stage: SpinupStage, preset: SimulationPreset) -> HeldSuarezModel:
    # build_model is cached: a stage at the output resolution gets the output model itself.
    return build_model(stage.truncation, preset.sigma_layers, stage.time_step_minutes)


@functools.cache
def _output_day_fn(model: HeldSuarezModel, output_grid):
    """jitted state -> (state one day later, frames at 00, 06, 12, 18 h of this day).

    Cached, so repeated `generate` calls in one process compile once.
    """
    frame_fn = make_frame_fn(model, output_grid, WEATHERBENCH_LEVELS)
    steps_per_frame = model.steps_per_day // FRAMES_PER_DAY
    return jax.jit(
        time_integration.trajectory_from_step(
            model.step,
            outer_steps=FRAMES_PER_DAY,
            inner_steps=steps_per_frame,
            start_with_input=True,
            post_process_fn=frame_fn,
        )
    )


def _check_finite(frames: dict[str, np.ndarray], chunk: int) -> None:
    for name, values in frames.items():
        if not np.all(np.isfinite(values)):
            raise RuntimeError(
                f"the simulation produced non-finite {name} in output chunk "
                f"{chunk}; the model became unstable"
            )


def _merge(
    preset: SimulationPreset,
    model: HeldSuarezModel,
    output_grid,
    work: WorkDirectory,
    chunk_count: int,
    out: Path,
    fingerprint: str,
    dinosaur_version: str,
    command: str,
    spinup_source: str,
) -> None:
    """Streams the chunks into a temporary NetCDF file, then renames it to `out`."""
    longitudes = np.degrees(output_grid.nodal_axes[0])
    latitudes = np.degrees(np.arcsin(output_grid.nodal_axes[1]))
    hours = np.arange(preset.output_days * FRAMES_PER_DAY) * OUTPUT_INTERVAL_HOURS

    def chunks() -> Iterator[dict[str, np.ndarray]]:
        for index in range(chunk_count):
            yield work.load_chunk_frames(index, OUTPUT_FIELDS)

    lowest_sigma = float(model.coords.vertical.centers[-1])
    comments = {
        name: note.format(sigma=lowest_sigma, lapse=EXTRAPOLATION_LAPSE_RATE * 1e3)
        for name, note in BELOW_LOWEST_LEVEL_NOTES.items()
    }
    lowest_level_note = (
        f"value at the lowest sigma level (sigma = {lowest_sigma:.4f}); "
        "Held-Suarez has no boundary-layer scheme to give 2 m / 10 m values"
    )
    comments.update(
        {
            name: lowest_level_note
            for name in SURFACE_FIELDS
            if name.startswith("lowest_model_level")
        }
    )
    extrapolation = (
        f"Pressure levels below the lowest model level (sigma = {lowest_sigma:.4f}), including "
        f"below the surface: temperature follows a {EXTRAPOLATION_LAPSE_RATE * 1e3:g} K/km lapse "
        "rate from the lowest model level, geopotential is its hydrostatic integral, winds keep "
        "their lowest-model-level values."
    )
    attributes = _global_attributes(
        preset, fingerprint, dinosaur_version, command, extrapolation, spinup_source
    )

    try:
        with atomic_path(out) as temporary:
            write_canonical_netcdf(
                str(temporary),
                first_day=preset.train_period[0],
                hours=hours,
                levels_hpa=WEATHERBENCH_LEVELS,
                latitudes=latitudes,
                longitudes=longitudes,
                chunks=chunks(),
                attributes=attributes,
                variable_comments=comments,
            )
    except OSError as error:
        raise UserError(f"cannot write {out}: {error}") from None


def _global_attributes(
    preset: SimulationPreset,
    fingerprint: str,
    dinosaur_version: str,
    command: str,
    extrapolation: str,
    spinup_source: str,
) -> dict[str, str | int | float]:
    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stages = preset.spinup_stages()
    spinup = (
        f"{stages[0].days} days from an isothermal atmosphere at rest at "
        f"T{stages[0].truncation} with a {stages[0].time_step_minutes:g} min step"
    )
    if len(stages) > 1 and stages[1].days:
        spinup += (
            f", then {stages[1].days} days at T{stages[1].truncation} with a "
            f"{stages[1].time_step_minutes:g} min step"
        )
    spinup += "; not written"
    return {
        "Conventions": "CF-1.8",
        "title": "stmodel simulated reanalysis: dry primitive equations with Held-Suarez forcing",
        "source": f"dinosaur {dinosaur_version} (sigma-coordinate primitive equations, "
        "Held-Suarez 1994 forcing, flat surface, no moisture)",
        "references": "Held, I. M. and M. J. Suarez, 1994: A proposal for the intercomparison of "
        "the dynamical cores of atmospheric general circulation models. Bull. Amer. "
        "Meteor. Soc., 75, 1825-1830. dinosaur: "
        "https://github.com/google-research/dinosaur",
        "history": f"{created}: {command}",
        "comment": "The calendar is fictitious: Held-Suarez forcing has no seasonal or diurnal "
        "cycle, dates only label the 6-hourly steps. " + extrapolation,
        "generator": f"stmodel.simulation (stmodel {stmodel.__version__})",
        "dinosaur_version": dinosaur_version,
        "jax_version": jax.__version__,
        "preset": preset.name,
        "resolution": preset.resolution,
        "spinup": spinup,
        "spinup_days": preset.spinup_days + preset.adjustment_days,
        "spinup_source": spinup_source,
        "seed": preset.seed,
        "creation_command": command,
        "train_period": f"{preset.train_period[0]}/{preset.train_period[1]}",
        "validation_period": f"{preset.validation_period[0]}/{preset.validation_period[1]}",
        "test_period": f"{preset.test_period[0]}/{preset.test_period[1]}",
        # Held-Suarez forcing depends on latitude (symmetrically) and pressure only, and the
        # surface is flat: these transforms map states of this planet to states of it.
        SYMMETRIES_ATTRIBUTE: f"{LONGITUDE_ROLL} {NORTH_SOUTH_MIRROR}",
        MIRROR_SIGN_FLIP_ATTRIBUTE: "v_component_of_wind lowest_model_level_v_component_of_wind",
        FINGERPRINT_ATTRIBUTE: fingerprint,
    }


def _python_command(preset: SimulationPreset, out: Path) -> str:
    name = preset.name if PRESETS.get(preset.name) == preset else f"<custom preset {preset.name}>"
    return f"stmodel.simulation.generate(preset={name!r}, out={str(out)!r})"
