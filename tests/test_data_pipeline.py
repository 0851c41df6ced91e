import numpy as np
import pytest
from data_styles import truth, write_cds

from stmodel.data.pipeline import (
    BatchStream,
    SampleSource,
    SplitPeriod,
    default_layout,
    split_periods,
)
from stmodel.data.readers import open_canonical
from stmodel.errors import DataError

PERIOD = SplitPeriod("2001-01-01", "2001-01-07")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    ds = truth(n_times=28)
    ds.attrs.update(train_period="2001-01-01/2001-01-05", validation_period="2001-01-06/2001-01-07")
    return open_canonical([write_cds(ds, tmp_path_factory.mktemp("pipe") / "cds.nc")])


@pytest.fixture(scope="module")
def source(dataset):
    return SampleSource(dataset, default_layout(dataset), PERIOD, dt_hours=6, n_target_steps=2)


def test_layout_and_shapes(dataset, source):
    layout = source.layout
    assert layout.upper_air == ("geopotential", "temperature", "u_component_of_wind")
    assert layout.surface == ("2m_temperature", "surface_pressure")
    assert layout.constants == ("sin_lat", "cos_lat", "sin_lon", "cos_lon")
    batch = BatchStream(source, batch_size=3).batch(0)
    assert batch.inputs_upper.shape == (3, 4, 8, 16, 3)  # [batch, level, lat, lon, var]
    assert batch.inputs_surface.shape == (3, 8, 16, 2)  # [batch, lat, lon, var]
    assert batch.targets_upper.shape == (3, 2, 4, 8, 16, 3)  # [batch, step, level, lat, lon, var]
    assert batch.targets_surface.shape == (3, 2, 8, 16, 2)
    assert batch.constants.shape == (8, 16, 4)
    assert batch.inputs_upper.dtype == np.float32


def test_targets_are_the_states_dt_later(dataset, source):
    stream = BatchStream(source, batch_size=2, seed=3)
    batch = stream.batch(1)
    for i, t in enumerate(batch.input_time.astype("datetime64[s]")):
        for k in range(2):
            when = t + np.timedelta64(6 * (k + 1), "h")
            np.testing.assert_array_equal(
                batch.targets_upper[i, k, :, :, :, 1], dataset["temperature"].sel(time=when).values
            )
            np.testing.assert_array_equal(
                batch.targets_surface[i, k, :, :, 0],
                dataset["2m_temperature"].sel(time=when).values,
            )
        np.testing.assert_array_equal(
            batch.inputs_upper[i, :, :, :, 0], dataset["geopotential"].sel(time=t).values
        )


def test_number_of_samples_respects_period_and_steps(source):
    # 7 days of 6-hourly data = 28 times; the last 2 have no 12 h target inside the period.
    assert len(source) == 26
    assert source.sample_times[-1] == np.datetime64("2001-01-07T06:00")


def test_deterministic_and_resumable(source):
    first = [b.input_time for b, _ in zip(BatchStream(source, 4, seed=7), range(9))]
    again = [b.input_time for b, _ in zip(BatchStream(source, 4, seed=7), range(9))]
    resumed = [b.input_time for b, _ in zip(BatchStream(source, 4, seed=7, start_step=5), range(4))]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert all(np.array_equal(a, b) for a, b in zip(first[5:], resumed))
    other = [b.input_time for b, _ in zip(BatchStream(source, 4, seed=8), range(9))]
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_epochs_cover_every_sample_once(source):
    stream = BatchStream(source, 2, seed=1)
    seen = np.concatenate([stream.global_sample_ids(s) for s in range(stream.steps_per_epoch)])
    assert sorted(seen) == list(range(len(source)))


def test_processes_read_disjoint_shares_of_the_global_batch(source):
    streams = [BatchStream(source, 4, seed=2, process_index=i, process_count=2) for i in range(2)]
    for step in range(3):
        shares = [s.local_sample_ids(step) for s in streams]
        assert len(shares[0]) == 2 and not set(shares[0]) & set(shares[1])
        np.testing.assert_array_equal(np.concatenate(shares), streams[0].global_sample_ids(step))


def test_lazy_reading_equals_in_memory(dataset, source):
    lazy = SampleSource(dataset, source.layout, PERIOD, n_target_steps=2, in_memory_bytes=0)
    a, b = BatchStream(source, 3, seed=4).batch(2), BatchStream(lazy, 3, seed=4).batch(2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_split_periods_from_attributes(dataset):
    periods = split_periods(dataset)
    assert periods["train"] == SplitPeriod("2001-01-01", "2001-01-05")
    assert "test" not in periods


def test_errors(dataset, source):
    with pytest.raises(DataError, match="no samples"):
        SampleSource(dataset, source.layout, SplitPeriod("1990-01-01", "1990-02-01"))
    with pytest.raises(DataError, match="multiple of the number of processes"):
        BatchStream(source, 3, process_count=2)
    with pytest.raises(DataError, match="does not divide"):
        SampleSource(dataset, source.layout, PERIOD, dt_hours=9)


def test_zarr_and_netcdf_inputs_give_the_same_batches_read_ahead(tmp_path):
    from data_styles import write_weatherbench2

    from stmodel.data.pipeline import read_ahead

    ds = truth(n_times=28)
    batches = {}
    for suffix in (".nc", ".zarr"):
        data = open_canonical([write_weatherbench2(ds, tmp_path / f"wb2{suffix}")])
        lazy = SampleSource(data, default_layout(data), PERIOD, in_memory_bytes=0)
        stream = BatchStream(lazy, 4, seed=5)
        serial = [stream.batch(s) for s in range(3, 9)]
        for depth in (0, 1, 2, 4):  # threads finish out of order; batches come in step order
            for a, b in zip(serial, read_ahead(stream.batch, 3, 9, depth), strict=True):
                for x, y in zip(a, b):
                    np.testing.assert_array_equal(x, y)
        batches[suffix] = serial
    for a, b in zip(batches[".nc"], batches[".zarr"]):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_a_closed_reader_stops_reading():
    from stmodel.data.pipeline import read_ahead

    asked = []
    reader = read_ahead(lambda s: asked.append(s) or s, 0, 100, 3)
    assert [next(reader) for _ in range(2)] == [0, 1]
    reader.close()
    assert sorted(asked) == list(range(len(asked))) and len(asked) <= 5


def test_synthetic_store_benchmark_reads_it_with_prefetch(tmp_path):
    from stmodel.benchmarks.pipeline import benchmark_prefetch, make_synthetic_store

    store = make_synthetic_store(tmp_path / "s.zarr", grid=(10, 20), days=2)
    data = open_canonical([store])
    assert data["geopotential"].shape == (8, 13, 10, 20) and len(data.data_vars) == 10
    result = benchmark_prefetch(store, n_batches=3, depths=(0, 2))
    assert [run["prefetch"] for run in result["runs"]] == [0, 2]
    assert result["channels"] == 70 and all(run["mb_per_s"] > 0 for run in result["runs"])
    need = result["needed"]
    assert need["assumed_mfu"] == 0.4 and need["assumed_peak_flops"] == 989e12
    assert need["needed_samples_per_s_per_accelerator"] > 0
