"""Where the time of a compiled program goes: XLA operations grouped by kind.

Runs the program under ``jax.profiler`` and reads the per-operation events of
the trace (on CPU they exist only when XLA was started with
``--xla_cpu_enable_xprof_traceme=true``, which :func:`enable_cpu_op_events`
adds before the backend starts). Each operation of the optimised HLO is put in
one group: matrix products of the attention windows, other matrix products
(the linear layers), exponentials and reductions (softmax, normalisation),
gathers and scatters (the position bias), and data movement and elementwise
work (everything else: transposes, padding, LayerNorm, GELU, the optimiser).
Durations are summed over threads, so they measure work, not wall time.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any

import jax

TRACE_FLAG = "--xla_cpu_enable_xprof_traceme=true"


def enable_cpu_op_events() -> None:
    """Ask XLA:CPU for per-operation trace events; effective only before jax's backend starts."""
    flags = os.environ.get("XLA_FLAGS", "")
    if TRACE_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {TRACE_FLAG}".strip()


def _hlo_kinds(hlo_text: str) -> dict[str, str]:
    """Group of each named instruction of the optimised HLO module."""
    bodies = {
        m.group(1): m.group(0) for m in re.finditer(r"^%?([\w.\-]+) \(.*?^}", hlo_text, re.S | re.M)
    }
    kinds = {}
    for line in hlo_text.splitlines():
        match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) ([\w\-]+)\(", line)
        if not match:
            continue
        name = match.group(1)
        called = re.search(r"calls=%?([\w.\-]+)", line)
        body = bodies.get(called.group(1), "") if called else line
        ops = set(re.findall(r"= \S+ ([a-z][\w\-]*)\(", body)) | {match.group(3)}
        if "dot" in ops or "convolution" in ops:
            # Attention products are batched over windows and heads; linear layers are not.
            kinds[name] = "attention matmul" if "lhs_batch_dims" in body else "dense matmul"
        elif "gather" in ops or "scatter" in ops:
            kinds[name] = "gather/scatter (position bias)"
        elif "exponential" in ops or "reduce" in ops:
            kinds[name] = "exp and reductions (softmax, norms)"
        else:
            kinds[name] = "data movement and elementwise"
    return kinds


def profile_compiled(compiled: Any, run: Callable[[], Any], *, calls: int = 3) -> dict[str, Any]:
    """Milliseconds per call by operation group, and the share of each, for a compiled program."""
    kinds = _hlo_kinds(compiled.as_text())
    with tempfile.TemporaryDirectory() as directory:
        with jax.profiler.trace(directory, create_perfetto_trace=True):
            for _ in range(calls):
                jax.block_until_ready(run())
        traces = glob.glob(os.path.join(directory, "**", "*.trace.json.gz"), recursive=True)
        if not traces:
            return {"error": "the profiler wrote no trace"}
        with gzip.open(traces[0]) as file:
            events = json.load(file)["traceEvents"]
    per_group: dict[str, float] = collections.defaultdict(float)
    for event in events:
        kind = kinds.get(event.get("name", "")) if event.get("ph") == "X" else None
        if kind:
            per_group[kind] += event["dur"] / 1e3 / calls
    total = sum(per_group.values())
    if not total:
        return {"error": f"no per-operation events; start the process with XLA_FLAGS={TRACE_FLAG}"}
    return {
        "op_ms_per_call": {
            k: round(v, 2) for k, v in sorted(per_group.items(), key=lambda kv: -kv[1])
        },
        "op_share": {k: round(v / total, 3) for k, v in per_group.items()},
        "op_total_ms_per_call": round(total, 2),
    }
