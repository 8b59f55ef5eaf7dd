#!/usr/bin/env bash
# LR transfer across depth through the tool's own pipeline: `scaleadvise emit-train` writes one
# training script per depth parameterization (its data block carries alpha, the base depth and
# the depth exponents; the script applies them at the --depth it is run with), `scaleadvise
# sweep` runs one process per (depth, base LR, seed) on a local Ray runtime and writes
# sweeps.csv, `scaleadvise fit --scale-by depth` fits lr*(L) ∝ L^k per parameterization.
#
# The same experiment as `transfer.py depth` (which makes its runs in-process with
# scaleadvise.torch.parameterize). The script flags after `--` give the emitted script the
# in-process settings where it has a flag for them: AdamW beta2 0.95 (its default is Table C2's
# 0.98), no weight decay (its default for adamw is 1e-4 per step), 32 held-out batches (default
# 8); --align-every 0 --grads-every 0 only skip the probes. What still differs: the emitted
# script decays the LR to 0 (C.3; transfer.py to 10%), draws its own batches and held-out
# batches, and makes each run in its own process.
#
#   bash examples/depth/run_sweep.sh                 # ~11 min on 2 CPU cores (168 runs)
#   STEPS=600 TAG=h600 PARAMS="none completep" bash examples/depth/run_sweep.sh   # results/depth_sweep_h600_*
#
# Writes results/depth_sweep${TAG:+_TAG}_sweeps.csv (every run, with a depth_param column),
# _fit.json (`fit --json`) and _fit.png (`fit --plot`). A rerun skips finished runs (sweep's
# own resume), and one with more depths adds only the new runs; the runs live in work/ (not
# committed). STEPS, SEEDS, DEPTHS, LRS, PARAMS, TAG and WORK (the sweep folder) can be set.
set -euo pipefail
cd "$(dirname "$0")"
STEPS=${STEPS:-150}; SEEDS=${SEEDS:-0,1}; DEPTHS=${DEPTHS:-2,4,8,16}; LRS=${LRS:-2^-8:2^-2:1}
PARAMS=${PARAMS:-none depth-mup completep}
NAME=depth_sweep${TAG:+_$TAG}
WORK=${WORK:-work/$NAME}  # the sweep folders; another TAG may reuse (and extend) a sweep's runs
mkdir -p "$WORK" results
python -m scaleadvise.corpus work/corpus.txt >/dev/null
MODEL=(--param mup --optim adamw --width 32 --base-width 32 --depth 2 --head-dim 16 --context 32 --vocab 256
       --eps per-layer --base-eps 1e-8)
for dp in $PARAMS; do
  depth=(--depth-param "$dp"); [ "$dp" = none ] || depth+=(--base-depth 2)
  scaleadvise emit-train "${MODEL[@]}" "${depth[@]}" -o "$WORK/train_$dp.py" >/dev/null
  scaleadvise sweep "$WORK/train_$dp.py" --widths 32 --depths "$DEPTHS" --lrs "$LRS" --seeds "$SEEDS" \
      --steps "$STEPS" --out "$WORK/$dp" --max-parallel 2 --threads-per-run 1 -- \
      --data work/corpus.txt --batch-size 16 --beta2 0.95 --weight-decay 0 --eval-batches 32 \
      --align-every 0 --grads-every 0
done
python - "$WORK" "results/${NAME}_sweeps.csv" $PARAMS <<'PY'
import csv, os, sys
from pathlib import Path
work, out, params = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
rows = []
for dp in params:
    rows += [{**r, "depth_param": dp} for r in csv.DictReader((work / dp / "sweeps.csv").open())]
tmp = out.with_suffix(".tmp")
with tmp.open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
os.replace(tmp, out)
PY
FIT=(scaleadvise fit "results/${NAME}_sweeps.csv" --scale-by depth --group-by depth_param)
"${FIT[@]}" --json > "results/${NAME}_fit.json.tmp" && mv "results/${NAME}_fit.json.tmp" "results/${NAME}_fit.json"
"${FIT[@]}" --plot "results/${NAME}_fit.png"
