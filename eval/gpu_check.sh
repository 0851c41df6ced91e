#!/usr/bin/env bash
# The 0.25 deg checks on a GPU machine, in one go; writes eval/results/gpu.json.
#   1. `stmodel bench model`: the pangu preset (721 x 1440) in bfloat16 with per-block remat,
#      batch 1: step time, MFU, and the device's measured peak memory (JAX's allocator
#      statistics, read in the same process).
#   2. `stmodel bench memory` for the same configuration on one device: XLA's plan, to set
#      beside the measured peak; and the plan of the forecast step.
#   3. A 10-day forecast of the shipped models from the tiny simulated data (wall time).
# Usage: bash eval/gpu_check.sh     (PYTHON=... for another interpreter; REMAT=dots_no_batch
# or REMAT=block; PRESET=base for a smaller network; BATCH=N for the training batch of
# bench model; WORK=folder for scratch)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PRESET=${PRESET:-pangu}
REMAT=${REMAT:-block}
BATCH=${BATCH:-1}
WORK=${WORK:-runs/gpu_check}
OUT=eval/results/gpu.json
mkdir -p "$WORK" eval/results

if ! "$PYTHON" -c 'import jax; print(jax.devices("gpu"))' > "$WORK/devices.txt" 2>&1; then
  echo "gpu_check: no GPU visible to JAX (jax.devices(\"gpu\") failed); this script needs one:" >&2
  tail -n 3 "$WORK/devices.txt" >&2
  exit 1
fi
echo "gpu_check: $(cat "$WORK/devices.txt")" >&2

remat_flag=(--remat)
[ "$REMAT" = block ] || remat_flag=(--remat "$REMAT")

echo "gpu_check: 1/3 bench model, preset $PRESET, bfloat16, remat $REMAT, batch $BATCH" >&2
"$PYTHON" - "$WORK/bench_model.json" "$PRESET" "$BATCH" "${remat_flag[@]}" <<'EOF'
import json
import sys

import jax

from stmodel.cli import main

out, preset, batch, *remat = sys.argv[1:]
rc = main(
    ["bench", "model", "--preset", preset, "--dtype", "bfloat16", *remat, "--batch", batch,
     "--repeats", "3", "--warmup", "1", "--out", out]
)
if rc:
    sys.exit(rc)
result = json.load(open(out))
stats = jax.devices()[0].memory_stats() or {}
result["measured_peak_bytes"] = stats.get("peak_bytes_in_use")
result["device_memory_limit_bytes"] = stats.get("bytes_limit")
json.dump(result, open(out, "w"))
EOF

echo "gpu_check: 2/3 bench memory, the same configuration on one device" >&2
"$PYTHON" -m stmodel bench memory --preset "$PRESET" --dtype bfloat16 "${remat_flag[@]}" \
  --mesh 1x1 --batch "$BATCH" --out "$WORK/bench_memory.json"

echo "gpu_check: 3/3 a 10-day forecast from the tiny simulated data" >&2
"$PYTHON" -m stmodel data generate --preset tiny --out "$WORK/tiny.nc"
init=$("$PYTHON" -c 'import sys, xarray as xr
print(str(xr.open_dataset(sys.argv[1])["time"].values[0])[:19])' "$WORK/tiny.nc")
start=$(date +%s.%N)
"$PYTHON" -m stmodel forecast --data "$WORK/tiny.nc" --init "$init" --lead 10d \
  --out "$WORK/forecast.nc"
end=$(date +%s.%N)

"$PYTHON" - "$WORK" "$OUT" "$init" "$start" "$end" <<'EOF'
import json
import sys
from pathlib import Path

import jax
import xarray as xr

work, out, init, start, end = sys.argv[1:]
work = Path(work)
model = json.loads((work / "bench_model.json").read_text())
memory = json.loads((work / "bench_memory.json").read_text())
with xr.open_dataset(work / "forecast.nc") as forecast:
    leads = forecast.sizes.get("prediction_timedelta")
measured, planned = model.get("measured_peak_bytes"), memory["train"]["per_device_bytes"]
result = {
    "devices": [str(d) for d in jax.devices()],
    "bench_model": model,
    "bench_memory": memory,
    "plan_vs_measured": {
        "planned_train_bytes": planned,
        "measured_peak_bytes": measured,
        "measured_over_planned": measured / planned if measured else None,
    },
    "forecast_10d": {"init": init, "leads": leads, "wall_s": float(end) - float(start)},
}
Path(out).write_text(json.dumps(result, indent=1) + "\n")
print(f"gpu_check: wrote {out}", file=sys.stderr)
EOF
