"""Exact symmetries a dataset declares, and training augmentation that uses them.

The built-in Held-Suarez planet has no orography, land or seasons and is forced
symmetrically about the equator, so a longitude roll of any state is another
valid state, and so is its north-south mirror with the meridional wind negated.
Real reanalyses have neither symmetry. A dataset declares what holds in its
global attributes; augmentation refuses data that does not declare what it
asks for, because an invalid transform would teach the model a wrong planet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from stmodel.data.layout import Batch, VariableLayout
from stmodel.errors import DataError

SYMMETRIES_ATTRIBUTE = "symmetries"
# Variables that change sign under the north-south mirror (space separated).
MIRROR_SIGN_FLIP_ATTRIBUTE = "north_south_mirror_sign_flip"
LONGITUDE_ROLL = "longitude_roll"
NORTH_SOUTH_MIRROR = "north_south_mirror"
KNOWN = (LONGITUDE_ROLL, NORTH_SOUTH_MIRROR)


def declared_symmetries(attrs: Mapping) -> tuple[str, ...]:
    """The symmetries named in a dataset's attributes (empty when it declares none)."""
    return tuple(str(attrs.get(SYMMETRIES_ATTRIBUTE, "")).split())


def check_augmentation(
    requested: Sequence[str], attrs: Mapping, layout: VariableLayout, lat: np.ndarray, where: str
) -> tuple[str, ...]:
    """Returns the sign-flipping variables; DataError unless the data declare `requested`."""
    unknown = sorted(set(requested) - set(KNOWN))
    if unknown:
        raise DataError(
            f"augment: unknown symmetry {', '.join(unknown)}; known: {', '.join(KNOWN)}"
        )
    declared = declared_symmetries(attrs)
    missing = [name for name in requested if name not in declared]
    if missing:
        said = f"declares only {', '.join(declared)}" if declared else "declares none"
        raise DataError(
            f"{where}: augment={list(requested)} needs the data to declare "
            f"{', '.join(missing)} in its global attribute {SYMMETRIES_ATTRIBUTE!r}, but it "
            f"{said}. Real reanalyses have neither symmetry (land, orography, seasons); "
            "train without augment on such data"
        )
    flipped = tuple(str(attrs.get(MIRROR_SIGN_FLIP_ATTRIBUTE, "")).split())
    if NORTH_SOUTH_MIRROR in requested:
        lat = np.asarray(lat, np.float64)
        if not np.allclose(lat, -lat[::-1], atol=1e-6):
            raise DataError(
                f"{where}: augment north_south_mirror needs latitudes symmetric "
                f"about the equator; got {lat[0]:g} .. {lat[-1]:g}"
            )
        unknown_flip = sorted(set(flipped) - set(layout.upper_air) - set(layout.surface))
        if unknown_flip:
            raise DataError(
                f"{where}: attribute {MIRROR_SIGN_FLIP_ATTRIBUTE!r} names "
                f"{', '.join(unknown_flip)}, which the data do not hold"
            )
    return flipped


def augment(
    batch: Batch,
    layout: VariableLayout,
    symmetries: Sequence[str],
    sign_flip: Sequence[str],
    rngs: Sequence[np.random.Generator],
) -> Batch:
    """One random transform per sample (rngs[i] draws sample i's), alike for input and targets.

    Constants (position encodings, static fields) are the grid's and stay put:
    the transformed state is simply another state of the same planet.
    """
    upper = np.concatenate([batch.inputs_upper[:, None], batch.targets_upper], axis=1)
    surface = np.concatenate([batch.inputs_surface[:, None], batch.targets_surface], axis=1)
    # upper [batch, time, level, lat, lon, var], surface [batch, time, lat, lon, var]
    upper_sign = np.array([-1.0 if v in sign_flip else 1.0 for v in layout.upper_air], np.float32)
    surface_sign = np.array([-1.0 if v in sign_flip else 1.0 for v in layout.surface], np.float32)
    upper_out, surface_out = np.empty_like(upper), np.empty_like(surface)
    n_lon = upper.shape[-2]
    for i, rng in enumerate(rngs):
        u, s = upper[i], surface[i]
        if LONGITUDE_ROLL in symmetries:
            shift = int(rng.integers(n_lon))
            u, s = np.roll(u, shift, axis=-2), np.roll(s, shift, axis=-2)
        if NORTH_SOUTH_MIRROR in symmetries and rng.random() < 0.5:
            u = u[..., ::-1, :, :] * upper_sign  # lat is axis -3 of [time, level, lat, lon, var]
            s = s[..., ::-1, :, :] * surface_sign  # and of [time, lat, lon, var]
        upper_out[i], surface_out[i] = u, s
    return batch._replace(
        inputs_upper=upper_out[:, 0],
        targets_upper=upper_out[:, 1:],
        inputs_surface=surface_out[:, 0],
        targets_surface=surface_out[:, 1:],
    )
