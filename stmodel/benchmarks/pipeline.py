"""`stmodel bench pipeline`: samples per second the sample pipeline delivers, and (on a
synthetic 1 deg Zarr store) whether reading with prefetch keeps an accelerator fed."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stmodel.data import canonical
from stmodel.data.pipeline import (
    DEFAULT_IN_MEMORY_BYTES,
    UPPER_AIR_ORDER,
    BatchStream,
    SampleSource,
    SplitPeriod,
    default_layout,
    read_ahead,
    split_periods,
)
from stmodel.data.readers import open_canonical


def _throughput(source: SampleSource, batch_size: int, n_batches: int) -> float:
    stream = iter(BatchStream(source, batch_size, seed=0))
    next(stream)  # the reader thread is up
    start = time.perf_counter()
    for _ in range(n_batches):
        next(stream)
    return n_batches * batch_size / (time.perf_counter() - start)


def benchmark_pipeline(
    paths: Sequence[str | Path], batch_size: int = 2, n_batches: int = 200, lazy_batches: int = 20
) -> dict:
    """Load time and samples per second, in memory and read lazily; a JSON-ready dict."""
    ds = open_canonical(paths)
    layout = default_layout(ds)
    period = split_periods(ds)["train"]
    start = time.perf_counter()
    in_memory = SampleSource(ds, layout, period, in_memory_bytes=DEFAULT_IN_MEMORY_BYTES)
    load_s = time.perf_counter() - start
    lazy = SampleSource(ds, layout, period, in_memory_bytes=0)
    return {
        "benchmark": "pipeline",
        "data": [str(p) for p in paths],
        "samples": len(in_memory),
        "batch_size": batch_size,
        "in_memory": in_memory._upper is not None,
        "load_s": load_s,
        "in_memory_samples_per_s": _throughput(in_memory, batch_size, n_batches),
        "lazy_samples_per_s": _throughput(lazy, batch_size, lazy_batches),
        "load_average": list(os.getloadavg()),
    }


# The accelerator the input has to keep fed, and the assumptions behind its step time.
H100_BF16_DENSE_PEAK_FLOPS = 989e12  # H100 SXM, bf16 dense tensor cores (no sparsity)
ASSUMED_MFU = 0.40
SYNTHETIC_LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
SYNTHETIC_SURFACE = (
    "2m_temperature",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
    "surface_pressure",
)


def make_synthetic_store(
    path: str | Path,
    *,
    grid: tuple[int, int] = (181, 360),
    days: int = 14,
    levels: Sequence[int] = SYNTHETIC_LEVELS,
    surface: Sequence[str] = SYNTHETIC_SURFACE,
    seed: int = 0,
) -> Path:
    """A WeatherBench-2-style Zarr store of smooth fields plus noise: the 5 upper-air
    variables on `levels` and the `surface` fields, float32, 6-hourly for `days`, one time
    step per chunk (the default: 1 deg, 13 levels, 70 channels, ~18 MB per time step)."""
    import dask.array
    import xarray as xr

    path = Path(path)
    n_lat, n_lon = grid
    lat = np.linspace(-90, 90, n_lat)
    lon = np.arange(n_lon) * 360.0 / n_lon
    times = np.datetime64("2020-01-01T00", "ns") + np.arange(days * 4) * np.timedelta64(6, "h")
    upper_dims = ("time", "level", "latitude", "longitude")
    surface_dims = ("time", "latitude", "longitude")
    shapes = {
        upper_dims: (len(times), len(levels), n_lat, n_lon),
        surface_dims: (len(times), n_lat, n_lon),
    }
    names = {**dict.fromkeys(UPPER_AIR_ORDER, upper_dims), **dict.fromkeys(surface, surface_dims)}
    template = xr.Dataset(
        {
            name: (
                dims,
                dask.array.zeros(shapes[dims], np.float32, chunks=(1, *shapes[dims][1:])),
                {"units": canonical.UNITS.get(name, "1")},
            )
            for name, dims in names.items()
        },
        coords={
            "time": times,
            "level": np.asarray(levels, np.int32),
            "latitude": lat,
            "longitude": lon,
        },
    )
    template.to_zarr(path, mode="w", compute=False, zarr_format=2)
    rng = np.random.default_rng(seed)
    pattern = np.cos(np.deg2rad(lat))[:, None] * np.sin(np.deg2rad(lon))[None, :]
    for i in range(len(times)):
        step = {}
        for k, (name, dims) in enumerate(names.items()):
            shape = shapes[dims][1:]
            field = np.roll(pattern, i + k, axis=-1) * (10.0 + k)
            noise = rng.standard_normal(shape, dtype=np.float32)
            step[name] = (dims, (field + noise)[None].astype(np.float32))
        xr.Dataset(step).to_zarr(path, region={"time": slice(i, i + 1)})
    return path


def pangu_step_estimate(
    peak_flops: float = H100_BF16_DENSE_PEAK_FLOPS, mfu: float = ASSUMED_MFU
) -> dict:
    """The training step time of the `pangu` preset (0.25 deg, batch 1 per accelerator)
    from its analytic FLOPs at an assumed MFU, and the input it consumes per second."""
    from stmodel.benchmarks.flops import analytic_train_step_flops
    from stmodel.model.config import ModelConfig

    config = ModelConfig.preset("pangu")
    flops = analytic_train_step_flops(config, batch=1)
    step_s = flops / (peak_flops * mfu)
    channels = config.n_upper_vars * config.n_levels + config.n_surface_vars
    sample_bytes = 2 * channels * config.grid[0] * config.grid[1] * 4  # input + target, f32
    return {
        "model_preset": "pangu",
        "grid": list(config.grid),
        "channels": channels,
        "train_step_flops_per_sample": flops,
        "accelerator": "NVIDIA H100 SXM",
        "assumed_peak_flops": peak_flops,
        "assumed_peak_note": "bf16 dense tensor-core peak (no sparsity)",
        "assumed_mfu": mfu,
        "step_s_per_sample": step_s,
        "needed_samples_per_s_per_accelerator": 1 / step_s,
        "sample_mb": sample_bytes / 1e6,
        "needed_mb_per_s_per_accelerator": sample_bytes / step_s / 1e6,
        "needed_mb_per_s_per_8_accelerator_host": 8 * sample_bytes / step_s / 1e6,
    }


def benchmark_prefetch(
    store: str | Path,
    *,
    batch_size: int = 1,
    n_batches: int = 16,
    depths: Sequence[int] = (0, 2, 4),
    peak_flops: float = H100_BF16_DENSE_PEAK_FLOPS,
    mfu: float = ASSUMED_MFU,
) -> dict:
    """Samples/s and MB/s of training batches read lazily from `store` (BatchStream.batch,
    as training reads them) through the training loop's reader at each read-ahead depth,
    against what the `pangu` preset needs on an H100 at the assumed MFU."""
    ds = open_canonical([store])
    layout = default_layout(ds)
    times = ds["time"].values
    period = SplitPeriod(str(times[0])[:19], str(times[-1])[:19])
    source = SampleSource(ds, layout, period, in_memory_bytes=0)  # read from disk each time
    stream = BatchStream(source, batch_size, seed=0)
    channels = len(layout.upper_air) * len(layout.levels) + len(layout.surface)
    sample_bytes = 2 * channels * ds.sizes["lat"] * ds.sizes["lon"] * 4  # input + target
    stream.batch(0)  # opened, warmed up
    runs = []
    for depth in depths:
        start = time.perf_counter()
        for batch in read_ahead(stream.batch, 1, 1 + n_batches, depth):
            assert batch.inputs_upper.shape[0] == batch_size
        seconds = time.perf_counter() - start
        samples_per_s = n_batches * batch_size / seconds
        runs.append(
            {
                "prefetch": depth,
                "samples_per_s": samples_per_s,
                "mb_per_s": samples_per_s * sample_bytes / 1e6,
            }
        )
    need = pangu_step_estimate(peak_flops, mfu)
    best = max(runs, key=lambda r: r["mb_per_s"])
    # Reading scales with bytes, so the 1 deg store's MB/s stands for the 0.25 deg data's.
    return {
        "benchmark": "pipeline-prefetch",
        "store": str(store),
        "grid": [ds.sizes["lat"], ds.sizes["lon"]],
        "levels": len(layout.levels),
        "channels": channels,
        "times": len(times),
        "store_mb_on_disk": sum(p.stat().st_size for p in Path(store).rglob("*") if p.is_file())
        / 1e6,
        "sample_mb": sample_bytes / 1e6,
        "batch_size": batch_size,
        "batches_timed": n_batches,
        "runs": runs,
        "needed": need,
        "best_prefetch": best["prefetch"],
        "keeps_up_per_accelerator": best["mb_per_s"] >= need["needed_mb_per_s_per_accelerator"],
        "keeps_up_per_8_accelerator_host": best["mb_per_s"]
        >= need["needed_mb_per_s_per_8_accelerator_host"],
        "achieved_over_needed_per_accelerator": best["mb_per_s"]
        / need["needed_mb_per_s_per_accelerator"],
        # The same bytes per second in samples of this store's size.
        "needed_samples_per_s_of_this_store": need["needed_mb_per_s_per_accelerator"]
        * 1e6
        / sample_bytes,
        "note": "the store was just written, so it is read from the OS page cache: this "
        "measures decompression and assembly by this host's CPUs, not disk or network "
        "bandwidth",
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }
