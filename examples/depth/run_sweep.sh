#!/usr/bin/env bash
# LR transfer across depth through the tool's own pipeline: `scaleadvise emit-train` writes one
# training script per depth parameterization (its data block carries alpha, the base depth and
# the depth exponents; the script applies them at the --depth it is run with), `scaleadvise
# sweep` runs one process per (depth, base LR) and writes sweeps.csv, `scaleadvise fit
# --scale-by depth` fits lr*(L) ∝ L^k. The same experiment as `transfer.py depth` (which makes
# its runs in-process with scaleadvise.torch.parameterize), with the emitted script's own
# optimizer settings (Table C2: beta2 0.98; C.3: cosine to 0), so its numbers will differ a little.
# Needs `scaleadvise sweep` (branch sweep; these command lines pass its --dry-run).
#
#   bash examples/depth/run_sweep.sh        # ~15-25 min on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")"
WORK=work/sweep
mkdir -p "$WORK" results
python -m scaleadvise.corpus work/corpus.txt >/dev/null
MODEL=(--param mup --optim adamw --width 32 --base-width 32 --depth 2 --head-dim 16 --context 32 --vocab 256
       --eps per-layer --base-eps 1e-8)
for dp in none depth-mup completep; do
  depth=(--depth-param "$dp"); [ "$dp" = none ] || depth+=(--base-depth 2)
  scaleadvise emit-train "${MODEL[@]}" "${depth[@]}" -o "$WORK/train_$dp.py"
  scaleadvise sweep "$WORK/train_$dp.py" --widths 32 --depths 2,4,8,16 --lrs 2^-8:2^-2:1 --seeds 0,1 --steps 150 \
      --out "$WORK/$dp" --max-parallel 2 --threads-per-run 1 -- --data work/corpus.txt --batch-size 16
done
python - "$WORK" <<'PY'
import csv, sys
from pathlib import Path
work = Path(sys.argv[1]); rows = []
for dp in ("none", "depth-mup", "completep"):
    rows += [{**r, "depth_param": dp} for r in csv.DictReader((work / dp / "sweeps.csv").open())]
with (work / "sweeps.csv").open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
PY
scaleadvise fit "$WORK/sweeps.csv" --scale-by depth --group-by depth_param --json > results/depth_sweep_fit.json
scaleadvise fit "$WORK/sweeps.csv" --scale-by depth --group-by depth_param
