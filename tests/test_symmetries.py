"""Symmetry augmentation: only on data that declares it, exact transforms, reproducible."""

import numpy as np
import pytest
from data_styles import truth

from stmodel.data.pipeline import (
    Augmentation,
    BatchStream,
    SampleSource,
    SplitPeriod,
    default_layout,
)
from stmodel.data.symmetries import (
    LONGITUDE_ROLL,
    MIRROR_SIGN_FLIP_ATTRIBUTE,
    NORTH_SOUTH_MIRROR,
    SYMMETRIES_ATTRIBUTE,
)
from stmodel.errors import DataError

PERIOD = SplitPeriod("2001-01-01", "2001-01-04")
BOTH = (LONGITUDE_ROLL, NORTH_SOUTH_MIRROR)


def _dataset(declare: bool):
    ds = truth(n_times=16)
    ds["v_component_of_wind"] = ds["u_component_of_wind"] * 0.5 + 1.0
    if declare:
        ds.attrs[SYMMETRIES_ATTRIBUTE] = " ".join(BOTH)
        ds.attrs[MIRROR_SIGN_FLIP_ATTRIBUTE] = "v_component_of_wind"
    return ds


def _stream(ds, symmetries, seed=0):
    source = SampleSource(ds, default_layout(ds), PERIOD, dt_hours=6, n_target_steps=2)
    return BatchStream(
        source, 4, seed=seed, augmentation=Augmentation.for_source(symmetries, source, ds)
    )


def test_data_without_the_declaration_is_refused_with_one_line():
    ds = _dataset(declare=False)
    with pytest.raises(DataError, match="declares none") as raised:
        _stream(ds, [LONGITUDE_ROLL])
    assert "\n" not in str(raised.value) and SYMMETRIES_ATTRIBUTE in str(raised.value)
    ds.attrs[SYMMETRIES_ATTRIBUTE] = LONGITUDE_ROLL
    _stream(ds, [LONGITUDE_ROLL])  # declared: accepted
    with pytest.raises(DataError, match=NORTH_SOUTH_MIRROR):
        _stream(ds, BOTH)
    with pytest.raises(DataError, match="unknown symmetry"):
        _stream(_dataset(declare=True), ["time_reversal"])


def test_mirror_needs_latitudes_symmetric_about_the_equator():
    ds = _dataset(declare=True).isel(lat=slice(1, None))
    with pytest.raises(DataError, match="symmetric about the equator"):
        _stream(ds, BOTH)


def test_each_sample_is_a_roll_or_mirror_of_the_plain_one_applied_alike_to_all_its_times():
    ds = _dataset(declare=True)
    plain, augmented = _stream(ds, []), _stream(ds, BOTH)
    layout = augmented.source.layout
    v = layout.upper_air.index("v_component_of_wind")
    sign = np.ones(len(layout.upper_air), np.float32)
    sign[v] = -1
    mirrored_any = rolled_any = False
    for step in range(3):
        a, b = plain.batch(step), augmented.batch(step)
        for i in range(a.inputs_upper.shape[0]):
            # [time, level, lat, lon, var]: input and both targets together
            x = np.concatenate([a.inputs_upper[i][None], a.targets_upper[i]])
            y = np.concatenate([b.inputs_upper[i][None], b.targets_upper[i]])
            matches = [
                (shift, mirror)
                for shift in range(x.shape[-2])
                for mirror in (0, 1)
                if np.array_equal(
                    np.roll(x[..., ::-1, :, :] * sign if mirror else x, shift, axis=-2), y
                )
            ]
            assert matches, f"step {step} sample {i} is not a roll or mirror of the plain one"
            mirrored_any |= any(m for _, m in matches)
            rolled_any |= any(s for s, _ in matches)
        np.testing.assert_array_equal(a.constants, b.constants)  # the grid's, never moved
    assert mirrored_any and rolled_any


def test_augmentation_depends_only_on_seed_and_step():
    ds = _dataset(declare=True)
    first, again, other = _stream(ds, BOTH), _stream(ds, BOTH), _stream(ds, BOTH, seed=1)
    np.testing.assert_array_equal(first.batch(5).inputs_upper, again.batch(5).inputs_upper)
    assert not np.array_equal(first.batch(5).inputs_upper, other.batch(5).inputs_upper)
