"""From a spectral sigma-level state to canonical fields on pressure levels, in JAX.

Between model levels, temperature and winds are linear in ln(p), and
geopotential is integrated hydrostatically from the model level below with
the trapezoid rule in ln(p), the model's own discretisation, so the written
geopotential is hydrostatically consistent with the written temperature.

Pressure levels outside the model levels (with 24 layers the lowest sigma
level is at 0.979 ps, so chiefly 1000 hPa, and 925 hPa where ps < 945 hPa) are
filled the way ECMWF fills levels below the ground:

* below the lowest model level (including below the surface, p > ps):
  temperature follows the standard-atmosphere lapse rate of 6.5 K/km down
  from the lowest model level, T = T_L (p / p_L)^(R Gamma / g); geopotential is
  the hydrostatic integral of that profile,
  Phi = Phi_L - (g T_L / Gamma) ((p / p_L)^(R Gamma / g) - 1); winds keep their
  lowest-model-level values;
* above the highest model level (not reached by the 50 hPa level with 24
  layers): temperature and winds are held, geopotential is integrated
  isothermally.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from dinosaur import primitive_equations, scales, spherical_harmonic

from stmodel.simulation.dynamics import HeldSuarezModel

UNITS = scales.units

# Standard-atmosphere lapse rate used below the lowest model level, K/m.
EXTRAPOLATION_LAPSE_RATE = 6.5e-3

# Names of the fields produced per frame, with their dims (canonical order).
PRESSURE_LEVEL_FIELDS = (
    "geopotential",
    "temperature",
    "u_component_of_wind",
    "v_component_of_wind",
)
SURFACE_FIELDS = (
    "surface_pressure",
    "lowest_model_level_temperature",
    "lowest_model_level_u_component_of_wind",
    "lowest_model_level_v_component_of_wind",
)


def interpolate_to_pressure(
    temperature: jax.Array,
    geopotential: jax.Array,
    winds: Sequence[jax.Array],
    surface_pressure: jax.Array,
    sigma_centers: np.ndarray,
    pressure_levels: np.ndarray,
    gas_constant: float,
    gravity: float,
) -> tuple[jax.Array, jax.Array, list[jax.Array]]:
    """Interpolates one column set from sigma to pressure levels (SI units).

    Args:
      temperature: [sigma, lat, lon] K.
      geopotential: [sigma, lat, lon] m2/s2, hydrostatic on the sigma levels.
      winds: fields [sigma, lat, lon] interpolated like temperature but held
        constant beyond the model levels.
      surface_pressure: [lat, lon] Pa.
      sigma_centers: [sigma] ascending (top to bottom).
      pressure_levels: [level] Pa, any order.
      gas_constant: dry-air gas constant R, J/kg/K.
      gravity: m/s2.

    Returns:
      temperature, geopotential and the winds on [level, lat, lon].
    """
    log_sigma = jnp.asarray(np.log(sigma_centers), temperature.dtype)  # [sigma]
    target = jnp.log(
        jnp.asarray(pressure_levels, temperature.dtype)[:, None, None] / surface_pressure[None]
    )  # [level, lat, lon], ln(p / ps)
    layers = log_sigma.shape[0]
    # Index of the model level just below (higher pressure than) each target.
    below = jnp.clip(jnp.searchsorted(log_sigma, target, side="right"), 1, layers - 1)
    above = below - 1
    log_sigma_above = log_sigma[above]
    log_sigma_below = log_sigma[below]
    weight_below = jnp.clip(
        (target - log_sigma_above) / (log_sigma_below - log_sigma_above), 0.0, 1.0
    )

    def linear(field):
        field_above = jnp.take_along_axis(field, above, axis=0)
        field_below = jnp.take_along_axis(field, below, axis=0)
        return field_above + weight_below * (field_below - field_above)

    interior_temperature = linear(temperature)
    # Hydrostatic from the level below with the trapezoid rule in ln(p).
    interior_geopotential = jnp.take_along_axis(
        geopotential, below, axis=0
    ) + gas_constant * 0.5 * (
        interior_temperature + jnp.take_along_axis(temperature, below, axis=0)
    ) * (log_sigma_below - target)

    # Below the lowest model level: standard lapse rate.
    exponent = gas_constant * EXTRAPOLATION_LAPSE_RATE / gravity
    pressure_ratio = jnp.exp(target - log_sigma[-1])  # p / p_lowest
    lowest_temperature = temperature[-1][None]
    lapse_temperature = lowest_temperature * pressure_ratio**exponent
    lapse_geopotential = geopotential[-1][None] - (
        gravity * lowest_temperature / EXTRAPOLATION_LAPSE_RATE
    ) * (pressure_ratio**exponent - 1.0)

    # Above the highest model level: isothermal.
    top_geopotential = geopotential[0][None] + gas_constant * temperature[0][None] * (
        log_sigma[0] - target
    )

    is_below = target > log_sigma[-1]
    is_above = target < log_sigma[0]
    out_temperature = jnp.where(is_below, lapse_temperature, interior_temperature)
    out_geopotential = jnp.where(
        is_below, lapse_geopotential, jnp.where(is_above, top_geopotential, interior_geopotential)
    )
    # The clipped weights already hold the winds constant beyond the ends.
    out_winds = [linear(wind) for wind in winds]
    return out_temperature, out_geopotential, out_winds


def make_frame_fn(
    model: HeldSuarezModel,
    output_grid: spherical_harmonic.Grid,
    pressure_levels_hpa: Sequence[int],
) -> Callable[[primitive_equations.State], dict[str, jax.Array]]:
    """Returns state -> {name: float32 SI field}, on `output_grid` in (lat, lon) order.

    Pressure-level fields are [level, lat, lon] in the order of
    `pressure_levels_hpa`; surface fields are [lat, lon].
    """
    specs = model.physics_specs
    to_si = lambda value, unit: float(specs.dimensionalize(value, unit).magnitude)
    kelvin_per_unit = to_si(1.0, UNITS.degK)
    speed_per_unit = to_si(1.0, UNITS.m / UNITS.s)
    log_pascal_per_unit = float(np.log(to_si(1.0, UNITS.pascal)))
    gas_constant = to_si(specs.R, UNITS.J / UNITS.kg / UNITS.degK)
    gravity = to_si(specs.g, UNITS.m / UNITS.s**2)
    sigma = model.coords.vertical
    pressure_levels_pa = 100.0 * np.asarray(pressure_levels_hpa, np.float64)
    reference_temperature = jnp.asarray(model.reference_temperature)[:, None, None]

    def lat_lon(nodal):  # dinosaur's nodal order is [..., lon, lat]
        return jnp.swapaxes(nodal, -1, -2)

    def frame(state: primitive_equations.State) -> dict[str, jax.Array]:
        temperature = kelvin_per_unit * lat_lon(
            output_grid.to_nodal(state.temperature_variation) + reference_temperature
        )  # [sigma, lat, lon]
        u, v = spherical_harmonic.vor_div_to_uv_nodal(
            output_grid, state.vorticity, state.divergence
        )
        u = speed_per_unit * lat_lon(u)  # [sigma, lat, lon]
        v = speed_per_unit * lat_lon(v)
        # Shift the log before exp: nondimensional pressures are ~1e19.
        surface_pressure = jnp.exp(
            lat_lon(output_grid.to_nodal(state.log_surface_pressure))[0] + log_pascal_per_unit
        )  # [lat, lon]
        # Flat surface: geopotential at the surface is zero.
        geopotential = primitive_equations.get_geopotential_diff_sigma(
            temperature, sigma, gas_constant
        )  # [sigma, lat, lon]
        level_temperature, level_geopotential, (level_u, level_v) = interpolate_to_pressure(
            temperature,
            geopotential,
            (u, v),
            surface_pressure,
            sigma.centers,
            pressure_levels_pa,
            gas_constant,
            gravity,
        )
        fields = {
            "geopotential": level_geopotential,
            "temperature": level_temperature,
            "u_component_of_wind": level_u,
            "v_component_of_wind": level_v,
            "surface_pressure": surface_pressure,
            "lowest_model_level_temperature": temperature[-1],
            "lowest_model_level_u_component_of_wind": u[-1],
            "lowest_model_level_v_component_of_wind": v[-1],
        }
        return {name: value.astype(jnp.float32) for name, value in fields.items()}

    return frame
