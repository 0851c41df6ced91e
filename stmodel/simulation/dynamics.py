"""The Held-Suarez model: dinosaur's dry primitive equations on sigma levels plus forcing.

The setup follows dinosaur's Held-Suarez example: an isothermal (288 K)
atmosphere at rest with a flat surface and a localised surface-pressure
perturbation, semi-implicit IMEX RK3 time stepping (`imex_rk_sil3`) and an
exponential filter on the highest wavenumbers.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from dinosaur import (
    coordinate_systems,
    held_suarez,
    primitive_equations,
    primitive_equations_states,
    scales,
    sigma_coordinates,
    spherical_harmonic,
    time_integration,
)

UNITS = scales.units

# Fields of a dinosaur primitive_equations.State that a dry run carries.
STATE_FIELDS = ("vorticity", "divergence", "temperature_variation", "log_surface_pressure")

# Exponential filter of dinosaur's Held-Suarez example (tau is nondimensional:
# about 60 s): damps the top 20% of total wavenumbers to keep the run stable.
FILTER_TAU = 0.0087504
FILTER_ORDER = 1.5
FILTER_CUTOFF = 0.8

REFERENCE_SURFACE_PRESSURE_PA = 1.0e5

# FastSphericalHarmonics is ~10% faster than the default implementation on CPU
# (measured at T21); its modal layout is internal, which is fine because states
# only move between grids via nodal values (see `transfer_state`).
SPHERICAL_HARMONICS_IMPL = spherical_harmonic.FastSphericalHarmonics


# eq=False: models compare and hash by identity, so compiled functions can be
# cached per model (build_model returns one object per configuration).
@dataclasses.dataclass(frozen=True, eq=False)
class HeldSuarezModel:
    """A dinosaur Held-Suarez configuration at one resolution.

    Attributes:
      coords: dinosaur horizontal (Gaussian) and vertical (sigma) coordinates.
      physics_specs: dinosaur's physical constants and nondimensionalisation.
      reference_temperature: [sigma] K, the model's temperature is this plus
        `temperature_variation`.
      step: advances a State by one time step (filtered).
      steps_per_day: number of time steps in 24 h.
    """

    coords: coordinate_systems.CoordinateSystem
    physics_specs: primitive_equations.PrimitiveEquationsSpecs
    reference_temperature: np.ndarray
    step: Callable[[primitive_equations.State], primitive_equations.State]
    steps_per_day: int


def gaussian_grid(truncation: int) -> spherical_harmonic.Grid:
    """dinosaur's standard quadratically unaliased Gaussian grid, e.g. T21 -> 32 x 64."""
    constructor = getattr(spherical_harmonic.Grid, f"T{truncation}", None)
    if constructor is None:
        raise ValueError(f"dinosaur has no standard grid T{truncation}")
    return constructor(spherical_harmonics_impl=SPHERICAL_HARMONICS_IMPL)


def equiangular_grid(
    model_grid: spherical_harmonic.Grid, latitudes: int, longitudes: int
) -> spherical_harmonic.Grid:
    """The model's wavenumbers on an equiangular grid (cell-centred, no poles).

    Synthesis from spherical harmonics at any point is exact, so fields come
    out on e.g. the WeatherBench 5.625 deg grid with no interpolation.
    """
    return spherical_harmonic.Grid(
        longitude_wavenumbers=model_grid.longitude_wavenumbers,
        total_wavenumbers=model_grid.total_wavenumbers,
        longitude_nodes=longitudes,
        latitude_nodes=latitudes,
        latitude_spacing="equiangular",
        spherical_harmonics_impl=SPHERICAL_HARMONICS_IMPL,
    )


@functools.cache
def build_model(truncation: int, sigma_layers: int, time_step_minutes: float) -> HeldSuarezModel:
    """The Held-Suarez model at triangular truncation T`truncation` (one object per config)."""
    coords = coordinate_systems.CoordinateSystem(
        horizontal=gaussian_grid(truncation),
        vertical=sigma_coordinates.SigmaCoordinates.equidistant(sigma_layers),
    )
    physics_specs = primitive_equations.PrimitiveEquationsSpecs.from_si()
    reference_temperature = np.full(
        (sigma_layers,), physics_specs.nondimensionalize(288.0 * UNITS.degK)
    )
    flat_orography = jnp.zeros(coords.horizontal.modal_shape)
    dynamics = primitive_equations.PrimitiveEquationsSigma(
        reference_temperature, flat_orography, coords, physics_specs
    )
    forcing = held_suarez.HeldSuarezForcingSigma(
        coords=coords,
        physics_specs=physics_specs,
        reference_temperature=reference_temperature,
        p0=REFERENCE_SURFACE_PRESSURE_PA * UNITS.pascal,
    )
    dt = physics_specs.nondimensionalize(time_step_minutes * UNITS.minute)
    step = time_integration.imex_rk_sil3(
        time_integration.compose_equations([dynamics, forcing]), dt
    )
    step = time_integration.step_with_filters(
        step,
        [
            time_integration.exponential_step_filter(
                coords.horizontal, dt, tau=FILTER_TAU, order=FILTER_ORDER, cutoff=FILTER_CUTOFF
            ),
        ],
    )
    steps_per_day = round(24 * 60 / time_step_minutes)
    return HeldSuarezModel(coords, physics_specs, reference_temperature, step, steps_per_day)


def initial_state(
    model: HeldSuarezModel, seed: int, perturbation_pa: float
) -> primitive_equations.State:
    """An isothermal atmosphere at rest, surface pressure 1000 hPa plus a local bump.

    The bump (position drawn from `seed`) breaks the zonal symmetry that the
    forcing alone would keep; baroclinic instability takes it from there.
    """
    # The returned auxiliary features (flat orography, 288 K reference
    # temperature) are the ones `build_model` already uses.
    state_fn, _ = primitive_equations_states.isothermal_rest_atmosphere(
        coords=model.coords,
        physics_specs=model.physics_specs,
        tref=288.0 * UNITS.degK,
        p0=REFERENCE_SURFACE_PRESSURE_PA * UNITS.pascal,
        p1=perturbation_pa * UNITS.pascal,
    )
    return state_fn(jax.random.PRNGKey(seed))


@functools.cache
def one_day_advance(
    model: HeldSuarezModel,
) -> Callable[[primitive_equations.State], primitive_equations.State]:
    """A jitted function advancing a state by one day (no output)."""
    return jax.jit(time_integration.repeated(model.step, model.steps_per_day))


def transfer_state(
    state: primitive_equations.State, source: HeldSuarezModel, target: HeldSuarezModel
) -> primitive_equations.State:
    """Moves a state to another truncation with the same sigma levels.

    The source expansion is evaluated on the target's Gaussian nodes and
    analysed there: exact for a finer target (the new wavenumbers start at
    zero), a spectral truncation for a coarser one.
    """
    if source.coords.vertical != target.coords.vertical:
        raise ValueError("transfer_state needs the same sigma levels")
    if source.coords.horizontal == target.coords.horizontal:
        return state
    target_grid = target.coords.horizontal
    source_on_target_nodes = dataclasses.replace(
        source.coords.horizontal,
        longitude_nodes=target_grid.longitude_nodes,
        latitude_nodes=target_grid.latitude_nodes,
    )

    def transfer(field):
        return target_grid.to_modal(source_on_target_nodes.to_nodal(field))

    return primitive_equations.State(
        **{name: transfer(getattr(state, name)) for name in STATE_FIELDS}
    )


def state_to_arrays(state: primitive_equations.State) -> dict[str, np.ndarray]:
    """The state's modal fields as numpy arrays, for saving."""
    return {name: np.asarray(getattr(state, name)) for name in STATE_FIELDS}


def state_from_arrays(
    arrays: dict[str, np.ndarray], model: HeldSuarezModel
) -> primitive_equations.State:
    """Inverse of `state_to_arrays`; checks the shapes against the model."""
    expected = model.coords.modal_shape
    for name in STATE_FIELDS:
        shape = arrays[name].shape
        if name == "log_surface_pressure":
            if shape != (1,) + expected[1:]:
                raise ValueError(f"saved {name} has shape {shape}, expected {(1,) + expected[1:]}")
        elif shape != expected:
            raise ValueError(f"saved {name} has shape {shape}, expected {expected}")
    return primitive_equations.State(**{name: jnp.asarray(arrays[name]) for name in STATE_FIELDS})
