"""`stmodel bench pipeline`: samples per second the sample pipeline delivers."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from stmodel.data.pipeline import (
    DEFAULT_IN_MEMORY_BYTES,
    BatchStream,
    SampleSource,
    default_layout,
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
