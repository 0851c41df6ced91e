#!/usr/bin/env bash
# Runs every command the way a careless user would (missing, unreadable or wrong files, bad
# values, outputs that are inputs or folders or files) and prints one line per case: exit code,
# whether a traceback appeared, the number of lines on stderr, the command, its last line.
#   bash eval/error_audit.sh > eval/results/error_audit.txt
# A correct result: every case exits 0 or 2, with no traceback and one line.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STMODEL=${STMODEL:-$ROOT/.venv/bin/stmodel}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
echo "not netcdf" > text.nc
mkdir adir && touch afile
cp "$ROOT/data/samples/era5_t2m_uk_2019-03.nc" uk.nc
ln -s uk.nc link.nc
while IFS= read -r line; do
  [ -z "$line" ] && continue
  timeout 120 "$STMODEL" $line > out.txt 2> err.txt
  rc=$?
  tb=$(grep -c Traceback err.txt)
  lines=$(grep -cv "^\s*$" err.txt)
  echo "rc=$rc traceback=$tb lines=$lines | stmodel $line | $(tail -1 err.txt | cut -c1-200)"
done <<'CASES'
data check missing.nc
data check text.nc
data check adir
data convert uk.nc --out adir
data convert uk.nc --out afile/x.nc
data convert uk.nc --out uk.nc
data convert uk.nc --out link.nc
data stats uk.nc --out st --dt-hours 0
data stats uk.nc --out afile
data stats uk.nc --out st --train-period 2030-01-01/2030-12-31
data generate --preset nope --out g.nc
data generate --preset tiny --out adir
data generate --preset tiny --out afile/g.nc
train --config nope --data uk.nc --workdir w
train --config text.nc --data uk.nc --workdir w
train --config tiny --data missing.nc --workdir w
train --config tiny --data uk.nc --workdir w
train --config tiny --data uk.nc --workdir afile
train --config tiny --data uk.nc --workdir uk.nc
train --config tiny --data uk.nc --workdir w --steps -1
train --config tiny --data uk.nc --workdir w --mesh 3x
train --config tiny --data uk.nc --workdir w --mesh 16x1
train --config tiny --data uk.nc --workdir w batch_size=2.7
train --config tiny --data uk.nc --workdir w optimizer.learning_rate=true
train --config tiny --data uk.nc --workdir w model_overrides.dimm=3
train --config tiny --data uk.nc --workdir w nonsense
checkpoint info missing
checkpoint info adir
checkpoint info uk.nc
checkpoint info stmodel-small-6h --step 5
forecast --data uk.nc --init notatime --out f.nc
forecast --data uk.nc --init 2019-03-01 --out f.nc
forecast --data missing.nc --init 2019-03-01 --out f.nc
forecast --checkpoint adir --data uk.nc --init 2019-03-01 --out f.nc
forecast --checkpoint no-such-model --data uk.nc --init 2019-03-01 --out f.nc
forecast --data uk.nc --init 2019-03-01 --out f.nc --batch 0
forecast --data uk.nc --init 2019-03-01 --out f.nc --lead 0
forecast --data uk.nc --init 2019-03-01 --out f.nc --lead=-2d
forecast --data uk.nc --init 2019-03-01 --out f.nc --lead 5h
forecast --data uk.nc --init 2019-03-01 --out f.nc --output-every 5h
forecast --data uk.nc --init 2019-03-01 --out uk.nc
forecast --data uk.nc --init 2019-03-01 --out link.nc
forecast --data uk.nc --init 2019-03-01 --out adir
forecast --data uk.nc --init 2019-03-01 --out afile/f.nc
evaluate --forecast missing.nc --truth uk.nc --out ev
evaluate --forecast uk.nc --truth uk.nc --out ev
evaluate --forecast text.nc --truth uk.nc --out ev
evaluate --forecast uk.nc --truth uk.nc --out uk.nc
evaluate --forecast uk.nc --truth uk.nc --out afile
downscale coarsen uk.nc --factor 0 --out c.nc
downscale coarsen uk.nc --factor 2 --region 1,2,3 --out c.nc
downscale coarsen uk.nc --factor 1000 --out c.nc
downscale coarsen text.nc --factor 2 --out c.nc
downscale coarsen uk.nc --factor 2 --out uk.nc
downscale train --pretrained nope --coarse uk.nc --fine uk.nc --region 50,58,-10,2 --workdir dw
downscale train --coarse uk.nc --fine uk.nc --region 50,58,-10,2 --workdir dw --steps 0
downscale apply --checkpoint adir --coarse uk.nc --out a.nc
downscale apply --checkpoint adir --coarse uk.nc --out uk.nc
downscale evaluate --checkpoint adir --coarse uk.nc --fine uk.nc
models export adir --out m --card afile
models export missing --out m --card afile
models export adir --out adir --card afile
bench model --preset nope
bench pipeline missing.nc
demo --preset nope --out d
demo --lead-days 0 --out d
demo --checkpoint adir --out adir
CASES
