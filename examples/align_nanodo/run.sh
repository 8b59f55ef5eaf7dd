#!/usr/bin/env bash
# alpha, omega, u (B.11) and A (Definition 3.1) measured in a real NanoDO run on CPU, at three
# widths, and what `scaleadvise align` prescribes from them. Run from anywhere:
#     bash examples/align_nanodo/run.sh        (about 10 min on one free core)
# Outputs in examples/align_nanodo/: alignment.csv, align.png, align.txt, align.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=examples/align_nanodo
work=$here/work
mkdir -p "$work"
show() { echo "\$ ${*//$work\//}"; "$@"; }  # print the command (work dir elided), then run it

# The tour's model and setting (README step 1): byte-level NanoDO, 2 blocks, head dim 16, context 64;
# SP + Adam with Table 1's full-alignment exponents, base LR 2^-6 tuned at base width 32 (examples/transfer).
python -m scaleadvise.corpus "$work/corpus.txt" --max-mb 4 > /dev/null
scaleadvise emit-train --param stp --optim adam --base-width 32 --base-lr 0.0156 --width 256 \
    --depth 2 --head-dim 16 --context 64 --vocab 256 -o "$work/train.py" > /dev/null 2>&1
for w in 64 128 256; do  # the same prescription at three widths (head dim fixed, heads = width / 16)
    rm -rf "$work/w$w"
    (cd "$work" && python train.py --data corpus.txt --width "$w" --steps 300 --batch-size 16 --threads 1 \
        --log-every 100 --eval-every 300 --align-every 10 --grads-every 0 --out "w$w") | tail -1
done
{ head -n 1 "$work/w64/alignment.csv"; for w in 64 128 256; do tail -n +2 "$work/w$w/alignment.csv"; done; } \
    > "$here/alignment.csv"
show scaleadvise align "$here/alignment.csv" --param stp --optim adam --plot "$here/align.png" > "$here/align.txt"
scaleadvise align "$here/alignment.csv" --param stp --optim adam --json > "$here/align.json"
echo "outputs in $here/"
