"""A smooth random field added to a stochastic network's inputs (ModelConfig.noise_kind
"global+field"): an ablation of FGN's global-only noise, closer to the spatially
correlated input perturbations of classical ensembles.

The field is low-pass filtered white noise: Gaussian coefficients of a truncated
Fourier basis on the sphere's grid,

    f(theta, lambda) = sum_{n <= K, |m| <= K} a_nm phi_n,m(theta, lambda) / sqrt(N),
    phi_n,m = cos(n theta) * trig_m(lambda) * (sin(theta) if m != 0 else 1),

theta the colatitude of the (assumed equiangular, pole to pole) grid rows, trig_m the
cosine (m >= 0) or sine (m < 0) of m lambda, each phi scaled to unit mean square over
the grid, N the number of coefficients: f has unit variance on average over the grid,
correlation lengths of about a quarter of the globe, and no seam at the date line;
the sin(theta) taper keeps the longitude-dependent modes single-valued at the poles.
Smoothness, not exact isotropy, is what the ablation needs.

The coefficients a are the last N_FIELD_COEFFICIENTS entries of the network's noise
vector, so the field is as reproducible as the rest of the noise (stmodel.model.noise).
Its amplitude is learned per channel and starts at zero: a warm-started network is
exactly the deterministic one.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from flax import nnx

FIELD_WAVENUMBER = 4  # K: the largest wavenumber in latitude and in longitude
N_LAT_MODES = FIELD_WAVENUMBER + 1  # n = 0 .. K
N_LON_MODES = 2 * FIELD_WAVENUMBER + 1  # cos m lambda (m = 0 .. K), sin m lambda (m = 1 .. K)
N_FIELD_COEFFICIENTS = N_LAT_MODES * N_LON_MODES


@functools.lru_cache(maxsize=8)
def field_basis(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray]:
    """(lat [n, m, lat], lon [m, lon]) factors of phi_n,m, scaled so that each product has
    unit mean square over the grid and the sum over all N of them unit mean variance."""
    colatitude = np.pi * (np.arange(n_lat) + 0.5) / n_lat
    longitude = 2 * np.pi * np.arange(n_lon) / n_lon
    wavenumbers = np.arange(FIELD_WAVENUMBER + 1)
    lon = np.concatenate(
        [np.cos(wavenumbers[:, None] * longitude), np.sin(wavenumbers[1:, None] * longitude)]
    )  # [m, lon]
    tapered = np.arange(N_LON_MODES) != 0  # every mode but m = 0 depends on longitude
    lat = np.cos(wavenumbers[:, None, None] * colatitude)  # [n, 1, lat]
    lat = lat * np.where(tapered[:, None], np.sin(colatitude), 1.0)  # [n, m, lat]
    lat = lat / np.sqrt(np.mean(lat**2, axis=-1, keepdims=True))
    lon = lon / np.sqrt(np.mean(lon**2, axis=-1, keepdims=True))
    lat = lat / np.sqrt(N_FIELD_COEFFICIENTS)
    return lat.astype(np.float32), lon.astype(np.float32)


def smooth_field(coefficients: jnp.ndarray, grid: tuple[int, int]) -> jnp.ndarray:
    """coefficients [batch, N_FIELD_COEFFICIENTS] -> field [batch, lat, lon], float32."""
    lat_basis, lon_basis = field_basis(*grid)
    a = coefficients.astype(jnp.float32).reshape(-1, N_LAT_MODES, N_LON_MODES)  # [batch, n, m]
    return jnp.einsum("bnm,nmy,mx->byx", a, lat_basis, lon_basis)  # [batch, lat, lon]


class InputNoiseField(nnx.Module):
    """Adds the smooth field, scaled per channel, to the normalised upper-air and surface
    inputs; the scales start at zero and draw from no RNG stream."""

    def __init__(self, n_levels: int, n_upper_vars: int, n_surface_vars: int):
        self.upper_scale = nnx.Param(jnp.zeros((n_levels, n_upper_vars), jnp.float32))
        self.surface_scale = nnx.Param(jnp.zeros((n_surface_vars,), jnp.float32))

    def __call__(
        self, upper: jnp.ndarray, surface: jnp.ndarray, coefficients: jnp.ndarray
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """upper [batch, level, lat, lon, var], surface [batch, lat, lon, var],
        coefficients [batch, N_FIELD_COEFFICIENTS] -> (upper, surface) plus the field."""
        field = smooth_field(coefficients, surface.shape[1:3])  # [batch, lat, lon]
        upper_scale = self.upper_scale[...][:, None, None, :]  # [level, 1, 1, var]
        upper = upper + field[:, None, :, :, None] * upper_scale
        surface = surface + field[..., None] * self.surface_scale[...]
        return upper, surface
